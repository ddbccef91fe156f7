"""Consent events out, end to end: a committed change → the table's stream → the outbox relay (as Lambda's
event source mapping runs it) → SNS → a subscriber's SQS queue, with SNS failures along the way."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from consent.domain.records import LedgerRecord
from consent.domain.resources import Actor
from consent.events import CloudEvent
from consent.publisher import EventPublisher, PublishFailure, SnsEventPublisher
from consent.services import aws_client
from consent.settings import Settings
from consent.store import Change
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.aws import Deployed
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamEventSource, StreamPump

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
PLANTED = {"name": "Planted Bakery Ltd", "description": "planted description", "externalRef": "planted-crm-77"}
RELAY_RETRIES = StreamEventSource.of("OutboxRelayFunction").maximum_retry_attempts


def create_company(api: LocalApi, journey: str = "onboarding", **body: Any) -> str:
    response = api.post("/companies", customer=ALICE, json={"name": "Acme Bakery Ltd", "journey": journey, **body})
    assert response.status == 201, response.text
    return str(response.body["companyId"])


def ledger(table_items: Callable[[], list[dict[str, Any]]], company_id: str) -> list[LedgerRecord]:
    entries = [LedgerRecord.model_validate_json(i["data"]["S"]) for i in table_items() if i["kind"]["S"] == "ledger"]
    return [e for e in entries if e.company_id == company_id]


def entry_id(table_items: Callable[[], list[dict[str, Any]]], company_id: str, type_: str) -> str:
    [found] = [e for e in ledger(table_items, company_id) if e.type == type_]
    return found.entry_id


def failure_queue_messages(aws: Deployed) -> list[dict[str, Any]]:
    sqs = aws_client("sqs")
    page = sqs.receive_message(QueueUrl=aws.queue_urls["OutboxRelayFailureQueue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in page.get("Messages", [])]


class FlakyPublisher(EventPublisher):
    """SNS, except that the events `fails` picks are refused (or, with `lost_ack`, published but reported
    failed, as when SNS's answer is lost) for their first `times` attempts (None: always)."""

    def __init__(
        self, sns: EventPublisher, fails: Callable[[CloudEvent], bool], *, times: int | None = 1, lost_ack: bool = False
    ) -> None:
        self._sns = sns
        self._fails = fails
        self._times = times
        self._lost_ack = lost_ack
        self.attempts: Counter[str] = Counter()

    def publish(self, events: Sequence[CloudEvent]) -> list[PublishFailure]:
        failing = []
        for event in events:
            self.attempts[event.id] += 1
            if self._fails(event) and (self._times is None or self.attempts[event.id] <= self._times):
                failing.append(event)
        to_send = list(events) if self._lost_ack else [e for e in events if e not in failing]
        return [PublishFailure(e.id, "Injected") for e in failing] + self._sns.publish(to_send)


class CrashingPublisher(EventPublisher):
    """Raises (an unexpected bug, not a reported failure) whenever a batch holds an event `crashes` picks."""

    def __init__(self, sns: EventPublisher, crashes: Callable[[CloudEvent], bool]) -> None:
        self._sns = sns
        self._crashes = crashes

    def publish(self, events: Sequence[CloudEvent]) -> list[PublishFailure]:
        if any(self._crashes(e) for e in events):
            raise RuntimeError("publisher bug")
        return self._sns.publish(events)


@pytest.fixture
def sns_publisher(settings: Settings) -> SnsEventPublisher:
    assert settings.topic_arn
    return SnsEventPublisher(aws_client("sns"), settings.topic_arn)


# -- delivery -------------------------------------------------------------------------------------------


def test_a_new_company_reaches_subscribers_as_a_cloudevent_with_the_ledger_entry_id(
    api: LocalApi, outbox: StreamPump, events_queue: Any, table_items: Any, settings: Settings
) -> None:
    # Given a customer creates a company (its change and ledger entries commit together)
    company_id = create_company(api, name=PLANTED["name"], description=PLANTED["description"], externalRef="x-1")

    # When the relay follows the table's stream
    summary = outbox.drain()

    # Then the subscriber gets one consent.company.created CloudEvent (journey.started publishes nothing)
    assert summary.invocations == 1
    [received] = events_queue.receive()
    event = received.event
    created = next(e for e in ledger(table_items, company_id) if e.type == "company.created")
    assert event == {
        "specversion": "1.0",
        "id": created.entry_id,
        "source": settings.event_source,
        "type": "consent.company.created",
        "time": created.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "subject": company_id,
        "datacontenttype": "application/json",
        "dataschema": "urn:consent-journey:schemas:consent.company.created.v1.json",
        "data": {
            "companyId": company_id,
            "customerId": ALICE,
            "journeys": ["onboarding"],
            "actor": f"customer:{ALICE}",
        },
    }
    assert received.attributes == {"type": "consent.company.created", "journey": '["onboarding"]'}
    assert received.attribute_types == {"type": "String", "journey": "String.Array"}
    # And nothing the customer typed about their company is in it
    for value in [PLANTED["name"], PLANTED["description"], "x-1"]:
        assert value not in received.body
        assert value not in json.dumps(received.attributes)


def test_entries_that_are_no_consent_event_and_late_entries_publish_nothing(
    api: LocalApi, outbox: StreamPump, events_queue: Any, store: DynamoDBConsentStore
) -> None:
    company_id = create_company(api)
    outbox.drain()
    events_queue.receive()

    # Given another journey starts (journey.started only), Codat's notice and a late status are recorded
    assert (
        api.post(f"/companies/{company_id}/journeys", customer=ALICE, json={"journey": "loan_application"}).status
        == 200
    )
    at = datetime.now(UTC)
    common = {"company_id": company_id, "customer_id": ALICE, "actor": Actor.CODAT, "at": at}
    store.commit(
        Change(
            ledger=[
                LedgerRecord(entry_id="notice-1", type="client.rateLimit.reached", **common),
                LedgerRecord(entry_id="late-1", type="connection.linked", connection_id="c-1", late=True, **common),
            ]
        )
    )

    # When the relay runs, Then the function saw them and nobody receives anything
    summary = outbox.drain()
    assert summary.invocations >= 1
    assert events_queue.receive() == []


def test_a_filter_policy_routes_on_the_message_attributes(
    api: LocalApi, outbox: StreamPump, subscribe_events: Callable[..., Any]
) -> None:
    # Given subscribers with filter policies on the event type and on the journey (String.Array)
    journey_events = subscribe_events({"type": ["consent.journey.completed", "consent.journey.linked"]})
    onboarding = subscribe_events({"journey": ["onboarding"]})
    loans = subscribe_events({"journey": ["loan_application"]})

    # When an onboarding company is created and relayed
    create_company(api, journey="onboarding")
    outbox.drain()

    # Then only the subscriber whose policy matches receives it
    assert journey_events.receive() == []
    assert [r.type for r in onboarding.receive()] == ["consent.company.created"]
    assert loans.receive() == []


def test_the_templates_example_consumer_receives_only_the_types_it_subscribed_to(
    api: LocalApi, outbox: StreamPump, store: DynamoDBConsentStore, aws: Deployed
) -> None:
    company_id = create_company(api)
    common = {"company_id": company_id, "customer_id": ALICE, "actor": Actor.CODAT, "at": datetime.now(UTC)}
    store.commit(
        Change(ledger=[LedgerRecord(entry_id="done-1", type="journey.completed", journey="onboarding", **common)])
    )

    outbox.drain()

    sqs = aws_client("sqs")
    page = sqs.receive_message(QueueUrl=aws.queue_urls["ExampleConsumerQueue"], MaxNumberOfMessages=10)
    assert [json.loads(m["Body"])["type"] for m in page.get("Messages", [])] == ["consent.journey.completed"]


# -- failures -------------------------------------------------------------------------------------------


def test_a_partial_failure_is_retried_from_the_first_failed_record_only(
    api: LocalApi,
    outbox_factory: Callable[..., StreamPump],
    events_queue: Any,
    sns_publisher: SnsEventPublisher,
    table_items: Any,
) -> None:
    # Given SNS refuses the second company's event once
    first, second = create_company(api), create_company(api)
    flaky = FlakyPublisher(sns_publisher, lambda e: e.subject == second)

    # When the relay runs
    summary = outbox_factory(publisher=flaky).drain()

    # Then the retry started at the second company's record: the first company's event went out once
    assert summary.invocations == 2
    ids = {company: entry_id(table_items, company, "company.created") for company in (first, second)}
    assert flaky.attempts == {ids[first]: 1, ids[second]: 2}
    assert sorted(r.event["id"] for r in events_queue.receive()) == sorted(ids.values())


def test_a_lost_acknowledgement_delivers_again_with_the_same_id(
    api: LocalApi, outbox_factory: Callable[..., StreamPump], events_queue: Any, sns_publisher: SnsEventPublisher
) -> None:
    # Given SNS takes the event but its answer is lost
    create_company(api)
    outbox = outbox_factory(publisher=FlakyPublisher(sns_publisher, lambda e: True, lost_ack=True))

    outbox.drain()

    # Then the subscriber sees it twice, with one id to dedupe on
    received = events_queue.receive()
    assert len(received) == 2
    assert received[0].event == received[1].event


def test_an_event_that_keeps_failing_ends_on_the_failure_queue_and_the_stream_moves_on(
    api: LocalApi,
    outbox_factory: Callable[..., StreamPump],
    events_queue: Any,
    sns_publisher: SnsEventPublisher,
    aws: Deployed,
) -> None:
    # Given SNS always refuses one company's events
    doomed = create_company(api)
    outbox = outbox_factory(publisher=FlakyPublisher(sns_publisher, lambda e: e.subject == doomed, times=None))

    # When the relay runs
    summary = outbox.drain()

    # Then Lambda tried it MaximumRetryAttempts more times, then described the batch on the failure queue
    assert summary.invocations == RELAY_RETRIES + 1
    assert summary.discarded == 2  # company.created and the journey.started after it in the batch
    [failure] = failure_queue_messages(aws)
    assert failure == summary.failure_records[0]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == RELAY_RETRIES + 1
    assert "functionError" not in failure["responseContext"]
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 2
    assert info["streamArn"] == aws.stream_arns["ConsentTable"]
    assert int(info["startSequenceNumber"]) < int(info["endSequenceNumber"])
    assert events_queue.receive() == []

    # And the stream is not blocked: the next change is delivered
    later = create_company(api)
    assert outbox.drain().invocations == 1
    assert [r.event["subject"] for r in events_queue.receive()] == [later]


def test_a_relay_crash_is_bisected_down_to_the_record_that_causes_it(
    api: LocalApi,
    outbox_factory: Callable[..., StreamPump],
    events_queue: Any,
    sns_publisher: SnsEventPublisher,
    aws: Deployed,
) -> None:
    # Given the relay crashes on any batch holding one company's creation
    doomed, fine = create_company(api), create_company(api)
    outbox = outbox_factory(publisher=CrashingPublisher(sns_publisher, lambda e: e.subject == doomed))

    summary = outbox.drain()

    # Then Lambda split the batch until that record was alone, gave up on it alone, and delivered the rest
    assert summary.discarded == 1
    [failure] = failure_queue_messages(aws)
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert [r.event["subject"] for r in events_queue.receive()] == [fine]


def test_the_pump_delivers_in_the_background_for_the_dev_server(
    api: LocalApi, outbox: StreamPump, events_queue: Any
) -> None:
    with outbox.start(interval=0.05):
        company_id = create_company(api)
        received: list[Any] = []
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
            received = events_queue.receive()
    assert [r.event["subject"] for r in received] == [company_id]
