"""Journeys: declared in configuration, and the pure rule that turns connections into journey progress."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from consent.domain import ConnectionStatus, JourneyProgress, JourneyStatus, Requirement, SourceType

DEFAULT_JOURNEYS_FILE = Path(__file__).with_name("journeys.toml")
JOURNEY_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class JourneyConfigError(ValueError):
    """The journeys file is missing or does not describe valid journeys."""


class JourneyDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=JOURNEY_NAME_PATTERN)
    title: str | None = Field(default=None, max_length=200)
    required: tuple[SourceType, ...] = Field(min_length=1)
    optional: tuple[SourceType, ...] = ()

    @model_validator(mode="after")
    def _disjoint(self) -> JourneyDefinition:
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
    """The journeys a deployment offers, by name."""

    journeys: dict[str, JourneyDefinition]

    def get(self, name: str) -> JourneyDefinition | None:
        return self.journeys.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self.journeys)

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
        return cls(journeys)


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


def evaluate(
    journey: JourneyDefinition,
    connections: Iterable[ConnectionState],
    *,
    started_at: datetime,
    previous: JourneyProgress | None,
    now: datetime,
) -> JourneyProgress:
    """The journey's progress given the company's connections (PRODUCT.md §4).

    pending → linking → linked → complete; once complete, losing a required connection gives
    action_required until it is linked and read again."""
    relevant = [c for c in connections if journey.allows(c.source_type)]
    requirements: list[Requirement] = []
    all_linked = True
    all_read = True
    for source_type in journey.source_types:
        required = source_type in journey.required
        linked = sorted(c.connection_id for c in relevant if c.source_type == source_type and _is_linked(c))
        read = [c for c in relevant if c.source_type == source_type and _is_linked(c) and c.initial_read_done]
        requirements.append(
            Requirement(source_type=source_type, required=required, satisfied=bool(linked), connection_ids=linked)
        )
        if required:
            all_linked = all_linked and bool(linked)
            all_read = all_read and bool(read)

    was_completed = previous is not None and previous.completed_at is not None
    completed_at = previous.completed_at if previous else None
    if all_linked and all_read:
        status = JourneyStatus.COMPLETE
        if previous is None or previous.status != JourneyStatus.COMPLETE:
            completed_at = now
    elif was_completed:
        status = JourneyStatus.ACTION_REQUIRED
    elif all_linked:
        status = JourneyStatus.LINKED
    elif relevant:
        status = JourneyStatus.LINKING
    else:
        status = JourneyStatus.PENDING
    return JourneyProgress(
        journey=journey.name,
        status=status,
        started_at=started_at,
        completed_at=completed_at,
        requirements=requirements,
    )


def _is_linked(connection: ConnectionState) -> bool:
    return connection.status == ConnectionStatus.LINKED
