"""Consent events out: a ledger entry as the CloudEvents 1.0 message that subscribers receive over SNS.

Only what a bank's systems need to route and act on: ids, types, journeys, statuses. Never a company name,
description, external reference, token or link URL (the ledger holds none of them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_serializer
from pydantic.alias_generators import to_camel

from consent.domain.records import LedgerRecord
from consent.domain.resources import ConnectionStatus, LedgerEntryType, SourceType
from consent.settings import DEFAULT_SCHEMA_BASE_URI


class ConsentEventType(StrEnum):
    COMPANY_CREATED = "consent.company.created"
    CONNECTION_CREATED = "consent.connection.created"
    CONNECTION_LINKED = "consent.connection.linked"
    CONNECTION_FAILED = "consent.connection.failed"
    CONNECTION_UNLINKED = "consent.connection.unlinked"
    CONNECTION_DEAUTHORIZED = "consent.connection.deauthorized"
    CONNECTION_DELETED = "consent.connection.deleted"
    CONNECTION_RENEWED = "consent.connection.renewed"
    CONNECTION_EXPIRING = "consent.connection.expiring"
    SYNC_COMPLETED = "consent.sync.completed"
    JOURNEY_LINKED = "consent.journey.linked"
    JOURNEY_COMPLETED = "consent.journey.completed"
    JOURNEY_ACTION_REQUIRED = "consent.journey.action_required"
    JOURNEY_DATA_READY = "consent.journey.data_ready"
    JOURNEY_DATA_STALE = "consent.journey.data_stale"
    DATA_PURGED = "consent.data.purged"
    COMPANY_ERASED = "consent.company.erased"


# Ledger entry type → the event it publishes. Any other ledger type (journey.started, webhook bookkeeping,
# Codat notices such as client.rateLimit.reached) stays in the ledger only.
LEDGER_EVENT_TYPES: dict[LedgerEntryType, ConsentEventType] = {
    LedgerEntryType.COMPANY_CREATED: ConsentEventType.COMPANY_CREATED,
    LedgerEntryType.CONNECTION_CREATED: ConsentEventType.CONNECTION_CREATED,
    LedgerEntryType.CONNECTION_LINKED: ConsentEventType.CONNECTION_LINKED,
    LedgerEntryType.CONNECTION_FAILED: ConsentEventType.CONNECTION_FAILED,
    LedgerEntryType.CONNECTION_UNLINKED: ConsentEventType.CONNECTION_UNLINKED,
    # A customer's revoke unlinks the connection in Codat: subscribers see the same event either way.
    LedgerEntryType.CONSENT_REVOKED: ConsentEventType.CONNECTION_UNLINKED,
    LedgerEntryType.CONNECTION_DEAUTHORIZED: ConsentEventType.CONNECTION_DEAUTHORIZED,
    LedgerEntryType.CONNECTION_DELETED: ConsentEventType.CONNECTION_DELETED,
    # The customer revoked a connection she never authorized: deleted in Codat, its link dead.
    LedgerEntryType.CONSENT_WITHDRAWN: ConsentEventType.CONNECTION_DELETED,
    # Reconciliation deleted a connection never authorized in time (its link had expired): gone all the same.
    LedgerEntryType.CONNECTION_EXPIRED: ConsentEventType.CONNECTION_DELETED,
    # Her one-off consent spent (the journey's data read): unlinked on her behalf.
    LedgerEntryType.CONSENT_FULFILLED: ConsentEventType.CONNECTION_UNLINKED,
    LedgerEntryType.DATA_PURGED: ConsentEventType.DATA_PURGED,
    LedgerEntryType.CONNECTION_RENEWED: ConsentEventType.CONNECTION_RENEWED,
    LedgerEntryType.CONNECTION_EXPIRING: ConsentEventType.CONNECTION_EXPIRING,
    LedgerEntryType.SYNC_COMPLETED: ConsentEventType.SYNC_COMPLETED,
    LedgerEntryType.JOURNEY_LINKED: ConsentEventType.JOURNEY_LINKED,
    LedgerEntryType.JOURNEY_COMPLETED: ConsentEventType.JOURNEY_COMPLETED,
    LedgerEntryType.JOURNEY_ACTION_REQUIRED: ConsentEventType.JOURNEY_ACTION_REQUIRED,
    LedgerEntryType.JOURNEY_DATA_READY: ConsentEventType.JOURNEY_DATA_READY,
    LedgerEntryType.JOURNEY_DATA_STALE: ConsentEventType.JOURNEY_DATA_STALE,
    LedgerEntryType.COMPANY_ERASED: ConsentEventType.COMPANY_ERASED,
}
# The same, by the type as stored (a string: an entry written by another version may carry a type unknown here).
_EVENT_OF_TYPE: dict[str, ConsentEventType] = {
    ledger.value: published for ledger, published in LEDGER_EVENT_TYPES.items()
}

# SNS accepts 256 KiB per message (and per PublishBatch call). Our events are about 1 KiB; the bounds below
# keep any one of them far from the limit, so a batch of ten always fits too.
MAX_DETAIL_CHARS = 1000
MAX_EVENT_BYTES = 16 * 1024

# The event contract (AsyncAPI document and JSON Schemas, `consent.contract`). Within a major version changes
# are additive only: every event valid under a newer schema is valid under the released one.
CONTRACT_VERSION = "1.2.0"
SCHEMA_MAJOR = int(CONTRACT_VERSION.split(".", 1)[0])
ACTOR_PATTERN = r"^(codat|reconcile|customer:.+)$"


def dataschema(event_type: ConsentEventType, base_uri: str = DEFAULT_SCHEMA_BASE_URI) -> str:
    """The `dataschema` of an event type: its schema's `$id`, with the major version."""
    return f"{base_uri}{event_type.value}.v{SCHEMA_MAJOR}.json"


class EventTooLarge(ValueError):
    """An event that would not fit in an SNS message even with its detail truncated (it can never be sent)."""


class EventOutOfContract(ValueError):
    """A ledger entry whose event would not match its published schema (a field its type requires is missing)."""


class EventData(BaseModel):
    """What every consent event's `data` holds (camelCase on the wire; absent fields are omitted)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    company_id: str = Field(description="Codat's company id (the `subject` of the event too).")
    customer_id: str | None = Field(
        default=None, description="The bank's id of the customer who owns the company, as its identity provider says."
    )
    journeys: list[str] = Field(
        description="The journeys this event concerns: the company's journeys, or the one a milestone is about."
    )
    actor: str = Field(
        pattern=ACTOR_PATTERN,
        description="Who caused it: `customer:<id>` (the customer, through the API), `codat` (Codat's webhook) or "
        "`reconcile` (reconciliation found it in Codat).",
    )
    detail: str | None = Field(
        default=None, max_length=MAX_DETAIL_CHARS, description="A human-readable note, e.g. why a connection failed."
    )


class CompanyEventData(EventData):
    """A company's own event."""


class ConnectionEventData(EventData):
    """An event about one of the company's connections."""

    connection_id: str = Field(description="Codat's connection id.")
    platform_key: str = Field(description="Codat's platform key of the integration, e.g. `qhnd`.")
    source_type: SourceType = Field(description="The kind of software connected.")
    status: ConnectionStatus | None = Field(
        default=None, description="The connection's status after this event, as Codat names it."
    )
    consent_version: str | None = Field(
        default=None, description="The version of the consent text the customer accepted (her own consent entries)."
    )


class DataTypeRead(BaseModel):
    """One data type of a sync, and how it went."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    data_type: str = Field(description="Codat's data type, e.g. `invoices`.")
    status: str = Field(description="How its read went, as Codat says (e.g. `Complete`).")


class SyncCompletedData(ConnectionEventData):
    """A read of the connection's data finished."""

    data_types: list[DataTypeRead] | None = Field(
        default=None,
        description="The data types read and how each went; absent when reconciliation found the read from the "
        "connection's last sync (Codat says when, not what).",
    )


def _utc(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ConnectionRenewedData(ConnectionEventData):
    """The customer renewed her consent while the connection was still Linked: the consent clock restarted."""

    consent_expires_at: datetime | None = Field(
        default=None,
        description="When access lapses unless renewed again (UTC); absent where the deployment's consent clock "
        "does not know this platform's limit.",
    )
    renew_by: datetime | None = Field(
        default=None, description="By when the customer should renew next (UTC); absent with `consentExpiresAt`."
    )

    @field_serializer("consent_expires_at", "renew_by")
    def _rfc3339_utc(self, moment: datetime | None) -> str | None:
        return None if moment is None else _utc(moment)


class ConnectionExpiringData(ConnectionEventData):
    """A reminder: the connection's consent must be renewed by `renewBy`, or access lapses at `consentExpiresAt`."""

    actor: str = Field(
        pattern=r"^consent-clock$", description="`consent-clock`: the scheduled run that keeps the consent clock."
    )

    consent_expires_at: datetime = Field(description="When access lapses unless renewed (UTC).")
    renew_by: datetime = Field(description="By when the customer should renew (UTC).")
    reminder_days: int = Field(
        ge=0, description="The reminder's lead time: how many days before `renewBy` it was due (e.g. 14, 7, 1)."
    )

    @field_serializer("consent_expires_at", "renew_by")
    def _rfc3339_utc(self, moment: datetime) -> str:
        return _utc(moment)


class JourneyEventData(EventData):
    """A journey reached a milestone."""

    journey: str = Field(description="The journey (its name in the bank's journeys file).")


# Data readiness changes because of a read (Codat, reconciliation), the customer (starting the journey, revoking a
# connection) or time passing (the consent clock's scheduled run).
_DATA_ACTOR = Field(
    pattern=r"^(codat|reconcile|consent-clock|customer:.+)$",
    description="What changed it: `codat` (a read completed, or access withdrawn), `reconcile`, `customer:<id>` "
    "(she started the journey, or revoked a connection) or `consent-clock` (time made the data too old).",
)


class JourneyDataReadyData(JourneyEventData):
    """The journey's data is ready to act on: every required data type was read, recently enough."""

    actor: str = _DATA_ACTOR
    fresh_until: datetime = Field(
        description="When the oldest required read grows too old (UTC): ready until then, unless read again."
    )

    @field_serializer("fresh_until")
    def _rfc3339_utc(self, moment: datetime) -> str:
        return _utc(moment)


class JourneyDataStaleData(JourneyEventData):
    """The journey's data is stale again: do not act on it until it is ready."""

    actor: str = _DATA_ACTOR
    stale_types: list[str] = Field(
        min_length=1, description="The required data types never read (from a Linked connection), or read too long ago."
    )


class DataPurgedData(EventData):
    """Data read under an ended consent was deleted in Codat, its retention spent: one connection's, or (no
    connection named) the company's, once nothing of it was left."""

    actor: str = Field(
        pattern=r"^consent-clock$", description="`consent-clock`: the scheduled run that keeps the consent clock."
    )
    connection_id: str | None = Field(
        default=None, description="The connection deleted in Codat (absent: the company)."
    )
    platform_key: str | None = Field(default=None, description="Its platform key.")
    source_type: SourceType | None = Field(default=None, description="Its kind of software.")
    retain_days: int | None = Field(
        default=None, ge=1, description="How long the data was kept once consent had ended (a connection's purge)."
    )


# What each event type is, and the shape of its `data`: the one table the contract is generated from.
EVENT_CATALOG: dict[ConsentEventType, tuple[type[EventData], str]] = {
    ConsentEventType.COMPANY_CREATED: (CompanyEventData, "A customer created a company (its first journey started)."),
    ConsentEventType.CONNECTION_CREATED: (
        ConnectionEventData,
        "A connection was created and its link handed to the customer: her consent, with `consentVersion`.",
    ),
    ConsentEventType.CONNECTION_LINKED: (ConnectionEventData, "The customer authorized the connection in Codat."),
    ConsentEventType.CONNECTION_FAILED: (ConnectionEventData, "Linking the connection failed (`detail` says why)."),
    ConsentEventType.CONNECTION_UNLINKED: (
        ConnectionEventData,
        "The connection was unlinked: the customer revoked it (actor `customer:…`) or it was unlinked in Codat.",
    ),
    ConsentEventType.CONNECTION_DEAUTHORIZED: (
        ConnectionEventData,
        "The platform withdrew access (consent lapsed or token revoked): the customer must re-authorize.",
    ),
    ConsentEventType.CONNECTION_DELETED: (
        ConnectionEventData,
        "The connection is gone: deleted in Codat, withdrawn by the customer before she authorized it, or its "
        "link expired unused.",
    ),
    ConsentEventType.CONNECTION_RENEWED: (
        ConnectionRenewedData,
        "The customer renewed her consent while the connection was still Linked (a fresh link that Codat reported "
        "authorized again): the consent clock restarted.",
    ),
    ConsentEventType.CONNECTION_EXPIRING: (
        ConnectionExpiringData,
        "A reminder, once per lead time and consent period: the connection's consent must be renewed by `renewBy` "
        "(Codat itself gives no warning before access lapses).",
    ),
    ConsentEventType.SYNC_COMPLETED: (SyncCompletedData, "A read of the connection's data finished."),
    ConsentEventType.JOURNEY_LINKED: (JourneyEventData, "Every required source type of the journey is linked."),
    ConsentEventType.JOURNEY_COMPLETED: (
        JourneyEventData,
        "The journey is complete: linked, and the first read of each required connection is done.",
    ),
    ConsentEventType.JOURNEY_ACTION_REQUIRED: (
        JourneyEventData,
        "A journey that was linked or complete needs the customer again (a required connection stopped counting).",
    ),
    ConsentEventType.JOURNEY_DATA_READY: (
        JourneyDataReadyData,
        "The journey's data became ready to act on (each required data type read within its maximum age): once "
        "per transition, in event time.",
    ),
    ConsentEventType.JOURNEY_DATA_STALE: (
        JourneyDataStaleData,
        "The journey's ready data became stale (a required read grew too old, or the connection that read it stopped "
        "counting): once per transition, in event time.",
    ),
    ConsentEventType.DATA_PURGED: (
        DataPurgedData,
        "Data read under an ended consent was deleted in Codat when its retention ran out: the connection, or the "
        "company once nothing of it was left (our record and its history stay).",
    ),
    ConsentEventType.COMPANY_ERASED: (
        CompanyEventData,
        "The customer erased the company: in Codat and here (only this tombstone remains in the ledger).",
    ),
}


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope in structured JSON mode. `id` is the ledger entry's id: every delivery of
    the same entry carries the same id, so subscribers can drop duplicates."""

    # Every attribute is on the wire, defaults too: the published schema requires them all.
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)

    specversion: Literal["1.0"] = Field(default="1.0", description="CloudEvents 1.0.")
    id: str = Field(description="The ledger entry's id: the same on every delivery, to drop duplicates by.")
    source: str = Field(description="The deployment that published it (its EVENT_SOURCE).")
    type: ConsentEventType = Field(description="The event type.")
    time: datetime = Field(description="When it happened (UTC, microseconds), as Codat or the API recorded it.")
    subject: str = Field(description="The company id.")
    datacontenttype: Literal["application/json"] = Field(default="application/json", description="`data` is JSON.")
    dataschema: str = Field(description="The URI of this event type's JSON Schema, with its major version.")
    data: SerializeAsAny[EventData]

    @field_serializer("time")
    def _rfc3339_utc(self, moment: datetime) -> str:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return _utc(moment)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def message_attributes(self) -> dict[str, dict[str, str]]:
        """SNS message attributes for subscribers' filter policies: routing facts only, nothing personal."""
        attributes = {"type": {"DataType": "String", "StringValue": self.type.value}}
        if self.data.journeys:
            attributes["journey"] = {"DataType": "String.Array", "StringValue": json.dumps(self.data.journeys)}
        # Every event about one connection names its platform (a purge of the whole company names none).
        source_type: SourceType | None = getattr(self.data, "source_type", None)
        platform_key: str | None = getattr(self.data, "platform_key", None)
        if source_type is not None and platform_key is not None:
            attributes["sourceType"] = {"DataType": "String", "StringValue": source_type.value}
            attributes["platformKey"] = {"DataType": "String", "StringValue": platform_key}
        return attributes

    def size(self) -> int:
        """Bytes SNS counts for this message: the body plus each attribute's name, type and value."""
        attributes = sum(
            len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
            for name, value in self.message_attributes().items()
        )
        return len(self.to_json().encode()) + attributes


def to_cloud_event(
    record: LedgerRecord, *, source: str, schema_base_uri: str = DEFAULT_SCHEMA_BASE_URI
) -> CloudEvent | None:
    """The consent event a ledger entry publishes, or None when it publishes nothing (a late event, or an
    entry type that is not a consent event). EventOutOfContract if the entry lacks what its event must carry."""
    if record.late:
        return None
    event_type = _EVENT_OF_TYPE.get(record.type)
    if event_type is None:
        return None
    detail = record.detail
    if detail is not None and len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    model, _ = EVENT_CATALOG[event_type]
    fields = {
        "company_id": record.company_id,
        "customer_id": record.customer_id,
        "connection_id": record.connection_id,
        "platform_key": record.platform_key,
        "source_type": record.source_type,
        "status": record.status,
        "journey": record.journey,
        "journeys": record.journeys,
        "actor": record.actor,
        "consent_version": record.consent_version,
        "data_types": record.data_types,
        "consent_expires_at": record.consent_expires_at,
        "renew_by": record.renew_by,
        "reminder_days": record.reminder_days,
        "fresh_until": record.fresh_until,
        "stale_types": record.stale_types,
        "retain_days": record.retain_days,
        "detail": detail,
    }
    try:
        # Only what the type carries: a connection's fields on a journey milestone are not part of its contract.
        data = model.model_validate({k: v for k, v in fields.items() if k in model.model_fields and v is not None})
    except ValidationError as error:
        missing = sorted({".".join(str(part) for part in e["loc"]) for e in error.errors()})
        raise EventOutOfContract(f"entry {record.entry_id} ({event_type.value}): {', '.join(missing)}") from None
    event = CloudEvent(
        id=record.entry_id,
        source=source,
        type=event_type,
        time=record.at,
        subject=record.company_id,
        dataschema=dataschema(event_type, schema_base_uri),
        data=data,
    )
    if event.size() > MAX_EVENT_BYTES:
        raise EventTooLarge(f"event {record.entry_id} is {event.size()} bytes")
    return event
