"""A bank system's view of consent events: an SQS queue subscribed to the topic with raw delivery."""

from __future__ import annotations

import json
import uuid
from typing import Any

from consent.services import aws_client


class ReceivedEvent:
    """One SNS message as a raw-delivery SQS subscriber receives it: the CloudEvent and its attributes."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.body: str = message["Body"]
        self.event: dict[str, Any] = json.loads(self.body)
        attributes = message.get("MessageAttributes", {})
        self.attributes: dict[str, str] = {name: value["StringValue"] for name, value in attributes.items()}
        self.attribute_types: dict[str, str] = {name: value["DataType"] for name, value in attributes.items()}

    @property
    def type(self) -> str:
        return str(self.event["type"])


class EventsQueue:
    """An SQS queue subscribed to the test's consent topic, like a bank's system."""

    def __init__(self, sqs: Any, url: str) -> None:
        self._sqs = sqs
        self.url = url

    @classmethod
    def subscribe(cls, topic_arn: str, *, filter_policy: dict[str, Any] | None = None) -> EventsQueue:
        """A new queue subscribed to `topic_arn` (raw delivery), optionally with a filter policy."""
        sqs = aws_client("sqs")
        url = sqs.create_queue(QueueName=f"subscriber-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {"RawMessageDelivery": "true"}
        if filter_policy is not None:
            attributes["FilterPolicy"] = json.dumps(filter_policy)
        aws_client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)
        return cls(sqs, url)

    def receive(self) -> list[ReceivedEvent]:
        """Everything delivered so far (each message once: received messages are deleted)."""
        received: list[ReceivedEvent] = []
        while True:
            page = self._sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
            )
            messages = page.get("Messages", [])
            if not messages:
                return received
            for message in messages:
                received.append(ReceivedEvent(message))
                self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
