"""Building consent ledger entries, including the journey transitions that a change causes.

Ledger entries are also the outbox: each one whose type is a consent event is published to SNS by the
relay that follows the table's stream (see `consent.events`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from consent.domain import LEDGER_ENTRY_TYPES
from consent.store import CompanyRecord, ConnectionRecord, LedgerRecord


def entry(
    company: CompanyRecord,
    type_: str,
    *,
    actor: str,
    at: datetime,
    entry_id: str | None = None,
    journeys: Sequence[str] | None = None,
    **fields: object,
) -> LedgerRecord:
    """An entry about `company`; `journeys` defaults to every journey the company has started."""
    if type_ not in LEDGER_ENTRY_TYPES:
        raise ValueError(f"{type_!r} is not a ledger entry type (consent.domain.LEDGER_ENTRY_TYPES)")
    return LedgerRecord.model_validate(
        {
            "entry_id": entry_id or str(uuid.uuid4()),
            "company_id": company.company_id,
            "customer_id": company.customer_id,
            "type": type_,
            "actor": actor,
            "at": at,
            "journeys": list(journeys) if journeys is not None else [p.journey for p in company.journeys],
            **fields,
        }
    )


def connection_entry(
    company: CompanyRecord,
    type_: str,
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
