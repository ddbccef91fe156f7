"""The journey replay is incremental (one connection's change updates a tally); it must say exactly what
evaluating the whole journey afresh after every event says — the rule as the product states it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from consent.domain.journeys import ConnectionState, JourneyDefinition, evaluate
from consent.domain.resources import ConnectionStatus, JourneyStatus, SourceType
from consent.domain.timeline import (
    MILESTONES,
    ConnectionTimeline,
    DerivedConnection,
    EventKind,
    Milestone,
    Replay,
    StatusEvent,
    derive,
    replay,
)

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LOAN = JourneyDefinition(
    name="loan_application", required=(SourceType.ACCOUNTING, SourceType.BANKING), optional=(SourceType.COMMERCE,)
)
ONBOARDING = JourneyDefinition(name="onboarding", required=(SourceType.BANKING,), optional=(SourceType.ACCOUNTING,))


def replay_from_scratch(
    journey: JourneyDefinition,
    *,
    started_at: datetime,
    started_by: str,
    connections: list[ConnectionTimeline],
    counts_at_once_until: datetime | None,
) -> Replay:
    """The specification: after every event, evaluate the journey over every connection again."""
    states = {c.connection_id: DerivedConnection() for c in connections}
    source = {c.connection_id: c.source_type for c in connections}
    events = sorted(((e, c.connection_id) for c in connections for e in c.history), key=lambda pair: pair[0].order)

    def snapshot() -> list[ConnectionState]:
        return [
            ConnectionState(cid, source[cid], s.status, s.initial_read_done)
            for cid, s in states.items()
            if s.status is not None and not s.deleted
        ]

    later = []
    for event, cid in events:
        if counts_at_once_until is not None and event.at <= counts_at_once_until and not later:
            states[cid].apply(event)
        else:
            later.append((event, cid))
    progress = evaluate(journey, snapshot(), started_at=started_at, previous=None, now=started_at)
    result = Replay(progress)
    reached: dict[JourneyStatus, int] = {}

    def reach(status: JourneyStatus, at: datetime, cause: str, actor: str) -> None:
        reached[status] = reached.get(status, 0) + 1
        result.milestones.append(Milestone(journey.name, status, at, cause, actor, reached[status]))

    if progress.status in MILESTONES:
        reach(progress.status, started_at, "start", started_by)
    for event, cid in later:
        states[cid].apply(event)
        step = evaluate(journey, snapshot(), started_at=started_at, previous=result.progress, now=event.at)
        if step.status != result.progress.status and step.status in MILESTONES:
            reach(step.status, event.at, event.id, event.actor)
        result.progress = step
    return result


KINDS = list(EventKind)


@st.composite
def timelines(draw: st.DrawFn) -> list[ConnectionTimeline]:
    count = draw(st.integers(min_value=0, max_value=6))
    result = []
    serial = 0
    for n in range(count):
        history = []
        for _ in range(draw(st.integers(min_value=0, max_value=6))):
            serial += 1
            kind = draw(st.sampled_from(KINDS))
            history.append(
                StatusEvent(
                    at=T0 + timedelta(seconds=draw(st.integers(min_value=-5, max_value=40))),
                    id=f"evt-{serial:03d}",
                    kind=kind,
                    actor="codat",
                    status=draw(st.sampled_from(list(ConnectionStatus))) if kind == EventKind.FAILED else None,
                )
            )
        result.append(ConnectionTimeline(f"conn-{n}", draw(st.sampled_from(list(SourceType))), history))
    return result


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    journey=st.sampled_from([LOAN, ONBOARDING]),
    connections=timelines(),
    counts_at_once_until=st.one_of(st.none(), st.integers(min_value=-5, max_value=40)),
)
def test_the_incremental_replay_says_what_evaluating_afresh_after_every_event_says(
    journey: JourneyDefinition, connections: list[ConnectionTimeline], counts_at_once_until: int | None
) -> None:
    until = None if counts_at_once_until is None else T0 + timedelta(seconds=counts_at_once_until)
    arguments = {
        "started_at": T0,
        "started_by": "customer:alice",
        "connections": connections,
        "counts_at_once_until": until,
    }

    expected = replay_from_scratch(journey, **arguments)  # type: ignore[arg-type]
    actual = replay(journey, **arguments)  # type: ignore[arg-type]

    assert actual.progress == expected.progress
    assert actual.milestones == expected.milestones


def test_a_journey_over_a_thousand_connections_is_replayed_in_event_time() -> None:
    # Given a loan journey whose 1,000 accounting connections link one after another, and one bank at the end
    accounting = [
        ConnectionTimeline(
            f"acc-{n:04d}",
            SourceType.ACCOUNTING,
            [
                StatusEvent(at=T0 + timedelta(seconds=n), id=f"l-{n:04d}", kind=EventKind.LINKED, actor="codat"),
                StatusEvent(
                    at=T0 + timedelta(seconds=n, milliseconds=500),
                    id=f"r-{n:04d}",
                    kind=EventKind.INITIAL_READ,
                    actor="codat",
                ),
            ],
        )
        for n in range(1000)
    ]
    bank = ConnectionTimeline(
        "bank",
        SourceType.BANKING,
        [
            StatusEvent(at=T0 + timedelta(hours=1), id="bank-l", kind=EventKind.LINKED, actor="codat"),
            StatusEvent(at=T0 + timedelta(hours=1, seconds=2), id="bank-r", kind=EventKind.INITIAL_READ, actor="codat"),
        ],
    )

    # When it is replayed
    result = replay(LOAN, started_at=T0, started_by="customer:alice", connections=[*accounting, bank])

    # Then it is linked when the bank links and complete at the bank's first read, each announced once
    assert [(m.status, m.cause) for m in result.milestones] == [
        (JourneyStatus.LINKED, "bank-l"),
        (JourneyStatus.COMPLETE, "bank-r"),
    ]
    assert result.progress.status == JourneyStatus.COMPLETE
    assert result.progress.completed_at == T0 + timedelta(hours=1, seconds=2)
    accounting_requirement = result.progress.requirements[0]
    assert accounting_requirement.source_type == SourceType.ACCOUNTING
    assert accounting_requirement.connection_ids == sorted(c.connection_id for c in accounting)


# -- paths the property above cannot see: it calls the same `apply` on both sides ------------------------------


def event(seconds: int, kind: EventKind, event_id: str, **more: object) -> StatusEvent:
    return StatusEvent(at=T0 + timedelta(seconds=seconds), id=event_id, kind=kind, actor="codat", **more)  # type: ignore[arg-type]


def bank(*history: StatusEvent, connection_id: str = "bank") -> ConnectionTimeline:
    return ConnectionTimeline(connection_id, SourceType.BANKING, list(history))


LINKED_AND_READ = (event(1, EventKind.LINKED, "l1"), event(2, EventKind.INITIAL_READ, "r1"))


def test_a_connection_is_derived_in_event_time_whatever_the_order_it_is_told_in() -> None:
    linked, read = LINKED_AND_READ

    state = derive([read, event(0, EventKind.CREATED, "c0"), linked])

    assert state.status == ConnectionStatus.LINKED
    assert state.linked_at == linked.at
    assert state.initial_read_done
    assert state.latest == linked  # the newest status-setting event, not the read


def test_our_record_of_creating_a_connection_never_overrides_a_status_codat_reported() -> None:
    # Given Codat's link, and our "created" record stamped later by our clock
    state = derive(
        [event(0, EventKind.CREATED, "c0"), event(1, EventKind.LINKED, "l1"), event(5, EventKind.CREATED, "c5")]
    )

    # Then the connection is linked
    assert state.status == ConnectionStatus.LINKED
    assert state.latest is not None
    assert state.latest.id == "l1"


def test_a_failure_reason_is_kept_and_cleared_by_a_later_link() -> None:
    failed = event(1, EventKind.FAILED, "f1", status=ConnectionStatus.PENDING_AUTH, reason="cancelled by the customer")

    assert derive([failed]).status_reason == "cancelled by the customer"
    assert derive([failed, event(2, EventKind.LINKED, "l2")]).status_reason is None
    # A reason carried by anything but a failure is not a failure reason.
    assert (
        derive([failed, event(2, EventKind.UNLINKED, "u2", reason="unlinked in Codat's portal")]).status_reason is None
    )


def test_a_relink_resets_linked_at_and_needs_a_new_first_read() -> None:
    first = [*LINKED_AND_READ, event(3, EventKind.DEAUTHORIZED, "d3")]
    relink = event(4, EventKind.LINKED, "l4")

    relinked = derive([*first, relink])
    read_again = derive([*first, relink, event(5, EventKind.INITIAL_READ, "r5")])

    assert relinked.linked_at == relink.at
    assert not relinked.initial_read_done
    assert read_again.initial_read_done


def test_a_deleted_connection_stops_counting_and_the_journey_needs_action() -> None:
    # Given an onboarding journey completed by a bank connection, which is then deleted
    deleted = event(3, EventKind.DELETED, "x3")

    result = replay(
        ONBOARDING, started_at=T0, started_by="customer:alice", connections=[bank(*LINKED_AND_READ, deleted)]
    )

    # Then the journey needs action, and the connection is no longer among those satisfying it
    assert [(m.status, m.cause) for m in result.milestones] == [
        (JourneyStatus.LINKED, "l1"),
        (JourneyStatus.COMPLETE, "r1"),
        (JourneyStatus.ACTION_REQUIRED, "x3"),
    ]
    assert result.progress.status == JourneyStatus.ACTION_REQUIRED
    assert result.progress.requirements[0].connection_ids == []
    assert derive([*LINKED_AND_READ, deleted]).deleted


def test_completing_twice_announces_two_distinct_milestones() -> None:
    history = [*LINKED_AND_READ, event(3, EventKind.DEAUTHORIZED, "d3"), event(4, EventKind.LINKED, "l4")]
    history.append(event(5, EventKind.INITIAL_READ, "r5"))

    result = replay(ONBOARDING, started_at=T0, started_by="customer:alice", connections=[bank(*history)])

    completions = [m for m in result.milestones if m.status == JourneyStatus.COMPLETE]
    assert [(m.cause, m.entry_id) for m in completions] == [
        ("r1", "journey:onboarding:complete:1"),
        ("r5", "journey:onboarding:complete:2"),
    ]
    assert result.progress.completed_at == T0 + timedelta(seconds=5)


def test_an_event_exactly_at_the_counts_at_once_boundary_counts_at_once() -> None:
    # Given a bank linked and read before the journey starts, the read exactly at the boundary
    read_at = T0 + timedelta(seconds=2)
    started_at = T0 + timedelta(seconds=10)

    result = replay(
        ONBOARDING,
        started_at=started_at,
        started_by="customer:alice",
        connections=[bank(*LINKED_AND_READ)],
        counts_at_once_until=read_at,
    )

    # Then the journey is complete from its start, and says so once, as of its start
    assert [(m.status, m.cause, m.at) for m in result.milestones] == [(JourneyStatus.COMPLETE, "start", started_at)]
    assert result.progress.completed_at == started_at


def test_two_connections_of_one_source_type_one_unlinked_keep_the_journey_complete() -> None:
    second = bank(event(3, EventKind.LINKED, "l3"), event(4, EventKind.INITIAL_READ, "r4"), connection_id="bank-2")
    first = bank(*LINKED_AND_READ, event(5, EventKind.UNLINKED, "u5"))

    result = replay(ONBOARDING, started_at=T0, started_by="customer:alice", connections=[first, second])

    assert result.progress.status == JourneyStatus.COMPLETE
    assert [m.status for m in result.milestones] == [JourneyStatus.LINKED, JourneyStatus.COMPLETE]
    assert result.progress.requirements[0].connection_ids == ["bank-2"]
