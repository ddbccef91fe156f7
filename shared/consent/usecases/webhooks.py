"""Codat's webhooks applied to the consent state: exactly once per webhook id, order-safe, lossless.

Each authentic event becomes one transaction: the connection's new event, the company's journeys
replayed, the ledger entries (which the outbox publishes) and the webhook id remembered. An event that
can never be applied is parked with its reason and acknowledged, so Codat does not retry it for a day."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from consent.domain.ledger import confirmed_by, connection_entry, entry_id_of
from consent.domain.progress import settle
from consent.domain.records import CompanyView, ConnectionRecord, LedgerRecord
from consent.domain.resources import Actor, ConnectionStatus, LedgerEntryType, SdkComponent, SourceType
from consent.domain.timeline import StatusEvent
from consent.domain.transitions import KIND_SETTING, TRANSITIONS, EventKind
from consent.observability import logger, metrics
from consent.services import Services
from consent.store import Change, ConflictError, ParkedWebhook
from consent.usecases.recording import ConnectionEvents
from consent.webhooks.codat_events import ConnectionPayload, ReadPayload, WebhookConnection, WebhookEnvelope

_P = TypeVar("_P")
_ATTEMPTS = 4
_MAX_DATA_TYPES_IN_ENTRY = 50
_RECENT_READS = 8  # read webhook ids kept on a connection (see ConnectionRecord.recent_reads)

_CONNECTION_EVENTS = {
    "connection.created": EventKind.CREATED,
    "connection.connected": EventKind.LINKED,
    "connection.reconnected": EventKind.LINKED,
    "connection.failed": EventKind.FAILED,
    "connection.disconnected": None,  # Unlinked or Deauthorized: the payload's status says which
    "connection.deleted": EventKind.DELETED,
}
_IN_CONNECTIONS = "disconnected in Codat's Connections SDK in the bank's page"
_DISCONNECTED = {s: KIND_SETTING[s] for s in (ConnectionStatus.UNLINKED, ConnectionStatus.DEAUTHORIZED)}
_READ_EVENTS = frozenset({"read.completed", "read.completed.initial"})
_COMPANY_EVENTS = frozenset({"company.deleted"})
# Events about the client or the company that need no change of ours: remembered (so never re-applied)
# and logged.
_NOTICES = frozenset({"company.created", "client.rateLimit.reached", "client.rateLimit.reset"})
# Of those, the one an operator should look at: the client ran out of Codat quota. The rest are routine.
_NOTICES_TO_LOOK_AT = frozenset({"client.rateLimit.reached"})
# Every Codat event type `apply_webhook` dispatches (any other is parked): what Codat's webhook consumer for our
# receiver must subscribe to (`consent.usecases.webhook_consumers`).
HANDLED_EVENT_TYPES = frozenset(_CONNECTION_EVENTS) | _READ_EVENTS | _COMPANY_EVENTS | _NOTICES


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"
    NOTED = "noted"


class Unapplicable(Exception):
    """An authentic event that can never be applied (unknown company, type or shape): to be parked."""

    def __init__(self, reason: str, *, company_id: str | None = None, connection_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.company_id = company_id
        self.connection_id = connection_id


@dataclass(frozen=True)
class Applied:
    outcome: Outcome
    event_type: str


def apply_webhook(services: Services, webhook_id: str, envelope: WebhookEnvelope) -> Applied:
    """Apply one verified Codat event exactly once (a redelivery changes nothing)."""
    if services.store.webhook_seen(webhook_id):
        return Applied(Outcome.DUPLICATE, envelope.event_type)
    for _ in range(_ATTEMPTS):
        try:
            return _apply_once(services, webhook_id, envelope)
        except Unapplicable as unapplicable:
            return _park(services, webhook_id, envelope, unapplicable)
        except ConflictError:
            # A concurrent delivery of the same webhook won, or the company changed under us: look again.
            if services.store.webhook_seen(webhook_id):
                return Applied(Outcome.DUPLICATE, envelope.event_type)
    raise ConflictError("the company kept changing while this webhook was applied")


def _apply_once(services: Services, webhook_id: str, envelope: WebhookEnvelope) -> Applied:
    kind = envelope.event_type
    if kind in _CONNECTION_EVENTS:
        _apply_connection_event(services, webhook_id, envelope)
    elif kind in _READ_EVENTS:
        _apply_read(services, webhook_id, envelope, initial=kind == "read.completed.initial")
    elif kind in _COMPANY_EVENTS:
        _apply_company_deleted(services, webhook_id, envelope)
    elif kind in _NOTICES:
        log = logger.warning if kind in _NOTICES_TO_LOOK_AT else logger.info
        log("codat notice", extra={"codat_event_type": kind, "webhook_id": webhook_id})
        services.store.commit(Change(webhook_id=webhook_id))
        return Applied(Outcome.NOTED, kind)
    else:
        raise Unapplicable(f"event type {kind[:100]!r} is not part of the consent journey")
    return Applied(Outcome.APPLIED, kind)


def _parse(parse: Callable[[], _P]) -> _P:
    try:
        return parse()
    except ValidationError as error:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in error.errors()})[:5]
        raise Unapplicable(f"payload does not fit: {', '.join(fields)}") from error


def _company(services: Services, company_id: str) -> CompanyView:
    view = services.store.get_company_by_id(company_id)
    if view is None:
        raise Unapplicable("unknown company", company_id=company_id)
    return view


def _apply_connection_event(services: Services, webhook_id: str, envelope: WebhookEnvelope) -> None:
    payload = _parse(lambda: ConnectionPayload.model_validate(envelope.payload))
    company_id, reported = payload.reference_company.id, payload.connection
    view = _company(services, company_id)
    reported_status = ConnectionStatus.from_codat(reported.status)
    kind = _CONNECTION_EVENTS[envelope.event_type]
    if kind is None:
        kind = _DISCONNECTED.get(reported_status or ConnectionStatus.LINKED)
        if kind is None:
            raise Unapplicable("disconnected without an Unlinked or Deauthorized status", company_id=company_id)
    event = StatusEvent(
        at=envelope.generated_date,
        id=webhook_id,
        kind=kind,
        actor=Actor.CODAT,
        status=(reported_status or ConnectionStatus.PENDING_AUTH) if kind == EventKind.FAILED else None,
        reason=reported.reason if kind == EventKind.FAILED else None,
    )
    known = next((c for c in view.connections if c.connection_id == reported.id), None)
    events = ConnectionEvents(view)
    company = view.company
    if known is None:
        events.adopt(_adopt(view, reported, envelope, company_id))
        events.consent_given_in_link(reported.id, event.at)  # made in Codat's Link in the bank's page: hers
    ledger_type = TRANSITIONS[kind].entry
    on_behalf_of = None
    if kind == EventKind.CREATED and known is not None:
        # Codat confirming a connection already recorded (and announced): kept, not announced again.
        ledger_type = LedgerEntryType.CODAT_CONNECTION_CREATED
    elif (
        kind == EventKind.UNLINKED
        and known is not None
        and confirmed_by(known, event) is None
        and company.sdk_session(SdkComponent.CONNECTIONS, event.at) is not None
    ):
        # Disconnected while the customer had Codat's Connections component open in the bank's page: her revoke.
        ledger_type, on_behalf_of = LedgerEntryType.CONSENT_REVOKED, Actor.customer(company.customer_id)
    events.record(
        reported.id,
        event,
        ledger_type=ledger_type,
        entry_id=entry_id_of(event),
        detail=_IN_CONNECTIONS if on_behalf_of is not None else None,
        on_behalf_of=on_behalf_of,
    )
    services.store.commit(events.change(services.catalog, now=services.clock(), webhook_id=webhook_id))


def _adopt(
    view: CompanyView, reported: WebhookConnection, envelope: WebhookEnvelope, company_id: str
) -> ConnectionRecord:
    """A connection made outside our API (Codat's hosted link, the Link SDK): the company's, from now on."""
    source_type = SourceType.from_codat(reported.source_type)
    if source_type is None:
        raise Unapplicable(
            f"source type {str(reported.source_type)[:32]!r} is not served",
            company_id=company_id,
            connection_id=reported.id,
        )
    return ConnectionRecord(
        connection_id=reported.id,
        company_id=company_id,
        customer_id=view.company.customer_id,
        company_created_at=view.company.created_at,
        platform_key=reported.integration_key or "",
        platform_name=reported.platform_name or reported.integration_key or "Unknown",
        source_type=source_type,
        status=ConnectionStatus.PENDING_AUTH,
        created_at=envelope.generated_date,
    )


# How Codat says a data type's read went well.
READ_COMPLETE = "Complete"


def _apply_read(services: Services, webhook_id: str, envelope: WebhookEnvelope, *, initial: bool) -> None:
    payload = _parse(lambda: ReadPayload.model_validate(envelope.payload))
    company_id = payload.reference_company.id
    view = _company(services, company_id)
    by_connection: dict[str, list[dict[str, str]]] = {}
    unplaced = 0
    for read in payload.data_types:
        if read.connection_id is None or read.data_type is None:
            unplaced += 1
            continue
        by_connection.setdefault(read.connection_id, []).append({"dataType": read.data_type, "status": read.status})
    if unplaced:
        # Entries without a connection or a data type (Codat's spec allows it): the rest of the read still counts.
        metrics.add_metric(name="ReadEntriesSkipped", unit=MetricUnit.Count, value=unplaced)
        logger.info("read entries skipped", extra={"webhook_id": webhook_id, "skipped": unplaced})
    known = {c.connection_id: c for c in view.connections}
    if not any(cid in known for cid in by_connection):
        raise Unapplicable("the read is about no connection we know", company_id=company_id)
    # A read about many connections may be written in parts: one an interrupted attempt wrote is skipped.
    touched = [known[cid] for cid in by_connection if cid in known and webhook_id not in known[cid].recent_reads]
    changed: list[ConnectionRecord] = []
    for record in touched:
        updated = record
        if initial:
            updated = updated.with_event(
                StatusEvent(at=envelope.generated_date, id=webhook_id, kind=EventKind.INITIAL_READ, actor=Actor.CODAT)
            )
        reads = [*record.recent_reads[-(_RECENT_READS - 1) :], webhook_id]
        updated = updated.model_copy(update={"recent_reads": reads})
        if updated.last_sync_at is None or envelope.generated_date > updated.last_sync_at:
            updated = updated.model_copy(update={"last_sync_at": envelope.generated_date})
        completed = [d["dataType"] for d in by_connection[record.connection_id] if d["status"] == READ_COMPLETE]
        updated = updated.with_reads(completed, envelope.generated_date, services.catalog.data_ages)
        changed.append(updated)
    by_id = {c.connection_id: c for c in changed}
    connections = [by_id.get(c.connection_id, c) for c in view.connections]
    settled = settle(services.catalog, view.company, connections, now=services.clock())
    ledger: list[LedgerRecord] = [
        connection_entry(
            settled.company,
            LedgerEntryType.SYNC_COMPLETED,
            actor=Actor.CODAT,
            at=envelope.generated_date,
            entry_id=f"webhook:{webhook_id}:{record.connection_id}",
            connection=record,
            data_types=by_connection[record.connection_id][:_MAX_DATA_TYPES_IN_ENTRY],
            detail="initial read" if initial else None,
        )
        for record in changed
    ]
    services.store.commit_in_parts(
        Change(
            company=settled.company,
            updated=[c.clocked(services.catalog.consent_clock) for c in changed],
            ledger=[*ledger, *settled.milestones],
            retracted=settled.retracted,
            webhook_id=webhook_id,
        )
    )


def _apply_company_deleted(services: Services, webhook_id: str, envelope: WebhookEnvelope) -> None:
    """Deleted in Codat (its portal, another system): its connections are gone. Our record stays until
    the customer erases it; their journeys show that action is required.

    A company with many connections may not fit one transaction: it is written in parts, the company and the
    webhook id last, and a connection already marked by an interrupted attempt is skipped, so a retry finishes."""
    company_id = str(envelope.payload.get("id") or "")[:64]
    view = _company(services, company_id)
    event = StatusEvent(at=envelope.generated_date, id=webhook_id, kind=EventKind.DELETED, actor=Actor.CODAT)
    # One deleted already (revoked before authorization, purged, …) has nothing more to record.
    deleted = [c if c.deleted else c.with_event(event) for c in view.connections]
    settled = settle(services.catalog, view.company, deleted, now=services.clock())
    fresh = [after for before, after in zip(view.connections, deleted, strict=True) if after is not before]

    ledger = [
        connection_entry(
            settled.company,
            LedgerEntryType.CONNECTION_DELETED,
            actor=Actor.CODAT,
            at=envelope.generated_date,
            entry_id=f"webhook:{webhook_id}:{c.connection_id}",
            connection=c,
            detail="the company was deleted in Codat",
        )
        for c in fresh
    ]
    services.store.commit_in_parts(
        Change(
            company=settled.company,
            updated=[c.clocked(services.catalog.consent_clock) for c in fresh],
            ledger=[*ledger, *settled.milestones],
            retracted=settled.retracted,
            webhook_id=webhook_id,
        )
    )


def _known_company(services: Services, envelope: WebhookEnvelope, unapplicable: Unapplicable) -> str | None:
    """The company a parked event is about, if it is ours: parked under it, it goes when the company is erased."""
    if unapplicable.reason == "unknown company":
        return None
    reference = envelope.payload.get("referenceCompany")
    candidate = unapplicable.company_id or (reference.get("id") if isinstance(reference, dict) else None)
    candidate = candidate or envelope.payload.get("id")
    if not isinstance(candidate, str) or not 0 < len(candidate) <= 64:
        return None
    return candidate if services.store.company_owner(candidate) is not None else None


def _expected_park(envelope: WebhookEnvelope, unapplicable: Unapplicable) -> bool:
    """Codat's `company.deleted` for a company we no longer hold: the echo of an erasure (ours deletes the company
    at Codat first), or a company that was never ours. Nothing to do either way, so no one needs paging."""
    return envelope.event_type in _COMPANY_EVENTS and unapplicable.reason == "unknown company"


def _park(services: Services, webhook_id: str, envelope: WebhookEnvelope, unapplicable: Unapplicable) -> Applied:
    log = logger.info if _expected_park(envelope, unapplicable) else logger.warning
    log(
        "webhook parked",
        extra={"webhook_id": webhook_id, "codat_event_type": envelope.event_type[:100], "reason": unapplicable.reason},
    )
    with contextlib.suppress(ConflictError):  # parked (or applied) by a concurrent delivery
        services.store.park_webhook(
            ParkedWebhook(
                webhook_id=webhook_id,
                event_type=envelope.event_type,
                generated_at=envelope.generated_date.isoformat(),
                reason=unapplicable.reason,
                company_id=_known_company(services, envelope, unapplicable),
                connection_id=unapplicable.connection_id,
            )
        )
    return Applied(Outcome.PARKED, envelope.event_type)
