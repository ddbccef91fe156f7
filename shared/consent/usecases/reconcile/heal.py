"""Healing the drift: what Codat reports recorded as status events observed at the time of the check, through the
same order-safe step as the webhooks."""

from __future__ import annotations

import uuid
from datetime import timedelta

from consent.codat.models import CodatConnection
from consent.domain.ledger import entry_id_of
from consent.domain.records import CompanyView, ConnectionRecord
from consent.domain.resources import Actor, ConnectionStatus, LedgerEntryType, SourceType
from consent.domain.timeline import StatusEvent, derive
from consent.domain.transitions import KIND_SETTING, TRANSITIONS, EventKind
from consent.observability import logger
from consent.services import Services
from consent.usecases.reconcile.reads import heal_reads
from consent.usecases.reconcile.report import CompanyCheck, Observation
from consent.usecases.recording import ConnectionEvents

# Ids of what reconciliation records are derived from what it observed (uuid5), never random: two runs that
# see the same drift write the same ledger entry, which the store accepts once.
_NAMESPACE = uuid.UUID("8d2f6a4e-3c1b-4f7e-9a55-2e6b0c9d71a3")


_OBSERVED = "found in Codat by reconciliation (the webhook never arrived)"


def heal(services: Services, view: CompanyView, seen: Observation) -> tuple[ConnectionEvents, CompanyCheck]:
    """Every difference between what Codat reported (`seen`) and the company's connections, as events to record: their
    status and last sync, and the complete reads of the data its journeys need."""
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
    # Last: the reads are the Linked connections', as they are once their status is Codat's.
    ids = [*(c.connection_id for c in view.connections), *seen.connections]
    check.data_reads_healed, check.data_reads_ambiguous = heal_reads(services.catalog, events, ids, seen.data)
    return events, check


def _event_id(*observed: object) -> str:
    return "reconcile:" + str(uuid.uuid5(_NAMESPACE, "|".join(str(part) for part in observed)))


def _follow(events: ConnectionEvents, record: ConnectionRecord, reported: CodatConnection, seen: Observation) -> None:
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


def _gone(events: ConnectionEvents, record: ConnectionRecord, seen: Observation) -> None:
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


def _expire(events: ConnectionEvents, connection_id: str, seen: Observation, max_age_hours: int) -> None:
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
    if events.consent_given_in_link(reported.id, reported.created):
        current = events.connection(reported.id)
        assert current is not None
        return current
    event_id = _event_id(reported.id, "created")
    created = StatusEvent(at=reported.created, id=event_id, kind=EventKind.CREATED, actor=Actor.RECONCILE)
    return events.record(
        reported.id,
        created,
        ledger_type=LedgerEntryType.CONNECTION_CREATED,
        entry_id=entry_id_of(created),
        detail=_OBSERVED,
    )
