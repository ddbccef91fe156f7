"""`make dev`'s clock and schedules, their pure parts: the durations `POST /_dev/clock` takes, the scheduled functions
read from a template (whichever it holds), and the events their schedules send."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent_dev.clock import ClockError, DevClock, parse_duration
from consent_dev.lambda_runtime import scheduled_event
from consent_dev.template import Schedule, schedules

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P14D", timedelta(days=14)),
        ("P90D", timedelta(days=90)),
        ("PT36H", timedelta(hours=36)),
        ("PT90M", timedelta(minutes=90)),
        ("P1DT12H30M", timedelta(days=1, hours=12, minutes=30)),
        ("PT1H1M", timedelta(hours=1, minutes=1)),
        ("P0D", timedelta(0)),
    ],
)
def test_durations_of_days_hours_and_minutes_are_read(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "P1W",
        "P1Y",
        "P1M",  # a month, not a minute: minutes come after T
        "PT30S",
        "P1.5D",
        "P1,5D",
        "-P1D",
        "+P1D",
        "p14d",
        "P14d",
        "14D",
        " P1D",
        "P1D\n",
        "P\u0661D",  # a digit, but not an ASCII one
        "PT1M1H",  # out of order
        "P1D1D",
        "P9999999999D",
        "P4000D",  # further ahead than the clock may run
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ClockError):
        parse_duration(text)


def test_the_clock_reads_the_wall_clock_plus_its_offset_and_tells_its_followers() -> None:
    clock = DevClock()
    moves: list[timedelta] = []
    clock.on_advance(moves.append)
    before = datetime.now(UTC)
    clock.advance(timedelta(days=14))
    clock.advance(timedelta(0))
    assert before + timedelta(days=14) <= clock() <= datetime.now(UTC) + timedelta(days=14)
    assert moves == [timedelta(days=14), timedelta(0)]
    assert clock.describe()["offsetSeconds"] == 14 * 86400
    with pytest.raises(ClockError):
        clock.advance(timedelta(microseconds=-1))
    assert moves == [timedelta(days=14), timedelta(0)]


def function(events: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {"CodeUri": "functions/x/", "Events": events, **properties},
    }


def test_every_scheduled_event_of_every_function_is_found_whatever_the_template_holds() -> None:
    template = {
        "Resources": {
            "ApiFunction": function({"Get": {"Type": "HttpApi", "Properties": {"Path": "/x", "Method": "get"}}}),
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "NightlyFunction": function(
                {"Nightly": {"Type": "Schedule", "Properties": {"Schedule": "cron(0 2 * * ? *)"}}}
            ),
            "RemindersFunction": function(
                {"Hourly": {"Type": "ScheduleV2", "Properties": {"ScheduleExpression": {"Ref": "RemindersSchedule"}}}}
            ),
        }
    }
    assert schedules(template) == [
        Schedule("NightlyFunction", "Nightly", "Schedule", {"Schedule": "cron(0 2 * * ? *)"}),
        Schedule("RemindersFunction", "Hourly", "ScheduleV2", {"ScheduleExpression": {"Ref": "RemindersSchedule"}}),
    ]


def test_an_eventbridge_rule_sends_its_scheduled_event() -> None:
    rule = Schedule("ReconcileFunction", "ReconcileSchedule", "Schedule", {"Schedule": {"Ref": "ReconcileSchedule"}})
    event = scheduled_event(rule, NOW, {"AWS::Region": "eu-west-1", "AWS::AccountId": "111122223333"})
    assert event == {
        "version": "0",
        "id": event["id"],
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "111122223333",
        "time": "2026-03-01T09:30:15Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:111122223333:rule/ReconcileFunctionReconcileSchedule"],
        "detail": {},
    }
    assert event["id"] != scheduled_event(rule, NOW)["id"]


def test_an_eventbridge_scheduler_schedule_sends_its_default_notification() -> None:
    schedule = Schedule("RemindersFunction", "Hourly", "ScheduleV2", {"ScheduleExpression": "rate(1 hour)"})
    event = scheduled_event(schedule, NOW)
    assert (event["source"], event["detail-type"], event["detail"]) == ("aws.scheduler", "Scheduled Event", "{}")
    assert event["resources"] == ["arn:aws:scheduler:eu-west-2:123456789012:schedule/default/RemindersFunctionHourly"]


@pytest.mark.parametrize("kind", ["Schedule", "ScheduleV2"])
def test_a_schedule_with_input_sends_that_alone(kind: str) -> None:
    given = {"task": "reminders", "days": [14, 7, 1]}
    schedule = Schedule("RemindersFunction", "Daily", kind, {"Input": json.dumps(given)})
    assert scheduled_event(schedule, NOW) == given
