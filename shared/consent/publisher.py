"""The event publisher port, and its SNS implementation: consent events out to the bank's subscribers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from consent.events import MAX_EVENT_BYTES, CloudEvent

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef, PublishBatchRequestEntryTypeDef

# SNS PublishBatch limits: ten entries, and 256 KiB for all of them together. Events are bounded so that
# any ten of them fit in one call.
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024
assert MAX_BATCH_ENTRIES * MAX_EVENT_BYTES <= MAX_BATCH_BYTES


@dataclass(frozen=True)
class PublishFailure:
    """An event that was not published, with a machine-readable reason (an SNS error code, never content)."""

    event_id: str
    reason: str


class EventPublisher(ABC):
    @abstractmethod
    def publish(self, events: Sequence[CloudEvent]) -> list[PublishFailure]:
        """Publish `events`; return those that were not published. Never raises for a delivery failure:
        the caller decides what to retry (a retried event keeps its id, so subscribers can dedupe)."""


class SnsEventPublisher(EventPublisher):
    """Publishes to one SNS topic with PublishBatch, up to ten events per call."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._sns = client
        self._topic_arn = topic_arn

    def publish(self, events: Sequence[CloudEvent]) -> list[PublishFailure]:
        # One oversized entry would make SNS refuse its whole batch: it fails alone instead.
        failures = [PublishFailure(event.id, "EventTooLarge") for event in events if event.size() > MAX_EVENT_BYTES]
        sendable = [event for event in events if event.size() <= MAX_EVENT_BYTES]
        batches = [sendable[start : start + MAX_BATCH_ENTRIES] for start in range(0, len(sendable), MAX_BATCH_ENTRIES)]
        for index, batch in enumerate(batches):
            # Entry ids only need to be unique within the call; ledger entry ids may hold characters
            # (":") that SNS does not allow there.
            entries: list[PublishBatchRequestEntryTypeDef] = [
                {"Id": str(position), "Message": event.to_json(), "MessageAttributes": _attributes(event)}
                for position, event in enumerate(batch)
            ]
            try:
                response = self._sns.publish_batch(TopicArn=self._topic_arn, PublishBatchRequestEntries=entries)
            except (ClientError, BotoCoreError) as error:
                reason = _reason(error)
                failures.extend(PublishFailure(event.id, reason) for event in batch)
                # SNS is failing as a whole (botocore has already retried): the remaining batches would only
                # spend the function's time failing too. They are reported unpublished, to be retried.
                failures.extend(
                    PublishFailure(event.id, f"not attempted after {reason}")
                    for rest in batches[index + 1 :]
                    for event in rest
                )
                break
            published = {entry["Id"] for entry in response.get("Successful", [])}
            codes = {entry["Id"]: entry.get("Code", "Failed") for entry in response.get("Failed", [])}
            # An entry SNS did not confirm counts as failed: publishing it again is harmless, losing it is not.
            failures.extend(
                PublishFailure(event.id, codes.get(str(position), "NotConfirmed"))
                for position, event in enumerate(batch)
                if str(position) not in published
            )
        return failures


def _attributes(event: CloudEvent) -> dict[str, MessageAttributeValueTypeDef]:
    return {
        name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
        for name, value in event.message_attributes().items()
    }


def _reason(error: ClientError | BotoCoreError) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or "ClientError")
    return type(error).__name__
