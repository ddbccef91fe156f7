"""The consent ledger's entries: how they are built, how Codat's confirmations of our own changes are placed, and
which events are late.

Ledger entries are also the outbox: each one whose type is a consent event is published to SNS by the
relay that follows the table's stream (see `consent.events`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from consent.domain.records import CompanyRecord, ConnectionRecord, LedgerRecord
from consent.domain.resources import Actor, LedgerEntryType
from consent.domain.timeline import StatusEvent, derive
from consent.domain.transitions import TRANSITIONS, EventKind

LATE = "arrived after a newer event about this connection: recorded, status unchanged"
# How far after the confirmed entry a confirmation is placed: the ledger's resolution, so nothing fits between.
_JUST_AFTER = timedelta(microseconds=1)


def confirmed_by(connection: ConnectionRecord, event: StatusEvent) -> StatusEvent | None:
    """The event of ours that Codat's `event` reports back, or None when it reports something new.

    `connection.created` confirms our creation of the connection (a customer's request, or reconciliation's
    adoption); an unlink or a delete confirms ours when ours is the last thing that happened to the connection
    (a revoke, a withdrawal). An unlink after a newer authorization is not a confirmation: it is late.

    A confirmation (`Transition.confirmation`) is recorded, never announced again, and never "late" however Codat's
    clock stamped it: it is placed in the ledger just after the entry it confirms (`placed_after`)."""
    if event.actor != Actor.CODAT or TRANSITIONS[event.kind].confirmation is None:
        return None
    if event.kind == EventKind.CREATED:
        return min(
            (e for e in connection.history if e.kind == EventKind.CREATED and e.actor != Actor.CODAT),
            key=lambda e: e.order,
            default=None,
        )
    latest = derive(e for e in connection.history if e.id != event.id).latest
    if latest is not None and latest.kind == event.kind and latest.actor != Actor.CODAT:
        return latest
    return None


def placed_after(event: StatusEvent, confirmed: StatusEvent) -> datetime:
    """Where a confirmation goes in the ledger: when Codat says it happened, but never before what it confirms
    (Codat stamps its own change before we record ours: it answered our request first)."""
    return max(event.at, confirmed.at + _JUST_AFTER)


def entry_id_of(event: StatusEvent) -> str:
    """The id of the ledger entry that records a status event about a connection: Codat's webhooks are recorded
    as `webhook:<webhook id>`, every other writer's events under their own id."""
    return f"webhook:{event.id}" if event.actor == Actor.CODAT else event.id


def entry(
    company: CompanyRecord,
    type_: LedgerEntryType,
    *,
    actor: str,
    at: datetime,
    entry_id: str | None = None,
    journeys: Sequence[str] | None = None,
    **fields: object,
) -> LedgerRecord:
    """An entry about `company`; `journeys` defaults to every journey the company has started."""
    return LedgerRecord.model_validate(
        {
            "entry_id": entry_id or str(uuid.uuid4()),
            "company_id": company.company_id,
            "customer_id": company.customer_id,
            "type": LedgerEntryType(type_).value,  # a closed set: anything else is a ValueError
            "actor": actor,
            "at": at,
            "journeys": list(journeys) if journeys is not None else [p.journey for p in company.journeys],
            **fields,
        }
    )


def connection_entry(
    company: CompanyRecord,
    type_: LedgerEntryType,
    *,
    connection: ConnectionRecord,
    actor: str,
    at: datetime,
    entry_id: str | None = None,
    journeys: Sequence[str] | None = None,
    **fields: object,
) -> LedgerRecord:
    """An entry about one of `company`'s connections: its id, platform and source type filled in."""
    return entry(
        company,
        type_,
        actor=actor,
        at=at,
        entry_id=entry_id,
        journeys=journeys,
        connection_id=connection.connection_id,
        platform_key=connection.platform_key,
        source_type=connection.source_type,
        **fields,
    )
