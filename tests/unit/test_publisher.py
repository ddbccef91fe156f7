"""The SNS publisher: PublishBatch by ten, and every SNS failure reported per event, never raised."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from consent.events import CloudEvent, CompanyEventData, ConsentEventType, dataschema
from consent.publisher import PublishFailure, SnsEventPublisher

pytestmark = pytest.mark.unit

TOPIC = "arn:aws:sns:eu-west-2:123456789012:consent-events"


def event(n: int, **data: Any) -> CloudEvent:
    return CloudEvent(
        id=f"prefix:entry-{n}",  # ledger ids may hold characters SNS refuses in batch entry ids
        source="urn:test",
        type=ConsentEventType.COMPANY_CREATED,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        subject=f"company-{n}",
        dataschema=dataschema(ConsentEventType.COMPANY_CREATED),
        data=CompanyEventData(company_id=f"company-{n}", journeys=["onboarding"], actor="codat", **data),
    )


class FakeSns:
    """Answers PublishBatch like SNS: every entry Successful unless told otherwise, per call."""

    def __init__(self, answers: dict[int, Any] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self._answers = answers or {}

    def publish_batch(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        answer = self._answers.get(len(self.calls))
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        entries = request["PublishBatchRequestEntries"]
        return {"Successful": [{"Id": e["Id"], "MessageId": f"m-{e['Id']}"} for e in entries], "Failed": []}


def test_events_go_out_ten_per_call_as_cloudevents_with_their_attributes() -> None:
    sns = FakeSns()
    failures = SnsEventPublisher(sns, TOPIC).publish([event(n) for n in range(23)])
    assert failures == []
    assert [len(call["PublishBatchRequestEntries"]) for call in sns.calls] == [10, 10, 3]
    first = sns.calls[0]["PublishBatchRequestEntries"][0]
    assert sns.calls[0]["TopicArn"] == TOPIC
    assert first["Id"] == "0"
    assert json.loads(first["Message"])["id"] == "prefix:entry-0"
    assert first["MessageAttributes"]["type"] == {"DataType": "String", "StringValue": "consent.company.created"}


def test_entries_sns_refuses_or_does_not_confirm_are_reported_with_their_code() -> None:
    def partly(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "Successful": [{"Id": "0", "MessageId": "m-0"}],
            "Failed": [{"Id": "1", "Code": "InternalError", "SenderFault": False}],
        }  # entry "2" neither: not confirmed

    failures = SnsEventPublisher(FakeSns({1: partly}), TOPIC).publish([event(0), event(1), event(2)])
    assert failures == [
        PublishFailure("prefix:entry-1", "InternalError"),
        PublishFailure("prefix:entry-2", "NotConfirmed"),
    ]


def test_a_failing_call_fails_its_events_and_leaves_the_rest_for_the_retry() -> None:
    throttled = ClientError({"Error": {"Code": "Throttled", "Message": "slow down"}}, "PublishBatch")
    sns = FakeSns({2: throttled})
    failures = SnsEventPublisher(sns, TOPIC).publish([event(n) for n in range(25)])
    assert len(sns.calls) == 2  # the third batch is not attempted
    assert [f.event_id for f in failures] == [f"prefix:entry-{n}" for n in range(10, 25)]
    assert {f.reason for f in failures[:10]} == {"Throttled"}
    assert {f.reason for f in failures[10:]} == {"not attempted after Throttled"}


def test_sns_unreachable_is_a_failure_not_an_exception() -> None:
    sns = FakeSns({1: EndpointConnectionError(endpoint_url="https://sns.eu-west-2.amazonaws.com")})
    failures = SnsEventPublisher(sns, TOPIC).publish([event(0)])
    assert failures == [PublishFailure("prefix:entry-0", "EndpointConnectionError")]


def test_an_oversized_event_fails_alone_without_costing_its_neighbours() -> None:
    # Built by hand, past the model's own bound: to_cloud_event would have truncated the detail
    data = CompanyEventData.model_construct(company_id="company-1", journeys=[], actor="codat", detail="x" * 20_000)
    huge = event(1).model_copy(update={"data": data})
    sns = FakeSns()
    failures = SnsEventPublisher(sns, TOPIC).publish([event(0), huge, event(2)])
    assert failures == [PublishFailure("prefix:entry-1", "EventTooLarge")]
    sent = [json.loads(e["Message"])["id"] for e in sns.calls[0]["PublishBatchRequestEntries"]]
    assert sent == ["prefix:entry-0", "prefix:entry-2"]


def test_nothing_to_publish_calls_nothing() -> None:
    sns = FakeSns()
    assert SnsEventPublisher(sns, TOPIC).publish([]) == []
    assert sns.calls == []
