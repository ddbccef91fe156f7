"""Data readiness's rules: a read history kept short says the same as the whole one; transitions are derived in event
time from reads, status events and time passing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from consent.domain.data_readiness import (
    MAX_READS_PER_TYPE,
    DataRequirement,
    compress,
    data_transitions,
    source_type_of,
)
from consent.domain.records import ConnectionRecord
from consent.domain.resources import ConnectionStatus, DataStatus, SourceType
from consent.domain.timeline import StatusEvent
from consent.domain.transitions import EventKind

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
NEEDS = DataRequirement(types=("balanceSheet", "banking-accounts"), max_age_days=30)


def fresh_at(reads: list[datetime], at: datetime, max_age: timedelta) -> bool:
    return any(read <= at < read + max_age for read in reads)


@given(
    days=st.lists(st.integers(0, 400), max_size=60),
    extra=st.integers(0, 20),
)
def test_a_compressed_history_is_fresh_at_the_same_moments_for_any_age_at_least_its_own(
    days: list[int], extra: int
) -> None:
    reads = [T0 + d * DAY for d in days]
    kept = compress(reads, 30 * DAY)
    assert set(kept) <= set(reads)
    assert len(kept) <= MAX_READS_PER_TYPE
    if len(kept) < MAX_READS_PER_TYPE:
        for age in (30 * DAY, (30 + extra) * DAY):
            for probe in range(-1, 440):
                at = T0 + probe * DAY + timedelta(hours=12)
                assert fresh_at(kept, at, age) == fresh_at(reads, at, age), (probe, age)


def test_daily_reads_keep_a_handful_and_a_new_read_extends_the_history() -> None:
    daily = compress([T0 + d * DAY for d in range(365)], 30 * DAY)
    assert len(daily) < 30
    assert daily[0] == T0
    assert daily[-1] == T0 + 364 * DAY


def test_data_types_are_read_by_their_source_type() -> None:
    assert source_type_of("banking-transactions") == SourceType.BANKING
    assert source_type_of("commerce-orders") == SourceType.COMMERCE
    assert source_type_of("balanceSheet") == SourceType.ACCOUNTING


def connection(events: list[tuple[int, EventKind]], reads: dict[str, list[int]]) -> ConnectionRecord:
    record = ConnectionRecord(
        connection_id="conn-1",
        company_id="company-1",
        customer_id="alice",
        company_created_at=T0,
        platform_key="gbol",
        platform_name="Sandbox",
        source_type=SourceType.ACCOUNTING,
        status=ConnectionStatus.PENDING_AUTH,
        created_at=T0,
    )
    for index, (day, kind) in enumerate(events):
        record = record.with_event(StatusEvent(at=T0 + day * DAY, id=f"e{index}", kind=kind, actor="codat"))
    return record.model_copy(update={"read_history": {t: [T0 + d * DAY for d in days] for t, days in reads.items()}})


def test_transitions_come_from_reads_status_events_and_time_up_to_now() -> None:
    linked = connection(
        [(0, EventKind.LINKED), (50, EventKind.DEAUTHORIZED), (60, EventKind.LINKED)],
        {"balanceSheet": [1, 20, 55, 61], "banking-accounts": [2, 45, 61]},
    )
    transitions = data_transitions(NEEDS, [linked], started_at=None, started_by="customer:alice", now=T0 + 100 * DAY)
    assert [(t.status, (t.at - T0).days, t.actor) for t in transitions] == [
        (DataStatus.READY, 2, "codat"),  # both types read
        (DataStatus.STALE, 32, "consent-clock"),  # day 2's banking-accounts read grew too old (day 20 kept the other)
        (DataStatus.READY, 45, "codat"),
        (DataStatus.STALE, 50, "codat"),  # access withdrawn: its reads stop counting (day 55's too)
        (DataStatus.READY, 60, "codat"),  # relinked: its latest reads (days 55 and 45) count again
        (DataStatus.STALE, 91, "consent-clock"),  # day 61 read both again; 30 days later, too old
    ]
    assert transitions[0].fresh_until == T0 + 31 * DAY  # the older read's
    assert transitions[1].stale_types == ("banking-accounts",)
    # Time passes up to now only (what happened counts wherever Codat's clock put it)
    early = data_transitions(NEEDS, [linked], started_at=None, started_by="customer:alice", now=T0 + 40 * DAY)
    assert early == transitions[:-1]


def test_a_journey_started_later_starts_from_what_is_there() -> None:
    linked = connection([(0, EventKind.LINKED)], {"balanceSheet": [1], "banking-accounts": [2]})
    start = T0 + 10 * DAY
    [ready] = data_transitions(NEEDS, [linked], started_at=start, started_by="customer:alice", now=T0 + 20 * DAY)
    assert (ready.status, ready.at, ready.actor) == (DataStatus.READY, start, "customer:alice")
