"""Consent events out: a ledger entry as the CloudEvents 1.0 message that subscribers receive over SNS.

Only what a bank's systems need to route and act on: ids, types, journeys, statuses. Never a company name,
description, external reference, token or link URL (the ledger holds none of them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_serializer
from pydantic.alias_generators import to_camel

from consent.domain import ConnectionStatus, SourceType
from consent.store.records import LedgerRecord


class ConsentEventType(StrEnum):
    COMPANY_CREATED = "consent.company.created"
    CONNECTION_CREATED = "consent.connection.created"
    CONNECTION_LINKED = "consent.connection.linked"
    CONNECTION_FAILED = "consent.connection.failed"
    CONNECTION_UNLINKED = "consent.connection.unlinked"
    CONNECTION_DEAUTHORIZED = "consent.connection.deauthorized"
    CONNECTION_DELETED = "consent.connection.deleted"
    SYNC_COMPLETED = "consent.sync.completed"
    JOURNEY_LINKED = "consent.journey.linked"
    JOURNEY_COMPLETED = "consent.journey.completed"
    JOURNEY_ACTION_REQUIRED = "consent.journey.action_required"
    COMPANY_ERASED = "consent.company.erased"


# Ledger entry type → the event it publishes. Any other ledger type (journey.started, webhook bookkeeping,
# Codat notices such as client.rateLimit.reached) stays in the ledger only.
LEDGER_EVENT_TYPES: dict[str, ConsentEventType] = {
    "company.created": ConsentEventType.COMPANY_CREATED,
    "connection.created": ConsentEventType.CONNECTION_CREATED,
    "connection.linked": ConsentEventType.CONNECTION_LINKED,
    "connection.failed": ConsentEventType.CONNECTION_FAILED,
    "connection.unlinked": ConsentEventType.CONNECTION_UNLINKED,
    # A customer's revoke unlinks the connection in Codat: subscribers see the same event either way.
    "consent.revoked": ConsentEventType.CONNECTION_UNLINKED,
    "connection.deauthorized": ConsentEventType.CONNECTION_DEAUTHORIZED,
    "connection.deleted": ConsentEventType.CONNECTION_DELETED,
    # The customer revoked a connection she never authorized: deleted in Codat, its link dead.
    "consent.withdrawn": ConsentEventType.CONNECTION_DELETED,
    # Reconciliation deleted a connection never authorized in time (its link had expired): gone all the same.
    "connection.expired": ConsentEventType.CONNECTION_DELETED,
    "sync.completed": ConsentEventType.SYNC_COMPLETED,
    "journey.linked": ConsentEventType.JOURNEY_LINKED,
    "journey.completed": ConsentEventType.JOURNEY_COMPLETED,
    "journey.action_required": ConsentEventType.JOURNEY_ACTION_REQUIRED,
    "company.erased": ConsentEventType.COMPANY_ERASED,
}

# SNS accepts 256 KiB per message (and per PublishBatch call). Our events are about 1 KiB; the bounds below
# keep any one of them far from the limit, so a batch of ten always fits too.
MAX_DETAIL_CHARS = 1000
MAX_EVENT_BYTES = 16 * 1024


class EventTooLarge(ValueError):
    """An event that would not fit in an SNS message even with its detail truncated (it can never be sent)."""


class ConsentEventData(BaseModel):
    """The `data` of a consent event (camelCase on the wire; absent fields are omitted)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    company_id: str
    customer_id: str | None = None
    connection_id: str | None = None
    platform_key: str | None = None
    source_type: SourceType | None = None
    status: ConnectionStatus | None = None
    journey: str | None = None
    journeys: list[str]
    actor: str
    consent_version: str | None = None
    data_types: list[dict[str, str]] | None = None
    detail: str | None = None


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope in structured JSON mode. `id` is the ledger entry's id: every delivery of
    the same entry carries the same id, so subscribers can drop duplicates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: ConsentEventType
    time: datetime
    subject: str
    datacontenttype: Literal["application/json"] = "application/json"
    data: ConsentEventData

    @field_serializer("time")
    def _rfc3339_utc(self, moment: datetime) -> str:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def message_attributes(self) -> dict[str, dict[str, str]]:
        """SNS message attributes for subscribers' filter policies: routing facts only, nothing personal."""
        attributes = {"type": {"DataType": "String", "StringValue": self.type.value}}
        if self.data.journeys:
            attributes["journey"] = {"DataType": "String.Array", "StringValue": json.dumps(self.data.journeys)}
        if self.data.source_type is not None:
            attributes["sourceType"] = {"DataType": "String", "StringValue": self.data.source_type.value}
        if self.data.platform_key:
            attributes["platformKey"] = {"DataType": "String", "StringValue": self.data.platform_key}
        return attributes

    def size(self) -> int:
        """Bytes SNS counts for this message: the body plus each attribute's name, type and value."""
        attributes = sum(
            len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
            for name, value in self.message_attributes().items()
        )
        return len(self.to_json().encode()) + attributes


def to_cloud_event(record: LedgerRecord, *, source: str) -> CloudEvent | None:
    """The consent event a ledger entry publishes, or None when it publishes nothing (a late event, or an
    entry type that is not a consent event)."""
    if record.late:
        return None
    event_type = LEDGER_EVENT_TYPES.get(record.type)
    if event_type is None:
        return None
    detail = record.detail
    if detail is not None and len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    event = CloudEvent(
        id=record.entry_id,
        source=source,
        type=event_type,
        time=record.at,
        subject=record.company_id,
        data=ConsentEventData(
            company_id=record.company_id,
            customer_id=record.customer_id,
            connection_id=record.connection_id,
            platform_key=record.platform_key,
            source_type=record.source_type,
            status=record.status,
            journey=record.journey,
            journeys=record.journeys,
            actor=record.actor,
            consent_version=record.consent_version,
            data_types=record.data_types,
            detail=detail,
        ),
    )
    if event.size() > MAX_EVENT_BYTES:
        raise EventTooLarge(f"event {record.entry_id} is {event.size()} bytes")
    return event
