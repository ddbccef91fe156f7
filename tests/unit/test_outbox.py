"""The outbox relay use case: stream records in, consent events out, failures back to Lambda per record."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from consent.domain.records import LedgerRecord
from consent.domain.resources import Actor
from consent.events import CloudEvent
from consent.observability import metrics
from consent.publisher import EventPublisher, PublishFailure
from consent.usecases.outbox import relay_ledger_events

pytestmark = pytest.mark.unit

SOURCE = "urn:test"


class RecordingPublisher(EventPublisher):
    """Publishes into a list; the events whose id is in `failing` are refused."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.calls: list[list[CloudEvent]] = []
        self.failing = failing or set()

    def publish(self, events: Sequence[CloudEvent]) -> list[PublishFailure]:
        self.calls.append(list(events))
        return [PublishFailure(e.id, "InternalError") for e in events if e.id in self.failing]

    @property
    def published(self) -> list[str]:
        return [e.id for call in self.calls for e in call if e.id not in self.failing]


def ledger_entry(entry_id: str, type_: str = "company.created", **fields: Any) -> LedgerRecord:
    return LedgerRecord(
        entry_id=entry_id,
        company_id="company-1",
        customer_id="customer-1",
        type=type_,
        actor=Actor.customer("customer-1"),
        at=datetime(2026, 1, 1, tzinfo=UTC),
        journeys=["onboarding"],
        **fields,
    )


def stream_record(sequence: int, image: dict[str, Any], event_name: str = "INSERT") -> dict[str, Any]:
    return {
        "eventID": f"event-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-2",
        "dynamodb": {
            "ApproximateCreationDateTime": 1767225600,
            "Keys": {"PK": image["PK"], "SK": image["SK"]},
            "NewImage": image,
            "SequenceNumber": str(1000 + sequence),
            "SizeBytes": 100,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": "arn:aws:dynamodb:eu-west-2:123456789012:table/t/stream/2026-01-01T00:00:00.000",
    }


def ledger_image(record: LedgerRecord) -> dict[str, Any]:
    return {
        "PK": {"S": f"COMPANY#{record.company_id}"},
        "SK": {"S": f"LEDGER#2026-01-01T00:00:00.000000Z#000#{record.entry_id}"},
        "kind": {"S": "ledger"},
        "type": {"S": record.type},
        "data": {"S": record.model_dump_json()},
    }


def relay(records: list[dict[str, Any]], publisher: EventPublisher) -> Any:
    return relay_ledger_events({"Records": records}, None, publisher, source=SOURCE)


def test_new_consent_ledger_entries_are_published_in_one_batch_call() -> None:
    publisher = RecordingPublisher()
    records = [stream_record(n, ledger_image(ledger_entry(f"entry-{n}"))) for n in range(3)]
    assert relay(records, publisher) == {"batchItemFailures": []}
    assert len(publisher.calls) == 1
    assert [(e.id, e.source, e.type) for e in publisher.calls[0]] == [
        (f"entry-{n}", SOURCE, "consent.company.created") for n in range(3)
    ]


def test_entries_that_are_no_consent_event_and_records_that_can_never_publish_are_skipped() -> None:
    publisher = RecordingPublisher()
    company_item = {"PK": {"S": "COMPANY#c"}, "SK": {"S": "COMPANY"}, "kind": {"S": "company"}, "data": {"S": "{}"}}
    broken = ledger_image(ledger_entry("broken"))
    broken["data"] = {"S": '{"entryId": "broken", "planted": "secret-value-in-bad-data"}'}
    records = [
        stream_record(1, company_item),
        stream_record(2, ledger_image(ledger_entry("started", "journey.started"))),
        stream_record(3, ledger_image(ledger_entry("late", "connection.linked", late=True))),
        stream_record(4, ledger_image(ledger_entry("modified")), event_name="MODIFY"),
        stream_record(5, broken),
        stream_record(6, {**ledger_image(ledger_entry("no-data")), "data": {"N": "1"}}),
        stream_record(7, ledger_image(ledger_entry("published"))),
    ]
    assert relay(records, publisher) == {"batchItemFailures": []}
    assert publisher.published == ["published"]


def test_an_entry_whose_event_would_break_its_contract_is_skipped_not_retried_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics.clear_metrics()
    # A connection entry without the connection (no code path writes one; an older version's item might)
    publisher = RecordingPublisher()
    records = [
        stream_record(1, ledger_image(ledger_entry("no-connection", "connection.linked"))),
        stream_record(2, ledger_image(ledger_entry("published"))),
    ]
    assert relay(records, publisher) == {"batchItemFailures": []}
    assert publisher.published == ["published"]
    [warning] = [r for r in caplog.records if "published schema" in r.getMessage()]
    assert "connectionId" in str(warning.__dict__.get("problem"))
    assert metrics.metric_set["ConsentEventsOutOfContract"]["Value"] == [1.0]  # alarmed
    metrics.clear_metrics()


def test_the_events_carry_the_deployments_schema_base_uri() -> None:
    publisher = RecordingPublisher()
    records = [stream_record(1, ledger_image(ledger_entry("entry-1")))]
    relay_ledger_events({"Records": records}, None, publisher, source=SOURCE, schema_base_uri="https://bank.test/s/")
    assert publisher.calls[0][0].dataschema == "https://bank.test/s/consent.company.created.v1.json"


def test_only_the_records_whose_event_was_not_published_are_reported_for_retry() -> None:
    publisher = RecordingPublisher(failing={"entry-2", "entry-4"})
    records = [stream_record(n, ledger_image(ledger_entry(f"entry-{n}"))) for n in range(6)]
    response = relay(records, publisher)
    assert response == {"batchItemFailures": [{"itemIdentifier": "1002"}, {"itemIdentifier": "1004"}]}


def test_when_nothing_is_published_every_record_is_reported_rather_than_the_invocation_failing() -> None:
    publisher = RecordingPublisher(failing={"entry-0", "entry-1"})
    records = [stream_record(n, ledger_image(ledger_entry(f"entry-{n}"))) for n in range(2)]
    response = relay(records, publisher)
    assert response == {"batchItemFailures": [{"itemIdentifier": "1000"}, {"itemIdentifier": "1001"}]}


def test_a_skipped_record_is_logged_without_its_content(caplog: pytest.LogCaptureFixture) -> None:
    broken = ledger_image(ledger_entry("broken"))
    broken["data"] = {"S": '{"entryId": "broken", "planted": "secret-value-in-bad-data"}'}
    relay([stream_record(1, broken)], RecordingPublisher())
    skipped = [r for r in caplog.records if "stream record skipped" in r.getMessage()]
    assert len(skipped) == 1
    assert skipped[0].__dict__["sequenceNumber"] == "1001"
    assert "secret-value-in-bad-data" not in str(skipped[0].__dict__)
