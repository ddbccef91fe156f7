"""An example subscriber of consent events: what a bank's other system (say, underwriting) would run.

It reads the SQS queue the stack subscribes to the consent topic (`ExampleConsumerQueueUrl`, raw message
delivery), and for each message:

1. validates the CloudEvent against the published contract (the JSON Schemas of `contracts/events/`, picked by
   the event's `type`); a message out of contract is left on the queue, so that after `maxReceiveCount`
   receives it lands in the dead-letter queue for a person to look at;
2. drops a duplicate: delivery is at least once, and a redelivery carries the same CloudEvent `id`;
3. hands it, typed, to the handler of its type; an event type it does not know (the contract may add some
   within a major version) is acknowledged and ignored.

It depends on nothing of the consent backend's code: only on the contract files, boto3 and jsonschema.

    python examples/consumer/consent_consumer.py --queue-url <ExampleConsumerQueueUrl> [--schemas contracts/events]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
from jsonschema import Draft202012Validator

log = logging.getLogger("consent_consumer")

SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "events"
MAJOR = 1  # the contract's major version this consumer is written for


# -- the events, typed (the fields this consumer uses; the contract has more) -------------------------------


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    time: str
    subject: str
    journeys: list[str]
    actor: str


@dataclass(frozen=True)
class ConnectionEvent(Envelope):
    connection_id: str
    platform_key: str
    source_type: str
    status: str | None


@dataclass(frozen=True)
class JourneyEvent(Envelope):
    journey: str


@dataclass(frozen=True)
class SyncCompleted(ConnectionEvent):
    data_types: list[dict[str, str]] = field(default_factory=list)


def _envelope(event: Mapping[str, Any]) -> dict[str, Any]:
    data = event["data"]
    return {
        "id": event["id"],
        "type": event["type"],
        "time": event["time"],
        "subject": event["subject"],
        "journeys": list(data["journeys"]),
        "actor": data["actor"],
    }


def _connection(event: Mapping[str, Any]) -> dict[str, Any]:
    data = event["data"]
    return {
        **_envelope(event),
        "connection_id": data["connectionId"],
        "platform_key": data["platformKey"],
        "source_type": data["sourceType"],
        "status": data.get("status"),
    }


def connection_event(event: Mapping[str, Any]) -> ConnectionEvent:
    return ConnectionEvent(**_connection(event))


def journey_event(event: Mapping[str, Any]) -> JourneyEvent:
    return JourneyEvent(**_envelope(event), journey=event["data"]["journey"])


def sync_completed(event: Mapping[str, Any]) -> SyncCompleted:
    return SyncCompleted(**_connection(event), data_types=list(event["data"].get("dataTypes", [])))


class Handlers(Protocol):
    """What the bank's system does with each event type it subscribes to."""

    def journey_linked(self, event: JourneyEvent) -> None: ...
    def journey_completed(self, event: JourneyEvent) -> None: ...
    def journey_action_required(self, event: JourneyEvent) -> None: ...
    def connection_linked(self, event: ConnectionEvent) -> None: ...
    def connection_unlinked(self, event: ConnectionEvent) -> None: ...
    def connection_deauthorized(self, event: ConnectionEvent) -> None: ...
    def sync_completed(self, event: SyncCompleted) -> None: ...


def _routes(handlers: Handlers) -> dict[str, Callable[[Mapping[str, Any]], None]]:
    return {
        "consent.journey.linked": lambda e: handlers.journey_linked(journey_event(e)),
        "consent.journey.completed": lambda e: handlers.journey_completed(journey_event(e)),
        "consent.journey.action_required": lambda e: handlers.journey_action_required(journey_event(e)),
        "consent.connection.linked": lambda e: handlers.connection_linked(connection_event(e)),
        "consent.connection.unlinked": lambda e: handlers.connection_unlinked(connection_event(e)),
        "consent.connection.deauthorized": lambda e: handlers.connection_deauthorized(connection_event(e)),
        "consent.sync.completed": lambda e: handlers.sync_completed(sync_completed(e)),
    }


# -- the contract and deduplication --------------------------------------------------------------------------


class Contract:
    """The published JSON Schemas, one per event type (`<type>.v<major>.json`)."""

    def __init__(self, folder: Path = SCHEMAS, major: int = MAJOR) -> None:
        self._validators: dict[str, Draft202012Validator] = {}
        for path in sorted(folder.glob(f"*.v{major}.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            self._validators[path.name.removesuffix(f".v{major}.json")] = Draft202012Validator(schema)
        if not self._validators:
            raise ValueError(f"no v{major} event schemas in {folder}")

    def problems(self, event: Any) -> list[str] | None:
        """What is wrong with `event` by its schema; None when the contract has no such type (a newer one)."""
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return ["not a CloudEvent"]
        validator = self._validators.get(event["type"])
        if validator is None:
            return None
        return [error.message for error in validator.iter_errors(event)]


class SeenIds:
    """The CloudEvent ids handled lately, bounded. One process only: a fleet of consumers would keep them in a
    shared store instead (a DynamoDB conditional put with a TTL, say) with the same interface."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True

    def forget(self, event_id: str) -> None:
        self._ids.pop(event_id, None)


@dataclass
class Tally:
    handled: int = 0
    duplicates: int = 0
    ignored: int = 0  # types this consumer does not know
    rejected: int = 0  # out of contract: left for the dead-letter queue


class Consumer:
    def __init__(
        self, sqs: Any, queue_url: str, handlers: Handlers, contract: Contract, seen: SeenIds | None = None
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._routes = _routes(handlers)
        self._contract = contract
        self._seen = seen or SeenIds()
        self.tally = Tally()

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive up to ten messages and process each; the number received."""
        received = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        messages = received.get("Messages", [])
        for message in messages:
            if self.process(message["Body"]):
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def process(self, body: str) -> bool:
        """Handle one message body; whether it may be deleted from the queue."""
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        problems = self._contract.problems(event)
        if problems:
            self.tally.rejected += 1
            log.error("consent event out of contract, left for the dead-letter queue: %s", "; ".join(problems[:3]))
            return False
        if problems is None or not isinstance(event, dict) or event["type"] not in self._routes:
            self.tally.ignored += 1  # a type the contract (or this consumer) does not know yet
            return True
        if not self._seen.first_time(event["id"]):
            self.tally.duplicates += 1
            return True
        try:
            self._routes[event["type"]](event)
        except Exception:
            # Not handled: the redelivery SQS makes after the visibility timeout must be tried again.
            self._seen.forget(event["id"])
            raise
        self.tally.handled += 1
        return True


# -- the bank's side: here, a log line per event ------------------------------------------------------------


class LoggingHandlers:
    def journey_linked(self, event: JourneyEvent) -> None:
        log.info("company %s: journey %s linked", event.subject, event.journey)

    def journey_completed(self, event: JourneyEvent) -> None:
        log.info("company %s: journey %s complete: data ready for underwriting", event.subject, event.journey)

    def journey_action_required(self, event: JourneyEvent) -> None:
        log.info("company %s: journey %s needs the customer again", event.subject, event.journey)

    def connection_linked(self, event: ConnectionEvent) -> None:
        log.info("company %s: %s connection %s linked", event.subject, event.source_type, event.connection_id)

    def connection_unlinked(self, event: ConnectionEvent) -> None:
        log.info("company %s: connection %s unlinked by %s", event.subject, event.connection_id, event.actor)

    def connection_deauthorized(self, event: ConnectionEvent) -> None:
        log.info("company %s: connection %s deauthorized: ask for re-consent", event.subject, event.connection_id)

    def sync_completed(self, event: SyncCompleted) -> None:
        log.info(
            "company %s: connection %s read (%d data types)", event.subject, event.connection_id, len(event.data_types)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Consume consent events from an SQS queue subscribed to the topic.")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--schemas", type=Path, default=SCHEMAS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    consumer = Consumer(boto3.client("sqs"), args.queue_url, LoggingHandlers(), Contract(args.schemas))
    while True:
        consumer.poll_once(wait_seconds=20)


if __name__ == "__main__":
    raise SystemExit(main())
