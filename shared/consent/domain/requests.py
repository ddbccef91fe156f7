"""What callers send (request bodies) and the pages they get back. Every string and list has a maximum (OWASP API4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from consent.domain.journeys import JOURNEY_NAME_PATTERN
from consent.domain.resources import Company, Connection, LedgerEntry, Resource, SdkComponent

JourneyName = Annotated[str, StringConstraints(pattern=JOURNEY_NAME_PATTERN, max_length=64)]


class _Request(BaseModel):
    # Unknown fields are an error (422), not silently dropped.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CreateCompanyRequest(_Request):
    name: str = Field(min_length=1, max_length=100, description="The business's name.")
    journey: JourneyName = Field(description="The journey to start, e.g. `onboarding`.")
    description: str | None = Field(default=None, max_length=500)
    external_ref: str | None = Field(
        default=None, alias="externalRef", min_length=1, max_length=128, description="The bank's own reference."
    )


class StartJourneyRequest(_Request):
    journey: JourneyName


class CompanyList(Resource):
    items: list[Company]
    next_cursor: str | None = None


MAX_PAGE_LIMIT = 100


class CreateConnectionRequest(_Request):
    platform_key: str = Field(
        alias="platformKey", pattern=r"^[a-z]{4}$", description="Codat's 4-letter platform key, e.g. `qhnd`."
    )
    consent_version: str | None = Field(
        default=None,
        alias="consentVersion",
        min_length=1,
        max_length=64,
        description="The version of the consent text the customer accepted, kept in the ledger.",
    )


class ConnectionList(Resource):
    items: list[Connection]
    next_cursor: str | None = None


class LedgerPage(Resource):
    items: list[LedgerEntry]
    next_cursor: str | None = None


class AccessToken(Resource):
    access_token: str
    expires_in: int


class OpenSdkSessionRequest(_Request):
    component: SdkComponent = Field(
        description="`link` before mounting `CodatLink`, `connections` before mounting `CodatConnections`."
    )
    consent_version: str | None = Field(
        default=None,
        alias="consentVersion",
        min_length=1,
        max_length=64,
        description="The version of the consent text the customer accepted (for `link`): kept in the ledger with "
        "each connection she makes in Codat's Link.",
    )


class SdkSessionOpened(Resource):
    component: SdkComponent
    access_token: str
    expires_in: int
    # Until when what Codat reports about the company's connections is taken as the customer's doing.
    expires_at: datetime
