"""Reconciliation: every stored connection compared with Codat's, healing the drift that missed webhooks leave.

A run walks the companies (a pass over the table that resumes where the last run stopped) within a Codat
request budget and the function's remaining time. What Codat reports is recorded as status events observed
at the time of the check, through the same order-safe step as the webhooks, so a webhook arriving later
cannot be undone and a second run that sees the same thing changes nothing. Each run also checks, first, that
Codat still has a healthy webhook consumer for our receiver (`WebhookConsumerUnhealthy`)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from consent.codat.client import CodatClient, RequestBudget
from consent.codat.errors import (
    CodatBadResponse,
    CodatBudgetExhausted,
    CodatError,
    CodatNotFound,
    CodatRateLimited,
    CodatRejected,
    CodatTimeout,
    CodatUnavailable,
)
from consent.codat.models import CUSTOMER_TAG, CodatConnection
from consent.domain.ledger import entry_id_of
from consent.domain.records import CompanyView, ConnectionRecord
from consent.domain.resources import Actor, ConnectionStatus, LedgerEntryType, SourceType
from consent.domain.timeline import StatusEvent, derive
from consent.domain.transitions import KIND_SETTING, TRANSITIONS, EventKind
from consent.observability import logger, metrics
from consent.services import Services
from consent.store import Change, ConflictError, StoreRejected
from consent.usecases.recording import ConnectionEvents
from consent.usecases.webhook_consumers import check as check_webhook_consumer

# Ids of what reconciliation records are derived from what it observed (uuid5), never random: two runs that
# see the same drift write the same ledger entry, which the store accepts once.
_NAMESPACE = uuid.UUID("8d2f6a4e-3c1b-4f7e-9a55-2e6b0c9d71a3")
# Items read per Scan page (companies and everything else in the table; DynamoDB filters after reading).
_SCAN_PAGE_ITEMS = 500
# Time kept back from the function's remaining time: one more company's Codat calls and its write.
_TIME_RESERVE_SECONDS = 15.0
_ATTEMPTS = 3
_LEDGER_PAGE = 100
_OBSERVED = "found in Codat by reconciliation (the webhook never arrived)"
# Codat failures after which the run stops and the next one resumes at the same company.
_STOPPING = (CodatBudgetExhausted, CodatRateLimited, CodatUnavailable, CodatTimeout)


class Stop(StrEnum):
    """Why a run ended."""

    PASS_COMPLETE = "pass_complete"  # noqa: S105 - every company was checked: the next run starts a new pass
    BUDGET_SPENT = "budget_spent"
    TIME_LOW = "time_low"
    RATE_LIMITED = "rate_limited"
    CODAT_UNAVAILABLE = "codat_unavailable"


@dataclass
class CompanyCheck:
    """What reconciling one company did."""

    changed: bool = False  # anything written (a lastSyncAt moving forward writes no ledger entry)
    entries: int = 0  # ledger entries written, journey milestones included
    adopted: int = 0
    expired: int = 0
    # Set when Codat stopped answering part-way: what was observed is recorded, the company is checked again.
    stop: Stop | None = None


@dataclass
class ReconcileReport:
    """One run, for the logs and the invoker: identifiers and counts only."""

    companies_checked: int = 0
    companies_healed: int = 0
    companies_skipped: int = 0  # Codat refused or garbled the answer, the company kept changing or the table refused
    ledger_entries: int = 0
    adopted: int = 0
    expired: int = 0
    codat_requests: int = 0
    stopped: Stop = Stop.PASS_COMPLETE
    skipped_ids: list[str] = field(default_factory=list)
    # Codat's webhook consumer for CODAT_WEBHOOK_URL: a `ConsumerStatus` value, "unknown" when Codat did not
    # answer (or the run had no time or budget to ask), None when no webhook URL is configured.
    webhook_consumer: str | None = None

    def add(self, check: CompanyCheck) -> None:
        self.companies_checked += 1
        self.companies_healed += 1 if check.changed else 0
        self.ledger_entries += check.entries
        self.adopted += check.adopted
        self.expired += check.expired

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "stopped": self.stopped.value}


def reconcile(services: Services) -> ReconcileReport:
    """One run: continue the pass over the companies until it completes, the Codat request budget is spent,
    Codat pushes back, or the function's time runs low. Where it stopped is kept for the next run."""
    budget = RequestBudget(services.settings.reconcile_codat_budget)
    codat = services.codat.with_budget(budget)
    report = ReconcileReport()
    try:
        report.webhook_consumer = _check_webhook_consumer(services, codat, budget)
        report.stopped = _sweep(services, codat, budget, report)
    finally:
        report.codat_requests = budget.used
        logger.info("reconciliation run", extra={"reconcile": report.to_dict()})
        metrics.add_metric(name="ReconcileCompaniesChecked", unit="Count", value=report.companies_checked)
        metrics.add_metric(name="ReconcileCompaniesHealed", unit="Count", value=report.companies_healed)
        metrics.add_metric(name="ReconcileCodatRequests", unit="Count", value=report.codat_requests)
    return report


def _check_webhook_consumer(services: Services, codat: CodatClient, budget: RequestBudget) -> str | None:
    """One `GET /webhooks` of the run's budget. Whatever Codat answers, the run goes on: a refusal is recorded
    (and, if it is Codat's state rather than this request, the pass meets it next and stops as it always does)."""
    url = services.settings.webhook_url
    if url is None:
        return None
    if _must_stop(services, budget) is not None:
        return "unknown"  # the pass stops at once too, for the same reason
    try:
        found = check_webhook_consumer(codat, url)
    except CodatError as error:
        logger.warning("webhook consumer not checked", extra={"webhook_url": url, "error": type(error).__name__})
        return "unknown"
    if found.is_healthy:
        logger.info("webhook consumer healthy", extra={"webhook_consumer": found.to_dict()})
    else:
        logger.warning("webhook consumer unhealthy", extra={"webhook_consumer": found.to_dict()})
    metrics.add_metric(name="WebhookConsumerUnhealthy", unit="Count", value=0 if found.is_healthy else 1)
    return found.status.value


def _sweep(services: Services, codat: CodatClient, budget: RequestBudget, report: ReconcileReport) -> Stop:
    store = services.store
    position = store.reconcile_cursor()
    try:
        while True:
            stop = _must_stop(services, budget)
            if stop is not None:
                store.save_reconcile_cursor(position)
                return stop
            page = store.sweep_companies(position, limit=_SCAN_PAGE_ITEMS)
            for company_id in page.items:
                stop = _must_stop(services, budget) or _check(services, codat, company_id, report)
                if stop is not None:
                    store.save_reconcile_cursor(position)  # this company is checked again next run
                    return stop
                position = store.sweep_cursor_after(company_id)
            if page.next_cursor is None:
                store.save_reconcile_cursor(None)
                return Stop.PASS_COMPLETE
            position = page.next_cursor
    except Exception:
        # Keep the progress made (best effort: the store itself may be what failed), then fail loudly.
        with contextlib.suppress(Exception):
            store.save_reconcile_cursor(position)
        raise


def _must_stop(services: Services, budget: RequestBudget) -> Stop | None:
    if budget.remaining == 0:
        return Stop.BUDGET_SPENT
    left = services.time_left() if services.time_left is not None else None
    if left is not None and left < _TIME_RESERVE_SECONDS:
        return Stop.TIME_LOW
    return None


def _check(services: Services, codat: CodatClient, company_id: str, report: ReconcileReport) -> Stop | None:
    try:
        check = reconcile_company(services, codat, company_id)
    except CodatBudgetExhausted:
        return Stop.BUDGET_SPENT
    except CodatRateLimited:
        logger.warning("reconciliation rate limited by Codat", extra={"company_id": company_id})
        return Stop.RATE_LIMITED
    except (CodatUnavailable, CodatTimeout) as error:
        logger.warning("reconciliation stopped: Codat unavailable", extra={"error": type(error).__name__})
        return Stop.CODAT_UNAVAILABLE
    except (CodatRejected, CodatBadResponse, ConflictError, StoreRejected) as error:
        # About this company only (or it kept changing under us, or the table refuses its change): the next pass
        # tries again, and the companies after it are not held up.
        logger.warning("company not reconciled", extra={"company_id": company_id, "error": type(error).__name__})
        report.companies_skipped += 1
        report.skipped_ids.append(company_id)
        return None
    if check is not None:
        report.add(check)
        return check.stop
    return None


@dataclass(frozen=True)
class _Observation:
    """What Codat reported about one company, and when we looked."""

    at: datetime  # just before asking: anything Codat did earlier is reflected in its answer
    connections: dict[str, CodatConnection]
    company_in_codat: bool
    expiring: frozenset[str]  # PendingAuth for too long: deleted in Codat (or already gone)
    expired_at: datetime


def reconcile_company(services: Services, codat: CodatClient, company_id: str) -> CompanyCheck | None:
    """Compare one company's connections with Codat's and record the difference. None if the company was
    erased meanwhile. Codat failures that should stop the run are raised, unless some of the company's
    expired connections were already deleted in Codat: then that is recorded first."""
    view = services.store.get_company_by_id(company_id)
    if view is None:
        return None
    observed_at = services.clock()
    try:
        reported = {c.id: c for c in codat.list_connections(company_id)}
        in_codat = True
    except CodatNotFound:
        reported, in_codat = {}, False
    if in_codat and not view.company.customer_ref_keyed:
        view = _retag(services, codat, view)
    expiring, stop = _expire_in_codat(services, codat, view, reported, observed_at)
    observation = _Observation(observed_at, reported, in_codat, frozenset(expiring), services.clock())
    for _ in range(_ATTEMPTS):
        events, check = _heal(services, view, observation)
        check.stop = stop
        if events.empty:
            return check
        change = events.change(services.catalog, now=services.clock())
        try:
            # In parts if it must (a company with very many connections): a run interrupted half-way leaves
            # those healed, and the next run compares with Codat again and heals the rest.
            services.store.commit_in_parts(change)
        except ConflictError:
            # A webhook or a customer changed the company meanwhile: heal what is there now, from the same look.
            refreshed = services.store.get_company_by_id(company_id)
            if refreshed is None:
                return None
            view = refreshed
            continue
        check.changed, check.entries = True, len(change.ledger)
        return check
    raise ConflictError("the company kept changing while it was reconciled")


def _retag(services: Services, codat: CodatClient, view: CompanyView) -> CompanyView:
    """A company made before the keyed customer reference: Codat's copy carries the customer id itself as a tag.
    It is replaced by the keyed reference (the other tags kept), once; if the company changes meanwhile, the next
    run does it again (the same tags: harmless)."""
    company = view.company
    reference = services.customer_ref(company.customer_id)
    tags = codat.get_company(company.company_id).tags
    if tags.get(CUSTOMER_TAG) != reference:
        codat.update_company_tags(company.company_id, {**tags, CUSTOMER_TAG: reference})
    keyed = company.model_copy(update={"customer_ref_keyed": True})
    try:
        services.store.commit(Change(company=keyed))
    except ConflictError:
        return view
    return CompanyView(
        keyed.model_copy(update={"version": keyed.version + 1}), view.connections, view.connections_cursor
    )


# -- expiry -----------------------------------------------------------------------------------------


def _expire_in_codat(
    services: Services,
    codat: CodatClient,
    view: CompanyView,
    reported: dict[str, CodatConnection],
    now: datetime,
) -> tuple[set[str], Stop | None]:
    """The connections that stayed PendingAuth too long, deleted in Codat (so the customer starts again
    cleanly), and why deleting stopped early, if it did."""
    cutoff = now - timedelta(hours=services.settings.pending_auth_max_age_hours)
    ours = {c.connection_id: c for c in view.connections}
    candidates = {
        c.connection_id: max([c.created_at, *(e.at for e in c.history)])
        for c in ours.values()
        if not c.deleted and _pending(c, reported.get(c.connection_id))
    }
    # Connections made outside our API: their age is Codat's.
    candidates |= {
        c.id: c.created
        for c in reported.values()
        if c.id not in ours and c.status == ConnectionStatus.PENDING_AUTH and SourceType.from_codat(c.source_type)
    }
    stale = {cid for cid, active in candidates.items() if active < cutoff}
    if not stale:
        return set(), None
    # A customer who asked for a fresh link recently is still on their way: that counts as activity.
    for cid, at in _link_requests(services, view, stale).items():
        if at >= cutoff:
            stale.discard(cid)
    expired: set[str] = set()
    for cid in sorted(stale):
        if cid not in reported:
            expired.add(cid)  # already gone from Codat
            continue
        try:
            codat.delete_connection(view.company.company_id, cid)
        except CodatNotFound:
            pass
        except _STOPPING as error:
            return expired, _stop_for(error)
        except CodatError as error:
            logger.warning(
                "expired connection not deleted", extra={"connection_id": cid, "error": type(error).__name__}
            )
            continue
        expired.add(cid)
    return expired, None


def _pending(record: ConnectionRecord, codat: CodatConnection | None) -> bool:
    if codat is None:
        return record.status == ConnectionStatus.PENDING_AUTH
    return codat.status == ConnectionStatus.PENDING_AUTH


def _link_requests(services: Services, view: CompanyView, connection_ids: Iterable[str]) -> dict[str, datetime]:
    """When each connection's link was last requested again (POST …/connections reusing it), from the ledger."""
    wanted = set(connection_ids)
    latest: dict[str, datetime] = {}
    company = view.company
    cursor: str | None = None
    while True:
        page = services.store.list_ledger(company.customer_id, company.company_id, limit=_LEDGER_PAGE, cursor=cursor)
        if page is None:
            return latest
        for entry in page.items:
            cid = entry.connection_id
            if (
                entry.type == LedgerEntryType.CONNECTION_LINK_REQUESTED
                and cid in wanted
                and (cid not in latest or entry.at > latest[cid])
            ):
                latest[cid] = entry.at
        if page.next_cursor is None or not page.items:
            return latest
        cursor = page.next_cursor


def _stop_for(error: CodatError) -> Stop:
    if isinstance(error, CodatBudgetExhausted):
        return Stop.BUDGET_SPENT
    if isinstance(error, CodatRateLimited):
        return Stop.RATE_LIMITED
    return Stop.CODAT_UNAVAILABLE


# -- healing ----------------------------------------------------------------------------------------


def _heal(services: Services, view: CompanyView, seen: _Observation) -> tuple[ConnectionEvents, CompanyCheck]:
    events = ConnectionEvents(view)
    check = CompanyCheck()
    max_age = services.settings.pending_auth_max_age_hours
    for record in view.connections:
        if record.deleted:
            continue
        if record.connection_id in seen.expiring:
            _expire(events, record.connection_id, seen, max_age)
            check.expired += 1
        elif record.connection_id not in seen.connections:
            _gone(events, record, seen)
        else:
            _follow(events, record, seen.connections[record.connection_id], seen)
    for reported in seen.connections.values():
        if events.connection(reported.id) is not None:
            continue  # ours (a connection we recorded deleted stays deleted: Codat never reuses an id)
        adopted = _adopt(events, view, reported)
        if adopted is None:
            continue
        check.adopted += 1
        if reported.id in seen.expiring:
            _expire(events, reported.id, seen, max_age)
            check.expired += 1
        else:
            _follow(events, adopted, reported, seen)
    return events, check


def _event_id(*observed: object) -> str:
    return "reconcile:" + str(uuid.uuid5(_NAMESPACE, "|".join(str(part) for part in observed)))


def _follow(events: ConnectionEvents, record: ConnectionRecord, reported: CodatConnection, seen: _Observation) -> None:
    """Bring the connection's status and last sync to what Codat reports."""
    cid = record.connection_id
    status = ConnectionStatus.from_codat(reported.status)
    latest = derive(record.history).latest
    if status is not None and status != record.status:
        kind = KIND_SETTING[status]
        if kind == EventKind.CREATED:
            # Codat never takes a connection back to PendingAuth; leave it for a person to look at.
            logger.warning("connection PendingAuth in Codat only", extra={"connection_id": cid})
        elif latest is not None and latest.at >= seen.at:
            pass  # we know of something newer than our look at Codat: the next run looks again
        else:
            last_error = max(
                (e.errored_on_utc for e in reported.data_connection_errors or () if e.errored_on_utc), default=None
            )
            event_id = _event_id(cid, status, latest.id if latest else "-", reported.last_sync, last_error)
            at = seen.at
            if kind == EventKind.LINKED and reported.last_sync is not None and reported.last_sync >= at:
                # Codat stamps lastSync when the link is made: a read counts as the first only if it came later.
                at = reported.last_sync + timedelta(milliseconds=1)
            event = StatusEvent(at=at, id=event_id, kind=kind, actor=Actor.RECONCILE)
            record = events.record(cid, event, ledger_type=TRANSITIONS[kind].entry, entry_id=event_id, detail=_OBSERVED)
    last_sync = reported.last_sync
    if last_sync is None or (record.last_sync_at is not None and last_sync <= record.last_sync_at):
        return
    if (
        record.status == ConnectionStatus.LINKED
        and not record.initial_read_done
        and record.linked_at is not None
        and last_sync > record.linked_at
    ):
        # A sync Codat finished after the connection was linked: the first read, whose webhook never arrived.
        read_id = _event_id(cid, "initial_read", last_sync.isoformat())
        read = StatusEvent(at=last_sync, id=read_id, kind=EventKind.INITIAL_READ, actor=Actor.RECONCILE)
        record = events.record(
            cid, read, ledger_type=LedgerEntryType.SYNC_COMPLETED, entry_id=read_id, detail="initial read"
        )
    events.update(record.model_copy(update={"last_sync_at": last_sync}))


def _gone(events: ConnectionEvents, record: ConnectionRecord, seen: _Observation) -> None:
    """Codat no longer has the connection (or the whole company): deleted, as its webhook would have said."""
    latest = derive(record.history).latest
    if latest is not None and latest.at >= seen.at:
        return
    cid = record.connection_id
    event_id = _event_id(cid, "deleted", latest.id if latest else "-")
    where = "the connection" if seen.company_in_codat else "the company"
    event = StatusEvent(at=seen.at, id=event_id, kind=EventKind.DELETED, actor=Actor.RECONCILE)
    events.record(
        cid,
        event,
        ledger_type=LedgerEntryType.CONNECTION_DELETED,
        entry_id=event_id,
        detail=f"{where} was deleted in Codat",
    )


def _expire(events: ConnectionEvents, connection_id: str, seen: _Observation, max_age_hours: int) -> None:
    # A connection expires once: its id alone names the event.
    event_id = _event_id(connection_id, "expired")
    event = StatusEvent(at=seen.expired_at, id=event_id, kind=EventKind.DELETED, actor=Actor.RECONCILE)
    detail = f"not authorized within {max_age_hours} hours: deleted in Codat, so the customer can start again"
    events.record(
        connection_id, event, ledger_type=LedgerEntryType.CONNECTION_EXPIRED, entry_id=event_id, detail=detail
    )


def _adopt(events: ConnectionEvents, view: CompanyView, reported: CodatConnection) -> ConnectionRecord | None:
    """A connection made outside our API, recorded as its `connection.created` webhook would have."""
    source_type = SourceType.from_codat(reported.source_type)
    if source_type is None:
        return None  # a source type we do not serve: no journey can use it
    company = view.company
    events.adopt(
        ConnectionRecord(
            connection_id=reported.id,
            company_id=company.company_id,
            customer_id=company.customer_id,
            company_created_at=company.created_at,
            platform_key=reported.integration_key or "",
            platform_name=reported.platform_name or reported.integration_key or "Unknown",
            source_type=source_type,
            status=ConnectionStatus.PENDING_AUTH,
            created_at=reported.created,
        )
    )
    event_id = _event_id(reported.id, "created")
    created = StatusEvent(at=reported.created, id=event_id, kind=EventKind.CREATED, actor=Actor.RECONCILE)
    return events.record(
        reported.id,
        created,
        ledger_type=LedgerEntryType.CONNECTION_CREATED,
        entry_id=entry_id_of(created),
        detail=_OBSERVED,
    )
