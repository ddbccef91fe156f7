"""The outbox relay: publishes each new consent ledger entry, read from the table's stream, as a CloudEvent.

A state change and its ledger entries commit in one transaction; this relay gets them to SNS afterwards,
at least once, so no event is lost if the process that made the change dies right after committing."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from consent.domain.records import LedgerRecord
from consent.events import CloudEvent, EventOutOfContract, EventTooLarge, to_cloud_event
from consent.observability import logger, metrics
from consent.publisher import EventPublisher
from consent.settings import DEFAULT_SCHEMA_BASE_URI


class EventNotPublished(Exception):
    """A ledger entry's event did not reach SNS in this invocation; Lambda retries it from the stream."""


def relay_ledger_events(
    event: dict[str, Any],
    context: LambdaContext | None,
    publisher: EventPublisher,
    *,
    source: str,
    schema_base_uri: str = DEFAULT_SCHEMA_BASE_URI,
) -> PartialItemFailureResponse:
    """Publish the consent events of a batch of DynamoDB stream records; the records whose event was not
    published come back as `batchItemFailures`, and Lambda retries from the first of them."""
    # Publish first, in SNS batches of ten, then let the batch processor report each record's outcome:
    # one PublishBatch call per ten events instead of one Publish per record.
    pending: dict[str, str] = {}  # sequence number → event id
    events: list[CloudEvent] = []
    for raw in event.get("Records", []):
        record = DynamoDBRecord(raw)
        cloud_event = _consent_event(record, source, schema_base_uri)
        if cloud_event is not None and record.dynamodb is not None and record.dynamodb.sequence_number:
            pending[record.dynamodb.sequence_number] = cloud_event.id
            events.append(cloud_event)
    failed = {failure.event_id: failure.reason for failure in publisher.publish(events)} if events else {}
    if len(events) > len(failed):
        metrics.add_metric(name="ConsentEventsPublished", unit=MetricUnit.Count, value=len(events) - len(failed))
    if failed:
        metrics.add_metric(name="ConsentEventsNotPublished", unit=MetricUnit.Count, value=len(failed))
        logger.warning("consent events not published", extra={"failed": len(failed), "events": len(events)})

    def settle(record: DynamoDBRecord) -> None:
        sequence_number = record.dynamodb.sequence_number if record.dynamodb is not None else None
        event_id = pending.get(sequence_number or "")
        if event_id is not None and event_id in failed:
            raise EventNotPublished(f"event {event_id}: {failed[event_id]}")

    # An SNS outage fails every record: report them all rather than raise, so that Lambda retries from
    # the first one instead of bisecting a batch that has nothing wrong with it.
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=settle, processor=processor, context=context)


def _consent_event(record: DynamoDBRecord, source: str, schema_base_uri: str) -> CloudEvent | None:
    """The event a stream record publishes; None when it publishes nothing. Records that can never publish
    (not a new ledger entry, unreadable, too large) are skipped with a warning: retrying cannot help them."""
    ledger = _ledger_entry(record)
    if ledger is None:
        return None
    try:
        return to_cloud_event(ledger, source=source, schema_base_uri=schema_base_uri)
    except EventTooLarge:
        _skip(record, "the event is too large for SNS")
        return None
    except EventOutOfContract as error:
        # Never published out of its schema: a subscriber's validator would reject it anyway. The entry stays in
        # the ledger; the warning says which field its type lacked, and ConsentEventsOutOfContract is alarmed.
        metrics.add_metric(name="ConsentEventsOutOfContract", unit=MetricUnit.Count, value=1)
        _skip(record, "the event would not match its published schema", problem=str(error))
        return None


def _ledger_entry(record: DynamoDBRecord) -> LedgerRecord | None:
    # The two attributes we need, read as they are: deserializing the whole image could fail on an item
    # that is none of ours, and such a record must be skipped, not retried.
    image = (record.raw_event.get("dynamodb") or {}).get("NewImage") or {}
    if record.get("eventName") != "INSERT" or _string(image, "kind") != "ledger":
        _skip(record, "not a new ledger entry")
        return None
    data = _string(image, "data")
    if data is None:
        _skip(record, "the ledger entry has no data")
        return None
    try:
        return LedgerRecord.model_validate_json(data)
    except ValidationError as error:
        # The error's text quotes the input: log only where it failed.
        fields = sorted({".".join(str(part) for part in e["loc"]) for e in error.errors()})
        _skip(record, "the ledger entry is not valid", fields=fields)
        return None


def _string(image: dict[str, Any], name: str) -> str | None:
    value = image.get(name)
    text = value.get("S") if isinstance(value, dict) else None
    return text if isinstance(text, str) else None


def _skip(record: DynamoDBRecord, reason: str, **extra: Any) -> None:
    metrics.add_metric(name="OutboxRecordsSkipped", unit=MetricUnit.Count, value=1)
    logger.warning(
        f"stream record skipped: {reason}",
        extra={
            "sequenceNumber": record.dynamodb.sequence_number if record.dynamodb is not None else None,
            "eventName": record.get("eventName"),
            **extra,
        },
    )
