"""The consent lifecycle run (the scheduled `LifecycleFunction`): what keeps consent alive after linking.

- **Reminders.** Before a connection's consent lapses, `consent.connection.expiring` at each lead time of the policy
  (by default 14, 7 and 1 days before `renewBy`), once per lead time and consent period, whatever retries, duplicates
  or concurrent runs happen. A run that comes late sends the most urgent reminder due, not every one it missed; none
  goes once consent has lapsed.
- **Keep-alive.** A Linked connection of a kept-alive source type (accounting, by default) that has not synced for a
  while gets a refresh of one light data type queued in Codat, within the deployment's daily budget of Codat
  requests, oldest due first. What does not fit the budget, or meets Codat refusing requests, stays due: the next run
  tries again (`KeepAliveDeferred`).
- **Data readiness.** A company whose journey wants its stale data read again (the journey was started, or became
  complete) gets a read of each stale required type queued in Codat, on the Linked connections that read it, within
  the same budget. A company whose ready data grows too old is settled then, so `consent.journey.data_stale` goes
  out when it happens, not when the next webhook comes.

A run reads only what is due (the store's index of `ConnectionRecord.lifecycle_at`, oldest first), reads each company
again, strongly, and writes the connection (its note of the reminder or the refresh, so its next due time) with the
reminder's ledger entry, conditional on the version it read: of two runs racing on one connection, one writes and the
other finds nothing left to do."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from consent.codat.errors import (
    CodatAuthFailed,
    CodatError,
    CodatNotFound,
    CodatRejected,
    CodatSyncInProgress,
)
from consent.domain import retention
from consent.domain.consent_clock import ConsentClockPolicy, reminder_due
from consent.domain.data_readiness import source_type_of
from consent.domain.journeys import JourneyDefinition
from consent.domain.ledger import connection_entry, entry, entry_id_of
from consent.domain.records import CompanyRecord, CompanyView, ConnectionRecord, LedgerKey, LedgerRecord
from consent.domain.resources import Actor, ConnectionStatus, JourneyData, LedgerEntryType
from consent.domain.timeline import StatusEvent, derive
from consent.domain.transitions import TRANSITIONS, EventKind
from consent.observability import logger, metrics
from consent.services import Services
from consent.store import Change, ConflictError, StoreRejected
from consent.store.positions import sortable
from consent.usecases.recording import ConnectionEvents

# The company's purge sorts after its connections' (written at the same moment); a purge Codat confirmed before our
# write sorts before that confirmation.
_AFTER_ITS_CONNECTIONS = 9
_BEFORE_ITS_CONFIRMATION = 8
_FULFILLED = "one-off consent: unlinked once the journey's data had been read"
_ONE_OFF_NAMESPACE = uuid.UUID("6f1d3b7a-2c4e-4b9a-8e51-0a7c9d2f4e13")
# Our event ends a connection's consent just after everything known of it (as a customer's revoke does).
_AFTER = timedelta(milliseconds=1)


def _reported_by_codat(connection: ConnectionRecord, kind: EventKind, asked: str | None) -> StatusEvent | None:
    """Codat's report of the unlink (or delete) this run asked for (`asked`: None if it did not), if that is the last
    thing known of the connection and ours is not recorded."""
    if asked is None:
        return None
    latest = derive(connection.history).latest
    if latest is None or latest.kind != kind or latest.actor != Actor.CODAT:
        return None
    ours = ("one-off:", "purge:")
    if any(e.id.startswith(ours) and e.kind == kind for e in connection.history):
        return None
    return latest


def _confirmation(company: CompanyRecord, connection: ConnectionRecord, reported: StatusEvent) -> LedgerRecord:
    """Codat's report of a change of ours, recorded as its confirmation (never announced), after ours."""
    confirmation = TRANSITIONS[reported.kind].confirmation
    assert confirmation is not None, "Codat confirms unlinks and deletes"
    return connection_entry(
        company,
        confirmation,
        connection=connection,
        actor=reported.actor,
        at=reported.at,
        entry_id=entry_id_of(reported),
        seq=_AFTER_ITS_CONNECTIONS,
    )


def _gone(error: CodatError) -> bool:
    """A delete Codat answers 404: deleted already (by an earlier attempt, or in Codat's portal)."""
    return isinstance(error, CodatNotFound)


def _after(connection: ConnectionRecord, now: datetime) -> datetime:
    return max([now, *(e.at + _AFTER for e in connection.history)])


# Time kept back from the function's remaining time: one more connection's read, Codat call and write.
_TIME_RESERVE_SECONDS = 15.0
_ATTEMPTS = 3


@dataclass
class LifecycleReport:
    due: int = 0  # connections the index said were due
    sent: int = 0  # reminders written (each published by the outbox)
    lapsed: int = 0  # a reminder due, but consent had already lapsed: none sent, the period's reminders closed
    refreshed: int = 0  # keep-alive refreshes queued in Codat (or found already reading)
    deferred: int = 0  # keep-alive refreshes due but not asked for: the day's budget spent, or Codat pushing back
    data_reads: int = 0  # reads of a journey's stale data queued in Codat (or found already reading)
    data_deferred: int = 0  # journeys whose stale data is still to be asked for (the budget, or Codat)
    settled: int = 0  # companies settled (their data state as time makes it, and the reads they wanted)
    unlinked: int = 0  # connections whose one-off consent was spent, unlinked in Codat
    purged: int = 0  # connections whose retention ran out, deleted in Codat
    erased: int = 0  # companies erased in Codat, nothing of them left
    skipped: list[str] = field(default_factory=list)  # connection ids left for the next run (kept changing)
    stopped: str = "done"  # or "time_low"

    def to_dict(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "sent": self.sent,
            "lapsed": self.lapsed,
            "refreshed": self.refreshed,
            "deferred": self.deferred,
            "data_reads": self.data_reads,
            "data_deferred": self.data_deferred,
            "settled": self.settled,
            "unlinked": self.unlinked,
            "purged": self.purged,
            "erased": self.erased,
            "skipped": len(self.skipped),
            "stopped": self.stopped,
        }


class _KeepAlive:
    """The run's keep-alive: the day's budget (shared with concurrent runs through the store) and Codat's mood."""

    def __init__(self, services: Services, now: datetime) -> None:
        self.services = services
        self.day = now.strftime("%Y-%m-%d")
        self.budget = services.settings.keep_alive_daily_codat_budget
        self.stopped = self.budget == 0  # the day's budget is spent, or Codat asked us to stop: no more this run

    def refresh(
        self, view: CompanyView, connection: ConnectionRecord, policy: ConsentClockPolicy, *, asked: set[str]
    ) -> bool:
        """Queue the connection's refresh in Codat, if the budget allows: whether it is asked for (or reading)."""
        data_type = policy.keep_alive.data_types[connection.source_type]
        assert connection.refresh_at is not None
        # The same for every run that tries this refresh: a retry within Codat's 90 minutes queues once.
        key = f"keep-alive:{connection.connection_id}:{sortable(connection.refresh_at)}"
        return self.queue(view.company.company_id, connection, data_type, key, asked=asked)

    def queue(
        self, company_id: str, connection: ConnectionRecord, data_type: str, idempotency_key: str, *, asked: set[str]
    ) -> bool:
        """Queue a read of `data_type` on the connection in Codat, if the budget allows: whether it is asked for (or
        reading already). `asked`: the keys asked for already this run (a write retried after a conflict asks once)."""
        if idempotency_key in asked:
            return True
        if self.stopped:
            return False
        if not self.services.store.spend_keep_alive_request(self.day, self.budget):
            self.stopped = True
            return False
        try:
            self.services.codat.queue_data(
                company_id, data_type, connection_id=connection.connection_id, idempotency_key=idempotency_key
            )
        except CodatSyncInProgress:
            asked.add(idempotency_key)
            return True  # Codat is reading it already: the sync that keeps it alive is under way
        except (CodatNotFound, CodatRejected) as error:
            # About this connection only (gone in Codat, or it cannot read that type): asked, and not again before
            # the retry time; reconciliation settles what Codat says of the connection itself.
            logger.warning("read refused", extra={"connection_id": connection.connection_id, "error": str(error)})
            asked.add(idempotency_key)
            return True
        except CodatAuthFailed:
            raise  # our API key refused: the run fails loudly (LifecycleErrorsAlarm)
        except CodatError as error:
            # Codat down, rate limiting or answering nonsense: stop asking this run; what is due stays due.
            logger.warning("keep-alive stopped", extra={"error": type(error).__name__})
            self.stopped = True
            return False
        asked.add(idempotency_key)
        return True


def run_lifecycle(services: Services) -> LifecycleReport:
    """Every reminder and refresh due now, oldest first, until the function's time runs low (the next run carries on:
    what was not done is still due)."""
    now = services.clock()
    policy = services.catalog.consent_clock
    report = LifecycleReport()
    run = _Run(services, policy, _KeepAlive(services, now), now, report)
    for due in services.store.due_lifecycle(now):
        left = services.time_left() if services.time_left is not None else None
        if left is not None and left < _TIME_RESERVE_SECONDS:
            report.stopped = "time_low"
            break
        report.due += 1
        for _ in range(_ATTEMPTS):
            view = services.store.get_company_by_id(due.company_id)
            if view is not None and due.is_company:
                try:
                    run.visit_company(view)
                except (ConflictError, StoreRejected):
                    continue
                break
            connection = _connection(view, due.connection_id)
            if view is None or connection is None:
                break  # erased meanwhile (its items went with it)
            try:
                run.visit(view, connection)
            except (ConflictError, StoreRejected):
                continue
            break
        else:
            logger.warning(
                "lifecycle left an item for the next run",
                extra={"company_id": due.company_id, "connection_id": due.connection_id or None},
            )
            report.skipped.append(due.connection_id or due.company_id)
    logger.info("consent lifecycle", extra={"lifecycle": report.to_dict()})
    metrics.add_metric(name="ConsentRemindersSent", unit="Count", value=report.sent)
    metrics.add_metric(name="KeepAliveRefreshes", unit="Count", value=report.refreshed)
    metrics.add_metric(name="KeepAliveDeferred", unit="Count", value=report.deferred)
    metrics.add_metric(name="DataReadsQueued", unit="Count", value=report.data_reads)
    metrics.add_metric(name="DataReadsDeferred", unit="Count", value=report.data_deferred)
    metrics.add_metric(name="LifecycleSkipped", unit="Count", value=len(report.skipped))
    return report


def _connection(view: CompanyView | None, connection_id: str) -> ConnectionRecord | None:
    if view is None:
        return None
    return next((c for c in view.connections if c.connection_id == connection_id and not c.deleted), None)


@dataclass
class _Run:
    services: Services
    policy: ConsentClockPolicy
    keep_alive: _KeepAlive
    now: datetime
    report: LifecycleReport
    # Reads asked of Codat this run (their idempotency keys): a retried write does not ask again.
    asked: set[str] = field(default_factory=set)
    # Codat failed a request to end consent or delete data: none more this run (what is due stays due).
    codat_stopped: bool = False
    # The one-off unlinks asked of Codat this run: connection id → the event its consent's end follows.
    unlinks_asked: dict[str, str] = field(default_factory=dict)

    def visit_company(self, view: CompanyView) -> None:
        """End the company's spent one-off consents and delete in Codat the data whose retention ran out; settle it
        now (its data state as time makes it: `consent.journey.data_stale` when ready data has grown too old), and
        queue the reads its journeys want of their stale data; write it, once (ConflictError: it changed since it
        was read; what Codat was asked is asked again with the same keys, or found done)."""
        catalog, now = self.services.catalog, self.now
        events = ConnectionEvents(view)
        ended: dict[str, int] = {}
        extra: list[LedgerRecord] = []
        retracted: list[LedgerKey] = []
        erased = self._end_consent(view, events, ended, extra, retracted)
        change = events.change(catalog, now=now)
        assert change.company is not None
        company = change.company
        if erased:
            company = company.model_copy(update={"codat_erased_at": now})
        wanted = dict(company.data_wanted)
        asked = {journey: list(keys) for journey, keys in company.data_asked.items() if journey in wanted}
        for journey, since in company.data_wanted.items():
            definition = catalog.get(journey)
            progress = next((p for p in company.journeys if p.journey == journey), None)
            if definition is None or definition.data is None or progress is None or progress.data is None:
                del wanted[journey]  # no longer declares data: nothing to read
                asked.pop(journey, None)
                continue
            done = asked.setdefault(journey, [])
            if self._ask_stale(view, definition, progress.data, since, done):
                del wanted[journey]
                del asked[journey]
                self.report.data_reads += 1
            else:
                self.report.data_deferred += 1
        company = company.model_copy(update={"data_wanted": wanted, "data_asked": asked})
        self.services.store.commit(
            dataclasses.replace(
                change,
                company=company,
                ledger=[*change.ledger, *extra],
                retracted=[*change.retracted, *retracted],
            )
        )
        self.report.settled += 1
        for name, count in ended.items():  # counted once written (a write that lost a race did nothing)
            setattr(self.report, name, getattr(self.report, name) + count)

    def _end_consent(
        self,
        view: CompanyView,
        events: ConnectionEvents,
        ended: dict[str, int],
        extra: list[LedgerRecord],
        retracted: list[LedgerKey],
    ) -> bool:
        """Unlink the connections whose one-off consent is spent, and delete in Codat those whose retention ran out
        (then the company, when nothing of it is left), recording each in `events` (or, for entries that are not a
        connection's status event, in `extra` and `retracted`). Whether the company was erased in Codat (then the
        caller sets `codat_erased_at`). `ended` counts what it recorded."""
        catalog, now, codat = self.services.catalog, self.now, self.services.codat
        company = view.company
        for connection in view.connections:
            reported = _reported_by_codat(
                connection, EventKind.UNLINKED, self.unlinks_asked.get(connection.connection_id)
            )
            if reported is not None:
                # This run had Codat unlink it, and Codat's webhook was recorded before our write (a retry after the
                # conflict): her consent's end is the news, Codat's report its confirmation.
                cause = self.unlinks_asked[connection.connection_id]
                extra.append(
                    connection_entry(
                        company,
                        LedgerEntryType.CONSENT_FULFILLED,
                        connection=connection,
                        actor=Actor.customer(company.customer_id),
                        at=reported.at,
                        entry_id=f"one-off:{connection.connection_id}:{cause}",
                        status=ConnectionStatus.UNLINKED,
                        detail=_FULFILLED,
                        seq=_BEFORE_ITS_CONFIRMATION,
                    )
                )
                extra.append(_confirmation(company, connection, reported))
                retracted.append(LedgerKey(reported.at, 0, entry_id_of(reported)))
                ended["unlinked"] = ended.get("unlinked", 0) + 1
        for connection in retention.one_off_unlinks(catalog, company, view.connections):
            latest = derive(connection.history).latest
            cause = latest.id if latest is not None else "created"
            key = str(uuid.uuid5(_ONE_OFF_NAMESPACE, f"{company.company_id}:{connection.connection_id}:{cause}"))
            unlink = partial(codat.unlink_connection, company.company_id, connection.connection_id, idempotency_key=key)
            # Refused: Codat unlinks only Linked connections. Unlinked there already is done (an earlier run's write
            # was lost after Codat did it); anything else waits for what Codat reports.
            unlinked = partial(self._unlinked_in_codat, company.company_id, connection.connection_id)
            if not self._codat(unlink, done_already=unlinked, key=key):
                continue
            self.unlinks_asked[connection.connection_id] = cause
            event = StatusEvent(
                at=_after(connection, now),
                id=f"one-off:{connection.connection_id}:{cause}",
                kind=EventKind.UNLINKED,
                actor=Actor.customer(company.customer_id),
            )
            events.record(
                connection.connection_id,
                event,
                ledger_type=LedgerEntryType.CONSENT_FULFILLED,
                entry_id=event.id,
                detail=_FULFILLED,
            )
            ended["unlinked"] = ended.get("unlinked", 0) + 1
        purged_meanwhile: set[str] = set()
        for connection in view.connections:
            key = f"delete:{connection.connection_id}"
            reported = _reported_by_codat(connection, EventKind.DELETED, "asked" if key in self.asked else None)
            if reported is not None:
                # This run had Codat delete it, and Codat's webhook was recorded before our write (a retry after the
                # conflict): our purge is the news, Codat's report its confirmation.
                days = retention.retain_days(catalog, company, connection)
                purge = entry(
                    company,
                    LedgerEntryType.DATA_PURGED,
                    actor=Actor.CONSENT_CLOCK,
                    at=reported.at,
                    entry_id=f"purge:{connection.connection_id}",
                    connection_id=connection.connection_id,
                    platform_key=connection.platform_key,
                    source_type=connection.source_type,
                    detail=f"its data deleted in Codat, {days} days after consent ended",
                    retain_days=days,
                    seq=_BEFORE_ITS_CONFIRMATION,
                )
                extra.extend([purge, _confirmation(company, connection, reported)])
                retracted.append(LedgerKey(reported.at, 0, entry_id_of(reported)))
                purged_meanwhile.add(connection.connection_id)
                ended["purged"] = ended.get("purged", 0) + 1
                continue
            due = retention.purge_at(catalog, company, connection)
            if due is None or due > now:
                continue
            delete = partial(codat.delete_connection, company.company_id, connection.connection_id)
            if not self._codat(delete, done_already=_gone, key=key):
                continue
            event = StatusEvent(
                at=_after(connection, now),
                id=f"purge:{connection.connection_id}",
                kind=EventKind.DELETED,
                actor=Actor.CONSENT_CLOCK,
            )
            days = retention.retain_days(catalog, company, connection)
            events.record(
                connection.connection_id,
                event,
                ledger_type=LedgerEntryType.DATA_PURGED,
                entry_id=event.id,
                detail=f"its data deleted in Codat, {days} days after consent ended",
                retain_days=days,
            )
            ended["purged"] = ended.get("purged", 0) + 1
        connections = [events.connection(c.connection_id) or c for c in view.connections]
        erase = partial(codat.delete_company, company.company_id)
        if (
            company.codat_erased_at is None
            and connections
            and all(c.deleted for c in connections)
            # the last of them purged (its retention ran out): the company holds nothing more worth keeping
            and (
                bool(purged_meanwhile)
                or any(e.id == f"purge:{c.connection_id}" for c in connections for e in c.history)
            )
            and self._codat(erase, done_already=_gone, key=f"delete:{company.company_id}")
        ):
            ended["erased"] = ended.get("erased", 0) + 1
            extra.append(
                entry(
                    company,
                    LedgerEntryType.DATA_PURGED,
                    actor=Actor.CONSENT_CLOCK,
                    at=now,
                    entry_id=f"purge:company:{company.company_id}",
                    detail="nothing of the company was left: erased in Codat (its history stays here)",
                    seq=_AFTER_ITS_CONNECTIONS,
                )
            )
            return True
        return False

    def _codat(self, call: Callable[[], object], *, done_already: Callable[[CodatError], bool], key: str) -> bool:
        """Ask Codat to end consent or delete data: whether it is done. A refusal or a 404 is done if
        `done_already` says so (deleted already; unlinked already, by an earlier attempt whose write was lost), else
        not done: what Codat says of the connection comes by webhook or reconciliation. Codat down or rate limiting:
        not done, and no more asked this run (it stays due). `key`: what is asked; asked once a run (a write
        retried after a conflict does not ask again)."""
        if key in self.asked:
            return True
        if self.codat_stopped:
            return False
        try:
            call()
        except (CodatNotFound, CodatRejected) as error:
            if done_already(error):
                self.asked.add(key)
                return True
            logger.warning("lifecycle request refused", extra={"error": str(error)})
            return False
        except CodatAuthFailed:
            raise  # our API key refused: the run fails loudly (LifecycleErrorsAlarm)
        except CodatError as error:
            logger.warning("lifecycle stopped asking Codat", extra={"error": type(error).__name__})
            self.codat_stopped = True
            return False
        self.asked.add(key)
        return True

    def _unlinked_in_codat(self, company_id: str, connection_id: str, refusal: CodatError) -> bool:
        """Whether Codat, refusing to unlink the connection, has it Unlinked already."""
        if not isinstance(refusal, CodatRejected):
            return False  # 404: gone in Codat; its delete comes by webhook or reconciliation
        try:
            reported = self.services.codat.get_connection(company_id, connection_id)
        except CodatAuthFailed:
            raise
        except CodatError:
            return False
        return ConnectionStatus.from_codat(reported.status) == ConnectionStatus.UNLINKED

    def _ask_stale(
        self, view: CompanyView, journey: JourneyDefinition, data: JourneyData, since: datetime, done: list[str]
    ) -> bool:
        """Queue a read of each of the journey's stale types on the Linked connections that read it, but those in
        `done` (asked for already; what this asks for is added): whether every one is asked for. A type no Linked
        connection reads waits for one to be linked: its first read comes then."""
        assert journey.data is not None
        max_age = timedelta(days=journey.data.max_age_days)
        for state in data.types:
            if state.last_read_at is not None and state.last_read_at + max_age > self.now:
                continue  # fresh
            source_type = source_type_of(state.data_type)
            readers = [
                c
                for c in view.connections
                if c.source_type == source_type
                and journey.allows(source_type)
                and c.status == ConnectionStatus.LINKED
                and not c.deleted
            ]
            for connection in readers:
                read = f"{state.data_type}:{connection.connection_id}"
                if read in done:
                    continue
                # Named by the journey's want: whoever asks for it (a retried run, a concurrent one) queues it once.
                key = f"data:{journey.name}:{read}:{sortable(since)}"
                company_id = view.company.company_id
                if not self.keep_alive.queue(company_id, connection, state.data_type, key, asked=self.asked):
                    return False
                done.append(read)
        return True

    def visit(self, view: CompanyView, connection: ConnectionRecord) -> None:
        """Do what is due for the connection and write it, once (ConflictError: it changed since it was read; what
        was asked of Codat before is not asked again when it is retried)."""
        policy, now = self.policy, self.now
        current = connection.clocked(policy)  # as the policy reads it today (it may have changed since the write)
        ledger: list[LedgerRecord] = []
        outcome: list[str] = []
        if current.refresh_at is not None and current.refresh_at <= now:
            if self.keep_alive.refresh(view, current, policy, asked=self.asked):
                current = current.with_refresh_requested(policy, now)
                outcome.append("refreshed")
            else:
                outcome.append("deferred")
        if current.remind_at is not None and current.remind_at <= now:
            reminder = _reminder(view, current, policy, now)
            if reminder is None:
                current = current.with_reminder(policy, min(policy.reminder_days))
                outcome.append("lapsed")
            else:
                ledger.append(reminder)
                current = current.with_reminder(policy, reminder.reminder_days or 0)
                outcome.append("sent")
        # Written even when nothing was due after all (the connection or the policy changed): its index entry moves.
        self.services.store.commit(Change(updated=[current], ledger=ledger))
        for name in outcome:
            setattr(self.report, name, getattr(self.report, name) + 1)


def _reminder(
    view: CompanyView, connection: ConnectionRecord, policy: ConsentClockPolicy, now: datetime
) -> LedgerRecord | None:
    """The reminder due now (None: consent has lapsed, too late to warn; Codat will report the lapse)."""
    renew_by, expires_at = connection.renew_by, connection.consent_expires_at
    assert renew_by is not None, "a reminder is due only on a known clock"
    assert expires_at is not None, "a reminder is due only on a known clock"
    if now >= expires_at:
        return None
    reminded = connection.reminded
    sent = reminded.days if reminded is not None and reminded.renew_by == renew_by else None
    days = reminder_due(policy, renew_by, sent, now)
    assert days is not None, "remind_at is due, so a reminder is"
    return connection_entry(
        view.company,
        LedgerEntryType.CONNECTION_EXPIRING,
        connection=connection,
        actor=Actor.CONSENT_CLOCK,
        at=now,
        # One per connection, consent period and lead time: the same id whoever sends it.
        entry_id=f"connection:{connection.connection_id}:expiring:{sortable(renew_by)}:{days}",
        status=ConnectionStatus.LINKED,
        consent_expires_at=expires_at,
        renew_by=renew_by,
        reminder_days=days,
    )
