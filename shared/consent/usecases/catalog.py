"""The journeys this deployment offers, as the bank's app shows them (GET /journeys): from configuration only."""

from __future__ import annotations

from pydantic import Field

from consent.domain.journeys import JourneyAccess, JourneyCatalog
from consent.domain.resources import Resource, SourceType


class Journey(Resource):
    name: str = Field(description="What `POST /companies` takes as `journey`.")
    title: str | None = Field(default=None, description="The journey's name for the customer.")
    description: str | None = Field(default=None, description="What the journey is for, for the customer.")
    required: list[SourceType] = Field(
        description="Source types that each need a Linked connection (and its first read)."
    )
    optional: list[SourceType] = Field(description="Source types the customer may also connect within the journey.")
    data: DataNeeds | None = Field(
        default=None, description="The data the journey needs and how fresh (its progress shows `data`); absent: none."
    )
    access: JourneyAccess = Field(
        default=JourneyAccess.ONGOING,
        description="`ongoing`: consent lasts until revoked or lapsed. `one_off`: the connections the journey uses are "
        "unlinked once its data has been read (unless an ongoing journey of the company uses them too).",
    )
    retain_days: int | None = Field(
        default=None,
        description="How long the data read through its connections is kept in Codat once consent has ended, then "
        "deleted (`consent.data.purged`); absent: kept.",
    )


class DataNeeds(Resource):
    types: list[str] = Field(description="Codat's data types the journey needs, e.g. `balanceSheet`.")
    max_age_days: int = Field(description="How old each one's last complete read may be for the data to be ready.")


class JourneyList(Resource):
    items: list[Journey] = Field(default_factory=list)


def list_journeys(catalog: JourneyCatalog) -> JourneyList:
    return JourneyList(
        items=[
            Journey(
                name=j.name,
                title=j.title,
                description=j.description,
                required=list(j.required),
                optional=list(j.optional),
                data=DataNeeds(types=list(j.data.types), max_age_days=j.data.max_age_days) if j.data else None,
                access=j.access,
                retain_days=j.retain_days,
            )
            for j in (catalog.journeys[name] for name in catalog.names)
        ]
    )
