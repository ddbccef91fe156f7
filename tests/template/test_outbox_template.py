"""template.yaml's consent-events block: the outbox relay's mapping, permissions, alarms and example consumer."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from consent.domain.records import LedgerRecord
from consent.events import ConsentEventType
from consent.services import Services, aws_client
from consent.settings import Settings
from consent.store import Change
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.aws import MotoServer, deploy
from consent_dev.streams import StreamPump
from consent_dev.template import function_environment, functions, load_template, parameter_defaults

pytestmark = pytest.mark.template

RESOURCES = load_template()["Resources"]
RELAY = RESOURCES["OutboxRelayFunction"]["Properties"]


def test_the_relay_follows_new_ledger_entries_and_reports_failures_per_record() -> None:
    [event] = RELAY["Events"].values()
    mapping = event["Properties"]
    assert event["Type"] == "DynamoDB"
    assert mapping["Stream"] == {"Fn::GetAtt": ["ConsentTable", "StreamArn"]}
    assert RESOURCES["ConsentTable"]["Properties"]["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    assert json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"]) == {
        "eventName": ["INSERT"],
        "dynamodb": {"NewImage": {"kind": {"S": ["ledger"]}}},
    }
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 100
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["OutboxRelayFailureQueue", "Arn"]
    }


def test_failures_are_kept_encrypted_for_two_weeks_and_alarmed() -> None:
    queue = RESOURCES["OutboxRelayFailureQueue"]["Properties"]
    assert queue["KmsMasterKeyId"] == {"Fn::GetAtt": ["ConsentKey", "Arn"]}
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    alarmed = {
        (a["Properties"]["Namespace"], a["Properties"]["MetricName"], json.dumps(a["Properties"]["Dimensions"]))
        for a in RESOURCES.values()
        if a["Type"] == "AWS::CloudWatch::Alarm" and "MetricName" in a["Properties"]  # not a metric-math alarm
    }
    relay = json.dumps([{"Name": "FunctionName", "Value": {"Ref": "OutboxRelayFunction"}}])
    assert ("AWS/Lambda", "IteratorAge", relay) in alarmed
    assert ("AWS/Lambda", "Errors", relay) in alarmed
    for queue_id in ("OutboxRelayFailureQueue", "ExampleConsumerDeadLetterQueue"):
        dimensions = json.dumps([{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}])
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dimensions) in alarmed


def test_the_example_consumer_subscribes_raw_to_real_event_types_with_a_dead_letter_queue() -> None:
    subscription = RESOURCES["ExampleConsumerSubscription"]["Properties"]
    assert subscription["TopicArn"] == {"Ref": "ConsentEventsTopic"}
    assert subscription["Protocol"] == "sqs"
    assert subscription["RawMessageDelivery"] is True
    assert subscription["FilterPolicy"]["type"]
    assert set(subscription["FilterPolicy"]["type"]) <= {t.value for t in ConsentEventType}
    queue = RESOURCES["ExampleConsumerQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ExampleConsumerDeadLetterQueue", "Arn"]}
    [statement] = RESOURCES["ExampleConsumerQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "ConsentEventsTopic"}


def test_the_relay_publishes_on_the_environment_the_template_gives_it(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the relay's environment as Lambda would set it, and a subscriber on the deployed topic
    deployed = deploy(moto_server.endpoint)
    [relay] = [f for f in functions() if f.logical_id == "OutboxRelayFunction"]
    environment = function_environment(relay, {**parameter_defaults(), **deployed.refs()})
    for name in list(os.environ):
        if name.startswith(("CODAT_", "CONSENT_", "EVENT_")):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    sqs, sns = aws_client("sqs"), aws_client("sns")
    url = sqs.create_queue(QueueName=f"subscriber-{deployed.tables['ConsentTable']}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=deployed.topics["ConsentEventsTopic"], Protocol="sqs", Endpoint=arn)
    store = DynamoDBConsentStore(aws_client("dynamodb"), deployed.tables["ConsentTable"])
    at = datetime.now(UTC)
    store.commit(
        Change(ledger=[LedgerRecord(entry_id="e-1", company_id="c-1", type="company.created", actor="codat", at=at)])
    )

    # When the relay runs with services built from that environment alone
    pump = StreamPump(
        deployed.tables["ConsentTable"], relay, lambda: Services(Settings.from_environment()), deployed=deployed
    )
    assert pump.drain().invocations == 1

    # Then the event is on the topic, with the deployment's event source
    [message] = sqs.receive_message(QueueUrl=url).get("Messages", [])
    event: dict[str, Any] = json.loads(json.loads(message["Body"])["Message"])
    assert (event["id"], event["source"]) == ("e-1", parameter_defaults()["EventSource"])
