"""Codat's resources as pydantic models: tolerant readers that keep what the product uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel


def _as_utc(value: datetime) -> datetime:
    # Codat writes UTC with 0 to 7 fractional digits, sometimes without the `Z`.
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as error:  # year 1 at +14:00, year 9999 at -14:00: no UTC instant exists
        raise ValueError("the time is out of range in UTC") from error


CodatDateTime = Annotated[datetime, AfterValidator(_as_utc)]


class _CodatModel(BaseModel):
    # Codat adds fields over time; a reader that rejected them would break in production. Built on first use
    # (defer_build): most functions read few of these, or none.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True, defer_build=True)


class CodatConnectionError(_CodatModel):
    status_code: str | None = Field(default=None, alias="statusCode")
    status_text: str | None = Field(default=None, alias="statusText")
    error_message: str | None = Field(default=None, alias="errorMessage")
    errored_on_utc: CodatDateTime | None = Field(default=None, alias="erroredOnUtc")
    status: str | None = None


class CodatConnection(_CodatModel):
    id: str
    integration_key: str | None = Field(default=None, alias="integrationKey")
    integration_id: str | None = Field(default=None, alias="integrationId")
    source_type: str = Field(alias="sourceType")
    platform_name: str = Field(alias="platformName")
    link_url: str = Field(alias="linkUrl")
    status: str
    created: CodatDateTime
    last_sync: CodatDateTime | None = Field(default=None, alias="lastSync")
    data_connection_errors: list[CodatConnectionError] | None = Field(default=None, alias="dataConnectionErrors")


# Our tags on each Codat company (keys ≤ 27 characters, values ≤ 100): whose it is (a keyed reference, never the
# customer id), and which of our requests created it, so that a request whose Codat answer was lost finds it again
# instead of duplicating it.
CUSTOMER_TAG = "consentCustomerRef"
REQUEST_TAG = "consentRequestRef"


class CodatCompany(_CodatModel):
    id: str
    name: str
    description: str | None = None
    redirect: str | None = None
    created: CodatDateTime | None = None
    last_sync: CodatDateTime | None = Field(default=None, alias="lastSync")
    tags: dict[str, str] = Field(default_factory=dict)
    data_connections: list[CodatConnection] = Field(default_factory=list, alias="dataConnections")


class CodatIntegration(_CodatModel):
    key: str
    name: str
    logo_url: str = Field(alias="logoUrl")
    enabled: bool
    source_type: str | None = Field(default=None, alias="sourceType")


class CompanyAccessToken(_CodatModel):
    access_token: str = Field(alias="accessToken", repr=False)
    expires_in: int = Field(alias="expiresIn")
    token_type: str = Field(default="Bearer", alias="tokenType")


def _empty_when_null(value: object) -> object:
    # Codat's spec marks `disabled` and `companyTags` nullable: null means the default (a tolerant reader: any list).
    return () if value is None else value


def _false_when_null(value: object) -> object:
    return False if value is None else value


class WebhookConsumer(_CodatModel):
    """Where Codat delivers webhooks, and which (`GET /webhooks`). Its signing secret is not in the API: it is
    shown in Codat's Portal only."""

    id: str
    url: str
    event_types: Annotated[tuple[str, ...], BeforeValidator(_empty_when_null)] = Field(default=(), alias="eventTypes")
    disabled: Annotated[bool, BeforeValidator(_false_when_null)] = False
    # `tagKey:tagValue` filters: when set, only events of companies with matching tags are delivered.
    company_tags: Annotated[tuple[str, ...], BeforeValidator(_empty_when_null)] = Field(default=(), alias="companyTags")


class WebhookConsumers(_CodatModel):
    """`GET /webhooks`: every consumer of the client at once (Codat keeps at most 50; the list is not paged)."""

    results: Annotated[tuple[WebhookConsumer, ...], BeforeValidator(_empty_when_null)] = ()


# Codat's pull operation statuses (a data type's `currentStatus` too) while a read is under way: queueing the data type
# again is refused until it ends. Any other status has ended it: `Complete`, or how it failed (Codat adds statuses over
# time, so they are kept as strings).
PULL_IN_PROGRESS_STATUSES = frozenset(
    {
        "Initial",
        "Queued",
        "Fetching",
        "MapQueued",
        "Mapping",
        "ProcessingQueued",
        "Processing",
        "ValidationQueued",
        "Validating",
    }
)
PULL_COMPLETE = "Complete"


class PullOperation(_CodatModel):
    """One read of one data type from one connection (Codat's pull operation, formerly "dataset"), as
    `POST /companies/{companyId}/data/queue/{dataType}` answers it."""

    id: str
    company_id: str | None = Field(default=None, alias="companyId")
    connection_id: str | None = Field(default=None, alias="connectionId")
    data_type: str = Field(alias="dataType")
    status: str
    status_description: str | None = Field(default=None, alias="statusDescription")
    error_message: str | None = Field(default=None, alias="errorMessage")
    requested: CodatDateTime | None = None
    completed: CodatDateTime | None = None
    progress: int | None = None
    is_completed: Annotated[bool, BeforeValidator(_false_when_null)] = Field(default=False, alias="isCompleted")
    is_errored: Annotated[bool, BeforeValidator(_false_when_null)] = Field(default=False, alias="isErrored")

    @property
    def in_progress(self) -> bool:
        return self.status in PULL_IN_PROGRESS_STATUSES


class DataStatus(_CodatModel):
    """Where Codat's copy of one data type of a company stands (`GET /companies/{companyId}/dataStatus`): its latest
    read's status and id, and when the latest successful one completed."""

    data_type: str = Field(alias="dataType")
    current_status: str = Field(alias="currentStatus")
    last_successful_sync: CodatDateTime | None = Field(default=None, alias="lastSuccessfulSync")
    latest_sync_id: str | None = Field(default=None, alias="latestSyncId")
    latest_successful_sync_id: str | None = Field(default=None, alias="latestSuccessfulSyncId")

    @property
    def in_progress(self) -> bool:
        """A read of it is under way (queueing it again would be refused)."""
        return self.current_status in PULL_IN_PROGRESS_STATUSES

    @property
    def latest_failed(self) -> bool:
        """Its latest read ended other than Complete (any data read before stays readable)."""
        return not self.in_progress and self.current_status != PULL_COMPLETE


class DataStatuses(RootModel[dict[str, DataStatus | None]]):
    """`GET /companies/{companyId}/dataStatus`: an object keyed by data type (null for a type never read)."""

    model_config = ConfigDict(frozen=True, defer_build=True)


class CodatErrorBody(_CodatModel):
    """Codat's error body: `{statusCode, service, error, correlationId, validation?, canBeRetried, ...}`."""

    status_code: int | None = Field(default=None, alias="statusCode")
    service: str | None = None
    error: str | None = None
    correlation_id: str | None = Field(default=None, alias="correlationId")
    can_be_retried: str | None = Field(default=None, alias="canBeRetried")
    detailed_error_code: int | None = Field(default=None, alias="detailedErrorCode")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a Codat list (`results` plus paging info)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

    results: list[T] = Field(default_factory=list)
    page_number: int = Field(default=1, alias="pageNumber")
    page_size: int = Field(default=100, alias="pageSize")
    total_results: int = Field(default=0, alias="totalResults")
