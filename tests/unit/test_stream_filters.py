"""The local event source mapping's filtering: EventBridge pattern matching as Lambda's FilterCriteria use it."""

from __future__ import annotations

from typing import Any

import pytest

from consent_dev.streams import PatternError, StreamEventSource, matches

pytestmark = pytest.mark.unit

RELAY = StreamEventSource.of("OutboxRelayFunction")


def record(event_name: str, image: dict[str, Any] | None) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {"Keys": {"PK": {"S": "COMPANY#c"}}, "SequenceNumber": "1"}
    if image is not None:
        dynamodb["NewImage"] = image
    return {"eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": dynamodb}


@pytest.mark.parametrize(
    ("event_name", "image", "accepted"),
    [
        ("INSERT", {"kind": {"S": "ledger"}, "data": {"S": "{}"}}, True),
        ("INSERT", {"kind": {"S": "company"}}, False),
        ("INSERT", {"kind": {"S": "Ledger"}}, False),
        ("INSERT", {"data": {"S": "{}"}}, False),
        ("MODIFY", {"kind": {"S": "ledger"}}, False),
        ("REMOVE", None, False),
    ],
)
def test_the_relay_gets_only_new_ledger_entries(event_name: str, image: dict[str, Any] | None, accepted: bool) -> None:
    assert RELAY.accepts(record(event_name, image)) is accepted


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"a": ["x", "y"]}, {"a": "y"}, True),
        ({"a": ["x"]}, {"a": "X"}, False),
        ({"a": ["x"]}, {}, False),
        ({"a": [5]}, {"a": 5.0}, True),
        ({"a": ["5"]}, {"a": 5}, False),
        ({"a": [True]}, {"a": 1}, False),
        ({"a": [None]}, {"a": None}, True),
        ({"a": [None]}, {}, False),
        ({"a": ["x"]}, {"a": ["w", "x"]}, True),
        ({"a": {"b": ["x"]}}, {"a": {"b": "x", "c": 1}}, True),
        ({"a": {"b": ["x"]}}, {"a": "x"}, False),
        ({"a": [{"prefix": "led"}]}, {"a": "ledger"}, True),
        ({"a": [{"prefix": "led"}]}, {"a": "company"}, False),
        ({"a": [{"anything-but": ["company", "connection"]}]}, {"a": "ledger"}, True),
        ({"a": [{"anything-but": "ledger"}]}, {"a": "ledger"}, False),
        ({"a": [{"anything-but": "ledger"}]}, {}, False),
        ({"a": [{"exists": True}]}, {"a": "anything"}, True),
        ({"a": [{"exists": False}]}, {"a": "anything"}, False),
        ({"a": [{"exists": False}]}, {}, True),
        ({"a": ["x"], "b": ["y"]}, {"a": "x", "b": "z"}, False),
    ],
)
def test_pattern_matching(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(
    "pattern",
    [{"a": [{"numeric": [">", 1]}]}, {"a": "x"}, {"a": [{"prefix": "x", "suffix": "y"}]}],
)
def test_a_pattern_it_does_not_implement_is_refused_not_misread(pattern: dict[str, Any]) -> None:
    with pytest.raises(PatternError):
        matches(pattern, {"a": "x"})


def test_the_relay_mapping_is_read_from_the_template() -> None:
    assert RELAY.stream == {"Fn::GetAtt": ["ConsentTable", "StreamArn"]}
    assert RELAY.starting_position == "TRIM_HORIZON"
    assert RELAY.report_batch_item_failures is True
    assert RELAY.bisect_on_error is True
    assert 0 < RELAY.maximum_retry_attempts <= 100
    assert RELAY.on_failure == {"Fn::GetAtt": ["OutboxRelayFailureQueue", "Arn"]}
