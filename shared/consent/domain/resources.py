"""The consent domain's resources: companies, connections, journey progress and the consent ledger.

These are the API's resource shapes, camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


def utc_now() -> datetime:
    return datetime.now(UTC)


class SourceType(StrEnum):
    ACCOUNTING = "accounting"
    BANKING = "banking"
    COMMERCE = "commerce"

    @classmethod
    def from_codat(cls, value: str | None) -> SourceType | None:
        """Codat's source type (`Accounting`, `Banking`, `BankFeed`, …) as ours, or None if we do not serve it."""
        lowered = (value or "").lower()
        return cls(lowered) if lowered in cls._value2member_map_ else None


class ConnectionStatus(StrEnum):
    PENDING_AUTH = "PendingAuth"
    LINKED = "Linked"
    UNLINKED = "Unlinked"
    DEAUTHORIZED = "Deauthorized"

    @classmethod
    def from_codat(cls, value: str | None) -> ConnectionStatus | None:
        return cls._value2member_map_.get(value or "")  # type: ignore[return-value]


class JourneyStatus(StrEnum):
    PENDING = "pending"
    LINKING = "linking"
    LINKED = "linked"
    COMPLETE = "complete"
    ACTION_REQUIRED = "action_required"


class SdkComponent(StrEnum):
    """Codat's components a bank's front end can embed (Option 1 of Codat's consent journey)."""

    LINK = "link"  # CodatLink: the customer connects software inside the bank's page
    CONNECTIONS = "connections"  # CodatConnections: the customer manages (and disconnects) her connections


class Resource(BaseModel):
    # defer_build: a model's validator and serializer are built on its first use, not at import, so a function
    # builds only the models its requests use (each costs about a millisecond or two of a cold start).
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class Connection(Resource):
    connection_id: str
    platform_key: str
    platform_name: str
    source_type: SourceType
    status: ConnectionStatus
    link_url: str | None = None
    created_at: datetime
    linked_at: datetime | None = None
    last_sync_at: datetime | None = None
    status_reason: str | None = None
    # The consent clock (consent.domain.consent_clock), while Linked and where the deployment's policy knows it:
    # when access lapses unless renewed (or synced), and by when the customer should renew. Unknown: absent.
    consent_expires_at: datetime | None = None
    renew_by: datetime | None = None


class Requirement(Resource):
    source_type: SourceType
    required: bool
    satisfied: bool
    connection_ids: list[str] = Field(default_factory=list)


class DataStatus(StrEnum):
    READY = "ready"
    STALE = "stale"


class DataTypeState(Resource):
    data_type: str = Field(description="Codat's data type, e.g. `balanceSheet`.")
    last_read_at: datetime | None = Field(
        default=None, description="When a read of it last completed, from a Linked connection (absent: never)."
    )


class JourneyData(Resource):
    """The journey's data: ready to act on, or stale (a required type never read, or read too long ago)."""

    status: DataStatus
    max_age_days: int = Field(description="How old a required type's last complete read may be.")
    types: list[DataTypeState]
    fresh_until: datetime | None = Field(
        default=None,
        description="When the oldest required read grows (or grew) too old: ready until then. Absent while a "
        "required type has never been read.",
    )

    def as_of(self, now: datetime) -> JourneyData:
        """The state at `now`: ready data whose freshness has run out is stale."""
        if self.status == DataStatus.READY and (self.fresh_until is None or now >= self.fresh_until):
            return self.model_copy(update={"status": DataStatus.STALE})
        return self


class JourneyProgress(Resource):
    journey: str
    status: JourneyStatus
    started_at: datetime
    completed_at: datetime | None = None
    requirements: list[Requirement] = Field(default_factory=list)
    # The journey's data, where it declares the data it needs (consent.domain.data_readiness).
    data: JourneyData | None = None


class Company(Resource):
    company_id: str
    name: str
    description: str | None = None
    external_ref: str | None = None
    created_at: datetime
    updated_at: datetime
    journeys: list[JourneyProgress] = Field(default_factory=list)
    connections: list[Connection] = Field(default_factory=list)
    # Set when the company has more connections than a company read embeds: the rest are at
    # GET /companies/{companyId}/connections?cursor=<this>.
    connections_next_cursor: str | None = None


class Actor:
    """Who caused a ledger entry."""

    CODAT = "codat"
    # The scheduled reconciliation, recording what it found in Codat (webhooks that never arrived).
    RECONCILE = "reconcile"
    # The scheduled consent clock run, sending reminders before consent lapses.
    CONSENT_CLOCK = "consent-clock"

    @staticmethod
    def customer(customer_id: str) -> str:
        return f"customer:{customer_id}"

    @staticmethod
    def is_customer(actor: str) -> bool:
        return actor.startswith("customer:")


class LedgerEntryType(StrEnum):
    """Every type of consent ledger entry the product writes: a closed set (the ledger writer refuses another, and
    the OpenAPI document publishes it as an enum). Those that are consent events map to them in `consent.events`."""

    COMPANY_CREATED = "company.created"
    JOURNEY_STARTED = "journey.started"
    CONNECTION_CREATED = "connection.created"
    CONNECTION_LINK_REQUESTED = "connection.link_requested"
    # Codat reporting back a change of ours (see consent.domain.ledger.confirmed_by): recorded, never announced.
    CODAT_CONNECTION_CREATED = "codat.connection.created"
    CODAT_CONNECTION_UNLINKED = "codat.connection.unlinked"
    CODAT_CONNECTION_DELETED = "codat.connection.deleted"
    CONNECTION_LINKED = "connection.linked"
    CONNECTION_FAILED = "connection.failed"
    CONNECTION_UNLINKED = "connection.unlinked"
    CONNECTION_DEAUTHORIZED = "connection.deauthorized"
    CONNECTION_DELETED = "connection.deleted"
    # The customer renewed her consent while the connection was still Linked (Codat reported it authorized again):
    # the consent clock restarts (consent.domain.timeline.renewals).
    CONNECTION_RENEWED = "connection.renewed"
    # A reminder that the connection's consent must be renewed by `renewBy` (`reminderDays` before it).
    CONNECTION_EXPIRING = "connection.expiring"
    # Reconciliation deleted a connection never authorized in time: its link had expired.
    CONNECTION_EXPIRED = "connection.expired"
    # The customer revoked a connection (unlinked in Codat) …
    CONSENT_REVOKED = "consent.revoked"
    # … or one she never authorized (deleted in Codat, its link dead).
    CONSENT_WITHDRAWN = "consent.withdrawn"
    # Her one-off consent was spent (the journey's data read): the connection was unlinked in Codat on her behalf.
    CONSENT_FULFILLED = "consent.fulfilled"
    # The data read under an ended consent was deleted in Codat when its retention ran out (the connection, or the
    # company once nothing of it was left).
    DATA_PURGED = "data.purged"
    SYNC_COMPLETED = "sync.completed"
    JOURNEY_LINKED = "journey.linked"
    JOURNEY_COMPLETED = "journey.completed"
    JOURNEY_ACTION_REQUIRED = "journey.action_required"
    # The journey's data became ready to act on (every required type read recently enough), or stale again.
    JOURNEY_DATA_READY = "journey.data_ready"
    JOURNEY_DATA_STALE = "journey.data_stale"
    # The company was erased: the one entry kept about it, naming nothing but who erased it.
    COMPANY_ERASED = "company.erased"


class LedgerEntry(Resource):
    entry_id: str
    at: datetime
    type: str
    actor: str
    journey: str | None = None
    connection_id: str | None = None
    platform_key: str | None = None
    source_type: SourceType | None = None
    consent_version: str | None = None
    # The consent clock after a renewal, or the one a reminder is about (connection.renewed, connection.expiring).
    consent_expires_at: datetime | None = None
    renew_by: datetime | None = None
    # connection.expiring: how many days before `renewBy` the reminder was due.
    reminder_days: int | None = None
    # journey.data_ready: until when the data stays fresh unless read again; journey.data_stale: the required data
    # types never read, or read too long ago.
    fresh_until: datetime | None = None
    stale_types: list[str] | None = None
    # data.purged: how many days the data was kept after consent ended.
    retain_days: int | None = None
    detail: str | None = None
