"""Building consent ledger entries, including the journey transitions that a change causes.

Ledger entries are also the outbox: each one whose type is a consent event is published to SNS by the
relay that follows the table's stream (see `consent.events`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from consent.domain import JourneyProgress, JourneyStatus
from consent.store import CompanyRecord, LedgerRecord

# A journey entering one of these states is worth an entry (and so an event).
_JOURNEY_MILESTONES = {
    JourneyStatus.LINKED: "journey.linked",
    JourneyStatus.COMPLETE: "journey.completed",
    JourneyStatus.ACTION_REQUIRED: "journey.action_required",
}


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


def journey_transitions(
    company: CompanyRecord,
    before: Sequence[JourneyProgress],
    *,
    actor: str,
    at: datetime,
    id_prefix: str | None = None,
) -> list[LedgerRecord]:
    """Entries for each of `company`'s journeys whose status reached a milestone since `before`."""
    previous = {progress.journey: progress.status for progress in before}
    entries = []
    for progress in company.journeys:
        milestone = _JOURNEY_MILESTONES.get(progress.status)
        if milestone and previous.get(progress.journey) != progress.status:
            entries.append(
                entry(
                    company,
                    milestone,
                    actor=actor,
                    at=at,
                    journeys=[progress.journey],
                    journey=progress.journey,
                    entry_id=f"{id_prefix}:{milestone}:{progress.journey}" if id_prefix else None,
                )
            )
    return entries
