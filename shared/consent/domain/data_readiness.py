"""Data readiness: whether a journey's data is fresh enough to act on (underwriting must not run on stale or
half-synced data).

A journey may declare the data types it needs and their maximum age (`[journeys.<name>.data]` in the journeys file).
Its data is **ready** when every required type has completed a read, from a Linked connection, within that age;
**stale** otherwise. What counts is each connection's last complete read per data type, from Codat's `read.completed`
webhooks (`ConnectionRecord.data_reads`).

The state is derived when the company is written (`consent.domain.progress.settle`) with the moment its freshness
runs out (`freshUntil`), and read again against the clock when it is served (`JourneyData.as_of`): time alone turns
ready data stale, and an answer never shows ready data that is no longer fresh."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from consent.domain.resources import ConnectionStatus, DataStatus, DataTypeState, JourneyData

# Codat's data type names: `balanceSheet`, `banking-transactions`, `commerce-orders`, …
DATA_TYPE_PATTERN = r"^[A-Za-z][A-Za-z-]{0,63}$"
DATA_TYPE = re.compile(DATA_TYPE_PATTERN)


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
