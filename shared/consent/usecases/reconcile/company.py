"""Reconciling one company: Codat's view of it read (its connections, and the status of its data where a journey
needs data), its tags brought up to date, links never authorized expired in Codat, and the drift healed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime, timedelta

from consent.codat.client import CodatClient
from consent.codat.errors import (
    CodatAuthFailed,
    CodatError,
    CodatNotFound,
)
from consent.codat.models import CUSTOMER_TAG, CodatConnection, DataStatus
from consent.domain.records import CompanyView, ConnectionRecord
from consent.domain.resources import ConnectionStatus, LedgerEntryType, SourceType
from consent.observability import logger
from consent.services import Services
from consent.store import Change, ConflictError
from consent.usecases.reconcile.heal import heal
from consent.usecases.reconcile.reads import worth_asking
from consent.usecases.reconcile.report import STOPPING, CompanyCheck, Observation, Stop, stop_for

_ATTEMPTS = 3


_LEDGER_PAGE = 100


def reconcile_company(services: Services, codat: CodatClient, company_id: str) -> CompanyCheck | None:
    """Compare one company's connections (and, where a journey needs data, their reads) with Codat's and record the
    difference. None if the company was erased meanwhile. Codat failures that should stop the run are raised, unless
    some of the company's expired connections were already deleted in Codat: then that is recorded first."""
    view = services.store.get_company_by_id(company_id)
    if view is None:
        return None
    observed_at = services.clock()
    try:
        reported = {c.id: c for c in codat.list_connections(company_id)}
        in_codat = True
    except CodatNotFound:
        reported, in_codat = {}, False
    data: dict[str, DataStatus] = {}
    if in_codat and worth_asking(services.catalog, view.company, reported.values()):
        # Part of the same look, before anything is changed in Codat: failing, it ends as the listing's would.
        try:
            data = codat.data_status(company_id)
        except CodatNotFound:
            reported, in_codat = {}, False  # the company was deleted in Codat since
        except (CodatAuthFailed, *STOPPING):
            raise  # our key refused, Codat down, rate limiting or the budget spent: as for the listing
        except CodatError as error:
            # An answer about this company Codat will not give (refused, malformed): its connections' drift is healed
            # all the same; its reads wait for a run that can read their status.
            logger.warning("data status unreadable", extra={"company_id": company_id, "error": type(error).__name__})
    if in_codat and not view.company.customer_ref_keyed:
        view = _retag(services, codat, view)
    expiring, stop = _expire_in_codat(services, codat, view, reported, observed_at)
    observation = Observation(observed_at, reported, in_codat, frozenset(expiring), services.clock(), data)
    for _ in range(_ATTEMPTS):
        events, check = heal(services, view, observation)
        check.stop = stop
        if events.empty:
            _reclock(services, view)
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


def _reclock(services: Services, view: CompanyView) -> None:
    """Connections whose consent clock, reminders or keep-alive, as the deployment's policy reads them today, differ
    from what is stored: written by a version before the lifecycle, or before a change of the policy. Written again
    (nothing else changes), so that every connection is in the lifecycle's index within one pass. If the company
    changes meanwhile, that write clocked them anyway."""
    policy = services.catalog.consent_clock
    stale = [c.clocked(policy) for c in view.connections if not c.deleted and c.clocked(policy) != c]
    if not stale:
        return
    with contextlib.suppress(ConflictError):
        services.store.commit_in_parts(Change(updated=stale))


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
        except STOPPING as error:
            return expired, stop_for(error)
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
