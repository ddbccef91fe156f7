"""Settling a company after a change: every journey replayed from its connections' events, and the
journey milestone entries that appear (or, after a late event, disappear) in the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from consent.domain.journeys import JourneyCatalog
from consent.domain.ledger import entry
from consent.domain.records import CompanyRecord, ConnectionRecord, LedgerKey, LedgerRecord
from consent.domain.resources import Actor, JourneyStatus, LedgerEntryType
from consent.domain.timeline import Milestone, replay

MILESTONE_TYPES = {
    JourneyStatus.LINKED: LedgerEntryType.JOURNEY_LINKED,
    JourneyStatus.COMPLETE: LedgerEntryType.JOURNEY_COMPLETED,
    JourneyStatus.ACTION_REQUIRED: LedgerEntryType.JOURNEY_ACTION_REQUIRED,
}
# A milestone entry sorts after the entry of the event that caused it (same time).
MILESTONE_SEQ = 5


@dataclass
class Settled:
    company: CompanyRecord
    milestones: list[LedgerRecord] = field(default_factory=list)
    retracted: list[LedgerKey] = field(default_factory=list)


def settle(
    catalog: JourneyCatalog, company: CompanyRecord, connections: Sequence[ConnectionRecord], *, now: datetime
) -> Settled:
    """`company` with its journeys as its connections' events make them, and the ledger's milestone diff."""
    timelines = [c.to_timeline() for c in connections]
    journeys = []
    reached: list[Milestone] = []
    for progress in company.journeys:
        definition = catalog.get(progress.journey)
        if definition is None:  # dropped from the configuration: keep its last known progress
            journeys.append(progress)
            continue
        result = replay(
            definition,
            started_at=progress.started_at,
            started_by=Actor.customer(company.customer_id),
            connections=timelines,
            counts_at_once_until=progress.started_at if progress.started_at > company.created_at else None,
        )
        journeys.append(result.progress)
        reached.extend(result.milestones)
    updated = company.model_copy(update={"journeys": journeys, "updated_at": now})
    wanted = {m.entry_id: m for m in reached}
    added = [
        entry(
            updated,
            MILESTONE_TYPES[m.status],
            actor=m.actor,
            at=m.at,
            entry_id=m.entry_id,
            journeys=[m.journey],
            journey=m.journey,
            seq=MILESTONE_SEQ,
        )
        for entry_id, m in wanted.items()
        if entry_id not in company.milestones
    ]
    retracted = [
        LedgerKey(at, MILESTONE_SEQ, entry_id) for entry_id, at in company.milestones.items() if entry_id not in wanted
    ]
    # A milestone already in the ledger keeps its entry (and time): it was announced once and stays so.
    updated.milestones = {entry_id: company.milestones.get(entry_id, m.at) for entry_id, m in wanted.items()}
    return Settled(updated, added, retracted)
