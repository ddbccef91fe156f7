"""Settling a company after a change: every journey replayed from its connections' events, and the entries derived
from those events that appear (or, after a late event, disappear) in the ledger: journey milestones and consent
renewals."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from consent.domain.consent_clock import ConsentClockPolicy, consent_clock
from consent.domain.data_readiness import DataTransition, data_transitions, journey_data
from consent.domain.journeys import JourneyAccess, JourneyCatalog
from consent.domain.ledger import connection_entry, entry
from consent.domain.records import CompanyRecord, ConnectionRecord, LedgerKey, LedgerRecord
from consent.domain.resources import (
    Actor,
    ConnectionStatus,
    DataStatus,
    JourneyProgress,
    JourneyStatus,
    LedgerEntryType,
)
from consent.domain.retention import one_off_done, retention_at
from consent.domain.timeline import Milestone, StatusEvent, renewals, replay

MILESTONE_TYPES = {
    JourneyStatus.LINKED: LedgerEntryType.JOURNEY_LINKED,
    JourneyStatus.COMPLETE: LedgerEntryType.JOURNEY_COMPLETED,
    JourneyStatus.ACTION_REQUIRED: LedgerEntryType.JOURNEY_ACTION_REQUIRED,
}
# A milestone entry sorts after the entry of the event that caused it (same time).
MILESTONE_SEQ = 5
DATA_TYPES = {
    DataStatus.READY: LedgerEntryType.JOURNEY_DATA_READY,
    DataStatus.STALE: LedgerEntryType.JOURNEY_DATA_STALE,
}


@dataclass
class Settled:
    company: CompanyRecord
    milestones: list[LedgerRecord] = field(default_factory=list)
    retracted: list[LedgerKey] = field(default_factory=list)


def settle(
    catalog: JourneyCatalog, company: CompanyRecord, connections: Sequence[ConnectionRecord], *, now: datetime
) -> Settled:
    """`company` with its journeys as its connections' events make them, and the ledger's diff of what is derived
    from those events (milestones, renewals, data readiness)."""
    timelines = [c.to_timeline() for c in connections]
    journeys = []
    reached: list[Milestone] = []
    data: list[tuple[str, int, DataTransition]] = []
    frozen: set[str] = set()
    for progress in company.journeys:
        definition = catalog.get(progress.journey)
        if definition is None:  # dropped from the configuration: keep its last known progress
            journeys.append(progress)
            continue
        if definition.access == JourneyAccess.ONE_OFF and one_off_done(company, definition):
            # Its one-off consent is spent (its data was read): it stays as it was. Ending that consent, as designed,
            # is no news for it (not "action required", not "data stale").
            journeys.append(progress)
            frozen.add(definition.name)
            continue
        # A journey started after the company's creation starts from what is already there; the first one walks
        # every event (its connections all came after it, whatever Codat's clock says).
        counts_at_once_until = progress.started_at if progress.started_at > company.created_at else None
        result = replay(
            definition,
            started_at=progress.started_at,
            started_by=Actor.customer(company.customer_id),
            connections=timelines,
            counts_at_once_until=counts_at_once_until,
        )
        if definition.data is not None:
            result.progress.data = journey_data(definition.data, connections, now)
            transitions = data_transitions(
                definition.data,
                connections,
                started_at=counts_at_once_until,
                started_by=Actor.customer(company.customer_id),
                now=now,
            )
            counted: dict[DataStatus, int] = {}
            for transition in transitions:
                counted[transition.status] = counted.get(transition.status, 0) + 1
                data.append((progress.journey, counted[transition.status], transition))
        journeys.append(result.progress)
        reached.extend(result.milestones)
    data_wanted = _data_wanted(company, journeys, reached, now)
    data_asked = {journey: asked for journey, asked in company.data_asked.items() if journey in data_wanted}
    updated = company.model_copy(
        update={"journeys": journeys, "updated_at": now, "data_wanted": data_wanted, "data_asked": data_asked}
    )
    # Every derived entry the events call for (entry id → when, and how to build it: only new ones are built).
    wanted: dict[str, tuple[datetime, Callable[[], LedgerRecord]]] = {
        m.entry_id: (m.at, partial(_milestone_entry, updated, m)) for m in reached
    }
    for entry_id, at in company.milestones.items():
        if entry_id.startswith("journey:") and entry_id.split(":")[1] in frozen:
            wanted[entry_id] = (at, _recorded)
    for journey, ordinal, transition in data:
        data_id = data_entry_id(journey, transition.status, ordinal)
        wanted[data_id] = (transition.at, partial(_data_entry, updated, journey, data_id, transition))
    for connection in connections:
        for ordinal, event in enumerate(renewals(connection.history), start=1):
            renewal = partial(_renewal_entry, updated, connection, catalog.consent_clock, event, ordinal)
            wanted[renewal_id(connection.connection_id, ordinal)] = (event.at, renewal)
    added = [build() for entry_id, (_, build) in wanted.items() if entry_id not in company.milestones]
    retracted = [
        LedgerKey(at, MILESTONE_SEQ, entry_id) for entry_id, at in company.milestones.items() if entry_id not in wanted
    ]
    # An entry already in the ledger keeps its place (and time): it was announced once and stays so.
    updated.milestones = {entry_id: company.milestones.get(entry_id, at) for entry_id, (at, _) in wanted.items()}
    updated.retention_at = retention_at(catalog, updated, connections, now)
    return Settled(updated, added, retracted)


def _recorded() -> LedgerRecord:
    raise AssertionError("an entry already recorded is never built again")


def _data_wanted(
    company: CompanyRecord, journeys: Sequence[JourneyProgress], reached: Sequence[Milestone], now: datetime
) -> dict[str, datetime]:
    """The journeys whose stale data should be read again: those that wanted it already, and those that have just
    become complete (a milestone the company has not recorded yet); not one whose data is ready."""
    wanted = dict(company.data_wanted)
    for milestone in reached:
        if milestone.status == JourneyStatus.COMPLETE and milestone.entry_id not in company.milestones:
            wanted.setdefault(milestone.journey, now)
    stale = {p.journey for p in journeys if p.data is not None and p.data.status == DataStatus.STALE}
    return {journey: since for journey, since in wanted.items() if journey in stale}


def data_entry_id(journey: str, status: DataStatus, ordinal: int) -> str:
    # Named by its place in the journey's data history (its n-th time ready, or stale), like milestones.
    return f"journey:{journey}:data_{status.value}:{ordinal}"


def renewal_id(connection_id: str, ordinal: int) -> str:
    # Named by its place in the connection's history (its n-th renewal), like milestones: a late event that moves
    # the renewal keeps its id.
    return f"connection:{connection_id}:renewed:{ordinal}"


def _milestone_entry(company: CompanyRecord, milestone: Milestone) -> LedgerRecord:
    return entry(
        company,
        MILESTONE_TYPES[milestone.status],
        actor=milestone.actor,
        at=milestone.at,
        entry_id=milestone.entry_id,
        journeys=[milestone.journey],
        journey=milestone.journey,
        seq=MILESTONE_SEQ,
    )


def _data_entry(company: CompanyRecord, journey: str, entry_id: str, transition: DataTransition) -> LedgerRecord:
    return entry(
        company,
        DATA_TYPES[transition.status],
        actor=transition.actor,
        at=transition.at,
        entry_id=entry_id,
        journeys=[journey],
        journey=journey,
        fresh_until=transition.fresh_until,
        stale_types=list(transition.stale_types) or None,
        seq=MILESTONE_SEQ,
    )


def _renewal_entry(
    company: CompanyRecord, connection: ConnectionRecord, policy: ConsentClockPolicy, event: StatusEvent, ordinal: int
) -> LedgerRecord:
    """`connection.renewed`, with the clock the renewal restarted."""
    clock = consent_clock(
        policy,
        source_type=connection.source_type,
        platform_key=connection.platform_key,
        status=ConnectionStatus.LINKED,
        linked_at=event.at,
        last_sync_at=None,
    )
    return connection_entry(
        company,
        LedgerEntryType.CONNECTION_RENEWED,
        connection=connection,
        actor=event.actor,
        at=event.at,
        entry_id=renewal_id(connection.connection_id, ordinal),
        status=ConnectionStatus.LINKED,
        consent_expires_at=clock.expires_at if clock is not None else None,
        renew_by=clock.renew_by if clock is not None else None,
        seq=MILESTONE_SEQ,
    )
