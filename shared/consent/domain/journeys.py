"""Journeys: declared in configuration, and the pure rule that turns connections into journey progress."""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from consent.domain.consent_clock import ConsentClockPolicy
from consent.domain.data_readiness import ConnectionReads, DataRequirement, journey_data
from consent.domain.resources import ConnectionStatus, JourneyProgress, JourneyStatus, Requirement, SourceType

DEFAULT_JOURNEYS_FILE = Path(__file__).parent.parent / "journeys.toml"
JOURNEY_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class JourneyConfigError(ValueError):
    """The journeys file is missing or does not describe valid journeys."""


class JourneyAccess(StrEnum):
    ONGOING = "ongoing"  # consent lasts until the customer revokes it or it lapses
    ONE_OFF = "one_off"  # the connections it uses are unlinked once its data has been read


class JourneyDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=JOURNEY_NAME_PATTERN)
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    required: tuple[SourceType, ...] = Field(min_length=1)
    optional: tuple[SourceType, ...] = ()
    # The data the journey needs, and how fresh (consent.domain.data_readiness); None: it declares none.
    data: DataRequirement | None = None
    access: JourneyAccess = JourneyAccess.ONGOING
    # How long its connections' data is kept in Codat once consent has ended (None: kept; consent.domain.retention).
    retain_days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _disjoint(self) -> JourneyDefinition:
        if self.access == JourneyAccess.ONE_OFF and self.data is None:
            raise ValueError("a one_off journey declares the data it reads ([journeys.<name>.data]): access ends then")
        both = set(self.required) & set(self.optional)
        if both:
            raise ValueError(f"source types both required and optional: {sorted(both)}")
        if len(set(self.required)) != len(self.required) or len(set(self.optional)) != len(self.optional):
            raise ValueError("a source type is listed twice")
        return self

    @property
    def source_types(self) -> tuple[SourceType, ...]:
        return self.required + self.optional

    def allows(self, source_type: SourceType) -> bool:
        return source_type in self.source_types


@dataclass(frozen=True)
class JourneyCatalog:
    """The journeys a deployment offers, by name, and its consent clock policy."""

    journeys: dict[str, JourneyDefinition]
    consent_clock: ConsentClockPolicy = field(default_factory=ConsentClockPolicy)

    def get(self, name: str) -> JourneyDefinition | None:
        return self.journeys.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self.journeys)

    @property
    def data_ages(self) -> dict[str, timedelta]:
        """Each data type a journey needs, with the shortest age any of them allows it."""
        ages: dict[str, timedelta] = {}
        for journey in self.journeys.values():
            if journey.data is not None:
                age = timedelta(days=journey.data.max_age_days)
                for data_type in journey.data.types:
                    ages[data_type] = min(age, ages.get(data_type, age))
        return ages

    @classmethod
    def from_file(cls, path: Path) -> JourneyCatalog:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise JourneyConfigError(f"cannot read journeys file {path}: {error}") from error
        declared = document.get("journeys")
        if not isinstance(declared, dict) or not declared:
            raise JourneyConfigError(f"{path} declares no [journeys.<name>] tables")
        try:
            journeys = {name: JourneyDefinition(name=name, **spec) for name, spec in declared.items()}
        except (ValidationError, TypeError) as error:
            raise JourneyConfigError(f"{path} is not a valid journeys file: {error}") from error
        unknown = sorted(set(document) - {"journeys", "consent_clock"})
        if unknown:
            raise JourneyConfigError(f"{path} has tables the product does not read: {', '.join(unknown)}")
        try:
            clock = ConsentClockPolicy.from_table(document.get("consent_clock"))
        except ValueError as error:
            raise JourneyConfigError(f"{path}: {error}") from error
        return cls(journeys, clock)


@lru_cache(maxsize=4)
def load_catalog(path: Path | None = None) -> JourneyCatalog:
    return JourneyCatalog.from_file(path or DEFAULT_JOURNEYS_FILE)


@dataclass(frozen=True)
class ConnectionState:
    """What journey progress needs to know about one connection."""

    connection_id: str
    source_type: SourceType
    status: ConnectionStatus
    initial_read_done: bool  # the first read since its latest authorization has completed


@dataclass
class Tally:
    """What decides a journey's status, counted over its connections: kept up to date one connection change
    at a time while a journey is replayed, so a replay is linear in its events, not quadratic."""

    relevant: int = 0
    linked: Counter[SourceType] = field(default_factory=Counter)
    read: Counter[SourceType] = field(default_factory=Counter)

    def count(self, journey: JourneyDefinition, connection: ConnectionState, sign: int = 1) -> None:
        if not journey.allows(connection.source_type):
            return
        self.relevant += sign
        if _is_linked(connection):
            self.linked[connection.source_type] += sign
            if connection.initial_read_done:
                self.read[connection.source_type] += sign

    @classmethod
    def of(cls, journey: JourneyDefinition, connections: Iterable[ConnectionState]) -> Tally:
        tally = cls()
        for connection in connections:
            tally.count(journey, connection)
        return tally


@dataclass(frozen=True)
class Standing:
    """A journey's status and when it was (last) completed."""

    status: JourneyStatus
    completed_at: datetime | None = None


def standing(journey: JourneyDefinition, tally: Tally, *, previous: Standing | None, now: datetime) -> Standing:
    """The rule: pending → linking → linked → complete; once complete, losing a required
    connection gives action_required until it is linked and read again."""
    all_linked = all(tally.linked[source_type] > 0 for source_type in journey.required)
    all_read = all(tally.read[source_type] > 0 for source_type in journey.required)
    completed_at = previous.completed_at if previous else None
    if all_linked and all_read:
        if previous is None or previous.status != JourneyStatus.COMPLETE:
            completed_at = now
        return Standing(JourneyStatus.COMPLETE, completed_at)
    if completed_at is not None:
        return Standing(JourneyStatus.ACTION_REQUIRED, completed_at)
    if all_linked:
        return Standing(JourneyStatus.LINKED)
    return Standing(JourneyStatus.LINKING if tally.relevant else JourneyStatus.PENDING)


def progress_of(
    journey: JourneyDefinition, connections: Iterable[ConnectionState], *, started_at: datetime, standing: Standing
) -> JourneyProgress:
    """The journey's progress as the API shows it: its standing and, per source type, what satisfies it."""
    linked: dict[SourceType, list[str]] = {source_type: [] for source_type in journey.source_types}
    for connection in connections:
        if connection.source_type in linked and _is_linked(connection):
            linked[connection.source_type].append(connection.connection_id)
    return JourneyProgress(
        journey=journey.name,
        status=standing.status,
        started_at=started_at,
        completed_at=standing.completed_at,
        requirements=[
            Requirement(
                source_type=source_type,
                required=source_type in journey.required,
                satisfied=bool(ids),
                connection_ids=sorted(ids),
            )
            for source_type, ids in linked.items()
        ],
    )


def evaluate(
    journey: JourneyDefinition,
    connections: Iterable[ConnectionState],
    *,
    started_at: datetime,
    previous: JourneyProgress | None,
    now: datetime,
    reads: Iterable[ConnectionReads] = (),
) -> JourneyProgress:
    """The journey's progress given the company's connections (the rule above), and its data given what they read."""
    connections = list(connections)
    before = Standing(previous.status, previous.completed_at) if previous else None
    now_standing = standing(journey, Tally.of(journey, connections), previous=before, now=now)
    progress = progress_of(journey, connections, started_at=started_at, standing=now_standing)
    if journey.data is not None:
        progress.data = journey_data(journey.data, reads, now)
    return progress


def _is_linked(connection: ConnectionState) -> bool:
    return connection.status == ConnectionStatus.LINKED
