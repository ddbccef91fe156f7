"""Building consent ledger entries, including the journey transitions that a change causes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from consent.domain import JourneyProgress, JourneyStatus
from consent.store import LedgerRecord

# A journey entering one of these states is worth an entry (and, through the outbox, an event).
_JOURNEY_MILESTONES = {
    JourneyStatus.LINKED: "journey.linked",
    JourneyStatus.COMPLETE: "journey.completed",
    JourneyStatus.ACTION_REQUIRED: "journey.action_required",
}


def entry(
    company_id: str,
    type_: str,
    *,
    actor: str,
    at: datetime,
    journeys: Sequence[str],
    entry_id: str | None = None,
    **fields: object,
) -> LedgerRecord:
    return LedgerRecord.model_validate(
        {
            "entry_id": entry_id or str(uuid.uuid4()),
            "company_id": company_id,
            "type": type_,
            "actor": actor,
            "at": at,
            "journeys": list(journeys),
            **fields,
        }
    )


def journey_transitions(
    company_id: str,
    before: Sequence[JourneyProgress],
    after: Sequence[JourneyProgress],
    *,
    actor: str,
    at: datetime,
    id_prefix: str | None = None,
) -> list[LedgerRecord]:
    """Entries for each journey whose status reached a milestone in this change."""
    previous = {progress.journey: progress.status for progress in before}
    entries = []
    for progress in after:
        milestone = _JOURNEY_MILESTONES.get(progress.status)
        if milestone and previous.get(progress.journey) != progress.status:
            entries.append(
                entry(
                    company_id,
                    milestone,
                    actor=actor,
                    at=at,
                    journeys=[progress.journey],
                    journey=progress.journey,
                    entry_id=f"{id_prefix}:{milestone}:{progress.journey}" if id_prefix else None,
                )
            )
    return entries
