"""Data readiness: whether a journey's data is fresh enough to act on (underwriting must not run on stale or
half-synced data).

A journey may declare the data types it needs and their maximum age (`[journeys.<name>.data]` in the journeys file).
Its data is **ready** when every required type has completed a read, from a Linked connection, within that age;
**stale** otherwise. What counts is each connection's last complete read per data type, from Codat's `read.completed`
webhooks (`ConnectionRecord.data_reads`).

The state is derived when the company is written (`consent.domain.progress.settle`) with the moment its freshness
runs out (`freshUntil`), and read again against the clock when it is served (`JourneyData.as_of`): time alone turns
ready data stale, and an answer never shows ready data that is no longer fresh.

Its transitions (`data_transitions`: ready, stale, ready again, …) are derived the same way as journey milestones, in
event time, from each connection's status events and its history of complete reads (`ConnectionRecord.read_history`)
up to now: whatever order the webhooks arrive in, the same transitions at the same moments. A read history is kept
short without changing what it says (`compress`)."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from consent.domain.resources import Actor, ConnectionStatus, DataStatus, DataTypeState, JourneyData, SourceType

if TYPE_CHECKING:
    from consent.domain.timeline import StatusEvent

# Codat's data type names: `balanceSheet`, `banking-transactions`, `commerce-orders`, …
DATA_TYPE_PATTERN = r"^[A-Za-z][A-Za-z-]{0,63}$"
DATA_TYPE = re.compile(DATA_TYPE_PATTERN)
# Codat names its banking and commerce data types with their source type (`banking-accounts`, `commerce-orders`);
# every other one is read from an accounting platform.
_SOURCE_PREFIXES = {"banking-": SourceType.BANKING, "commerce-": SourceType.COMMERCE}
# The reads a connection remembers per data type, after `compress`: each one left marks a gap in freshness, so this
# many is years of a connection going stale and being read again.
MAX_READS_PER_TYPE = 48


def source_type_of(data_type: str) -> SourceType:
    """The source type whose connections read `data_type`."""
    for prefix, source_type in _SOURCE_PREFIXES.items():
        if data_type.startswith(prefix):
            return source_type
    return SourceType.ACCOUNTING


class DataRequirement(BaseModel):
    """`[journeys.<name>.data]`: the data types the journey needs and how old their last complete read may be."""

    # Built on first use (when a function loads the journeys file), not at import: as the consent clock's policy.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    types: tuple[str, ...] = Field(min_length=1, max_length=30)
    max_age_days: int = Field(ge=1, le=365)

    @field_validator("types")
    @classmethod
    def _codat_names(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        for data_type in types:
            if not DATA_TYPE.fullmatch(data_type):
                raise ValueError(f"{data_type!r} is not one of Codat's data type names")
        if len(set(types)) != len(types):
            raise ValueError("a data type is listed twice")
        return types


class ConnectionReads(Protocol):
    """What data readiness needs of a connection (a `ConnectionRecord`)."""

    @property
    def status(self) -> ConnectionStatus: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def data_reads(self) -> Mapping[str, datetime]: ...
    @property
    def history(self) -> Sequence[StatusEvent]: ...
    @property
    def read_history(self) -> Mapping[str, Sequence[datetime]]: ...


def journey_data(requirement: DataRequirement, connections: Iterable[ConnectionReads], now: datetime) -> JourneyData:
    """The journey's data state at `now`, from its Linked connections' last complete reads."""
    last: dict[str, datetime] = {}
    for connection in connections:
        if connection.deleted or connection.status != ConnectionStatus.LINKED:
            continue  # a connection that cannot read any more keeps nothing fresh
        for data_type in requirement.types:
            read = connection.data_reads.get(data_type)
            if read is not None and (data_type not in last or read > last[data_type]):
                last[data_type] = read
    types = [DataTypeState(data_type=t, last_read_at=last.get(t)) for t in requirement.types]
    fresh_until = None
    if len(last) == len(requirement.types):
        fresh_until = min(last.values()) + timedelta(days=requirement.max_age_days)
    state = JourneyData(
        status=DataStatus.READY, max_age_days=requirement.max_age_days, types=types, fresh_until=fresh_until
    )
    return state.as_of(now)


def compress(reads: Iterable[datetime], max_age: timedelta) -> list[datetime]:
    """`reads` (complete reads of one data type) without those that change nothing: for any age of at least
    `max_age`, the data is fresh at exactly the same moments with or without them. A read is dropped when the ones
    around it are closer together than `max_age` (the earlier keeps the data fresh until the later one). Then at most
    `MAX_READS_PER_TYPE`, the newest."""
    kept: list[datetime] = []
    for read in sorted(set(reads)):
        # `kept[-1]` sits between `kept[-2]` and `read`: redundant if those two are close enough.
        if len(kept) >= 2 and read - kept[-2] < max_age:
            kept[-1] = read
        else:
            kept.append(read)
    return kept[-MAX_READS_PER_TYPE:]


# What changed the data at a moment, when several things did: a status event, then a read, then time passing.
_STATUS, _READ, _TIME = 1, 2, 3


@dataclass(frozen=True)
class DataTransition:
    """The journey's data becoming ready, or stale, at `at` (because of `actor`: Codat's read, the customer's revoke,
    the consent clock as time passed, …)."""

    status: DataStatus
    at: datetime
    actor: str
    fresh_until: datetime | None = None  # ready: until when, unless read again
    stale_types: tuple[str, ...] = ()  # stale: the required types never read, or read too long ago


@dataclass
class _Source:
    """One connection, as data readiness sees it over time: when it counted (Linked), and its reads per type."""

    changes: list[datetime]  # when whether it counts changed
    counts: list[bool]  # whether it counts from then on
    reads: dict[str, list[datetime]]

    def counts_at(self, at: datetime) -> bool:
        index = bisect.bisect_right(self.changes, at) - 1
        return index >= 0 and self.counts[index]

    def fresh_until(self, data_type: str, at: datetime, max_age: timedelta) -> datetime | None:
        """Until when its latest read of `data_type` by `at` keeps the data fresh (None: none by then)."""
        reads = self.reads.get(data_type, [])
        index = bisect.bisect_right(reads, at) - 1
        return reads[index] + max_age if index >= 0 else None


def _reads_of(connection: ConnectionReads, data_type: str) -> list[datetime]:
    history = connection.read_history.get(data_type)
    if history:
        return sorted(history)
    latest = connection.data_reads.get(data_type)  # kept by a version that had no read history
    return [latest] if latest is not None else []


def _source(connection: ConnectionReads, types: Sequence[str]) -> tuple[_Source, dict[datetime, str]] | None:
    from consent.domain.timeline import derive_steps  # noqa: PLC0415 (timeline → journeys → here: a cycle at import)

    reads = {t: _reads_of(connection, t) for t in types}
    if not any(reads.values()):
        return None  # it never read what the journey needs: it cannot change the journey's data
    changes: list[datetime] = []
    counts: list[bool] = []
    causes: dict[datetime, str] = {}
    for at, status, actor in derive_steps(connection.history):
        counting = status == ConnectionStatus.LINKED
        if not counts or counts[-1] != counting:
            if changes and changes[-1] == at:
                counts[-1] = counting
            else:
                changes.append(at)
                counts.append(counting)
            causes[at] = actor
    return _Source(changes, counts, reads), causes


def data_transitions(
    requirement: DataRequirement,
    connections: Iterable[ConnectionReads],
    *,
    started_at: datetime | None,
    started_by: str,
    now: datetime,
) -> list[DataTransition]:
    """Every time the journey's data became ready or stale since its start, in event time: at every read and status
    event, and as time passes up to `now`. Data is stale until it is first ready: only the changes are transitions
    (ready at the start is one, by whoever started it).

    `started_at` None walks every event, whenever its clock put it: the company's first journey, whose connections
    all came after it (as `consent.domain.timeline.replay` does)."""
    max_age = timedelta(days=requirement.max_age_days)
    types = requirement.types
    sources: list[_Source] = []
    # The moments something may change, and who (or what) changed it then: a status event, a read, time passing.
    moments: dict[datetime, tuple[int, str]] = {started_at: (0, started_by)} if started_at is not None else {}

    def moment(at: datetime, rank: int, actor: str) -> None:
        # What happened counts wherever its clock put it (Codat's may run ahead of ours); time passing, up to now.
        after_start = started_at is None or started_at < at
        if after_start and (rank < _TIME or at <= now) and (at not in moments or rank < moments[at][0]):
            moments[at] = (rank, actor)

    for connection in connections:
        found = _source(connection, types)
        if found is None:
            continue
        source, causes = found
        sources.append(source)
        for at, actor in causes.items():
            moment(at, _STATUS, actor)
        for reads in source.reads.values():
            for read in reads:
                moment(read, _READ, Actor.CODAT)
                moment(read + max_age, _TIME, Actor.CONSENT_CLOCK)

    transitions: list[DataTransition] = []
    ready = False
    for at in sorted(moments):
        fresh: dict[str, datetime] = {}
        for data_type in types:
            for source in sources:
                until = source.fresh_until(data_type, at, max_age)
                if until is not None and until > at and source.counts_at(at):
                    fresh[data_type] = max(until, fresh.get(data_type, until))
        now_ready = len(fresh) == len(types)
        if now_ready == ready:
            continue
        ready = now_ready
        actor = moments[at][1]
        if ready:
            transitions.append(DataTransition(DataStatus.READY, at, actor, fresh_until=min(fresh.values())))
        else:
            stale = tuple(t for t in types if t not in fresh)
            transitions.append(DataTransition(DataStatus.STALE, at, actor, stale_types=stale))
    return transitions
