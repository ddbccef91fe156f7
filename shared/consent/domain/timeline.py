"""Order-safe state: a connection's status and a journey's progress as pure functions of the set of
events that happened to them, taken in event time (`at`, then `id`) — never in arrival order.

So any arrival order and any duplication of the same events (webhooks retried, late or out of order)
ends in the same statuses and the same journey milestones."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from consent.domain.journeys import ConnectionState, JourneyDefinition, Tally, progress_of, standing
from consent.domain.resources import ConnectionStatus, JourneyProgress, JourneyStatus, SourceType
from consent.domain.transitions import TRANSITIONS, EventKind


class StatusEvent(BaseModel):
    """Something that happened to a connection, when it happened (Codat's `generatedDate` for webhooks)."""

    # Stored in a connection's history: a field a newer version added is ignored (consent.domain.records).
    model_config = ConfigDict(frozen=True, extra="ignore")

    at: datetime
    id: str  # the webhook id, or our ledger entry id: unique, and the tie-break at equal times
    kind: EventKind
    actor: str
    status: ConnectionStatus | None = None  # FAILED: the status Codat reported with it
    reason: str | None = None

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.at, self.id)


@dataclass
class DerivedConnection:
    """A connection's state after its events, in event time."""

    status: ConnectionStatus | None = None
    linked_at: datetime | None = None
    initial_read_at: datetime | None = None
    status_reason: str | None = None
    deleted: bool = False
    latest: StatusEvent | None = None  # the newest status-setting event

    @property
    def initial_read_done(self) -> bool:
        return (
            self.status == ConnectionStatus.LINKED
            and self.initial_read_at is not None
            and (self.linked_at is None or self.initial_read_at >= self.linked_at)
        )

    def apply(self, event: StatusEvent) -> None:
        if self.deleted:
            # Deleted is final: Codat never brings a deleted connection back (a new link is a new connection), so
            # nothing said about it afterwards (an authorization racing a revoke) makes it count again.
            return
        if event.kind == EventKind.INITIAL_READ:
            if self.initial_read_at is None or event.at > self.initial_read_at:
                self.initial_read_at = event.at
            return
        if event.kind == EventKind.CREATED and self.status is not None:
            # "It exists" says nothing new once anything else is known: our record of creating it (our clock)
            # or Codat's confirmation must never override a status Codat reported (its clock).
            return
        if event.kind == EventKind.DELETED:
            self.deleted = True
        status = TRANSITIONS[event.kind].status or event.status
        if status is not None:
            self.status = status
            self.status_reason = event.reason if event.kind == EventKind.FAILED else None
        if event.kind == EventKind.LINKED:
            self.linked_at = event.at
        self.latest = event


def derive(history: Iterable[StatusEvent]) -> DerivedConnection:
    state = DerivedConnection()
    for event in sorted(history, key=lambda e: e.order):
        state.apply(event)
    return state


def derive_steps(history: Iterable[StatusEvent]) -> Iterator[tuple[datetime, ConnectionStatus | None, str]]:
    """A connection's status after each of its events, in event time, with the event's time and actor (None: it
    has no status yet, or it is deleted)."""
    state = DerivedConnection()
    for event in sorted(history, key=lambda e: e.order):
        state.apply(event)
        yield event.at, None if state.deleted else state.status, event.actor


def renewals(history: Iterable[StatusEvent]) -> list[StatusEvent]:
    """The authorizations that renewed consent: Codat reporting the connection authorized again while it was
    already Linked (a re-consent through a fresh link), in event time. A relink after an unlink or a lapse is not
    one (it is a new consent), so an event arriving late can make an authorization a renewal or stop it being one."""
    state = DerivedConnection()
    found = []
    for event in sorted(history, key=lambda e: e.order):
        if event.kind == EventKind.LINKED and state.status == ConnectionStatus.LINKED and not state.deleted:
            found.append(event)
        state.apply(event)
    return found


@dataclass(frozen=True)
class ConnectionTimeline:
    connection_id: str
    source_type: SourceType
    history: Sequence[StatusEvent]


@dataclass(frozen=True)
class Milestone:
    """A journey reaching linked, complete or action_required, at an event (or when it was started)."""

    journey: str
    status: JourneyStatus
    at: datetime
    cause: str  # the event id, or "start"
    actor: str
    ordinal: int = 1  # the journey reaching this status for the n-th time

    @property
    def entry_id(self) -> str:
        # Named by its place in the journey's history, not by its cause: an event arriving late that moves
        # the cause (clock skew between Codat and us) keeps the same id, so nothing is announced twice.
        return f"journey:{self.journey}:{self.status.value}:{self.ordinal}"


MILESTONES = frozenset({JourneyStatus.LINKED, JourneyStatus.COMPLETE, JourneyStatus.ACTION_REQUIRED})


@dataclass
class Replay:
    progress: JourneyProgress
    milestones: list[Milestone] = field(default_factory=list)


def replay(
    journey: JourneyDefinition,
    *,
    started_at: datetime,
    started_by: str,
    connections: Sequence[ConnectionTimeline],
    counts_at_once_until: datetime | None = None,
) -> Replay:
    """The journey's progress and milestones, replaying every connection event in event time.

    Events up to `counts_at_once_until` count at once, as the state the journey starts from (a journey
    started for an existing company sees what is already linked); later ones are walked one by one.
    None walks every event: the company's first journey, whose connections all came after it — even when
    Codat's clock and ours disagree by a little.

    Each event changes one connection, so the journey's tally is updated for that connection alone: the
    replay costs O(events · log events), however many connections the company has."""
    states = {c.connection_id: DerivedConnection() for c in connections}
    source = {c.connection_id: c.source_type for c in connections}
    events = sorted(((e, c.connection_id) for c in connections for e in c.history), key=lambda pair: pair[0].order)
    tally = Tally()

    def state_of(connection_id: str) -> ConnectionState | None:
        state = states[connection_id]
        if state.status is None or state.deleted:
            return None
        return ConnectionState(connection_id, source[connection_id], state.status, state.initial_read_done)

    def apply(event: StatusEvent, connection_id: str) -> None:
        before = state_of(connection_id)
        if before is not None:
            tally.count(journey, before, -1)
        states[connection_id].apply(event)
        after = state_of(connection_id)
        if after is not None:
            tally.count(journey, after)

    pending = iter(events)
    later: list[tuple[StatusEvent, str]] = []
    for event, connection_id in pending:
        if counts_at_once_until is None or event.at > counts_at_once_until:
            later.append((event, connection_id))
            break
        apply(event, connection_id)
    later.extend(pending)

    current = standing(journey, tally, previous=None, now=started_at)
    milestones: list[Milestone] = []
    reached: dict[JourneyStatus, int] = {}

    def reach(status: JourneyStatus, at: datetime, cause: str, actor: str) -> None:
        reached[status] = reached.get(status, 0) + 1
        milestones.append(Milestone(journey.name, status, at, cause, actor, reached[status]))

    if current.status in MILESTONES:
        reach(current.status, started_at, "start", started_by)
    for event, connection_id in later:
        apply(event, connection_id)
        step = standing(journey, tally, previous=current, now=event.at)
        if step.status != current.status and step.status in MILESTONES:
            reach(step.status, event.at, event.id, event.actor)
        current = step
    final = [state for state in map(state_of, states) if state is not None]
    return Replay(progress_of(journey, final, started_at=started_at, standing=current), milestones)
