"""The example consumer (`examples/consumer/`) against `make dev`: the template's example queue, subscribed to the
topic with its filter policy, receives a customer's journey; the consumer validates each event against the
published contract, hands it typed to its handler once, drops a redelivery, leaves a message out of contract for
the dead-letter queue and acknowledges an event type it does not know."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest

from consent_dev.devserver import DevStack
from consent_dev.jwt_auth import LocalIssuer
from consent_dev.template import REPO_ROOT

pytestmark = pytest.mark.e2e

ISSUER = LocalIssuer(url="https://issuer.consent.test")
ALICE = {"Authorization": f"Bearer {ISSUER.token('customer-alice')}"}
WAIT_SECONDS = 20.0


def _example() -> ModuleType:
    path = REPO_ROOT / "examples" / "consumer" / "consent_consumer.py"
    spec = importlib.util.spec_from_file_location("consent_consumer", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


consumer_example = _example()


class Recorded:
    """The bank's handlers, recording what they were given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda event: self.calls.append((name, event))


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with DevStack(port=0, codat_port=0, environ={}, issuer=ISSUER) as running:
        yield running


def _journey_completes(stack: DevStack) -> str:
    with httpx.Client(base_url=stack.api_url, timeout=10.0, headers=ALICE) as http:
        company_id = http.post("/companies", json={"name": "Acme Ltd", "journey": "onboarding"}).json()["companyId"]
        link = http.post(f"/companies/{company_id}/connections", json={"platformKey": "qhnd"}).json()["linkUrl"]
        httpx.post(link, data={"action": "authorize"}, timeout=10.0)
        deadline = time.monotonic() + WAIT_SECONDS
        while http.get(f"/companies/{company_id}").json()["journeys"][0]["status"] != "complete":
            assert time.monotonic() < deadline, "the journey did not complete"
            time.sleep(0.1)
    return str(company_id)


def _poll_until(consumer: Any, done: Any) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        assert time.monotonic() < deadline, consumer.tally
        if not consumer.poll_once():
            time.sleep(0.1)


def test_the_example_consumer_handles_a_journey_typed_once_and_refuses_what_breaks_the_contract(
    stack: DevStack,
) -> None:
    assert stack.deployed is not None
    queue_url = stack.deployed.queue_urls["ExampleConsumerQueue"]
    sqs = boto3.client("sqs")
    handlers = Recorded()
    consumer = consumer_example.Consumer(sqs, queue_url, handlers, consumer_example.Contract())

    # Given a customer whose journey completes
    company_id = _journey_completes(stack)

    # When the consumer reads its queue
    _poll_until(consumer, lambda: "journey_completed" in [name for name, _ in handlers.calls])

    # Then it got the subscribed events, typed, each once
    names = [name for name, _ in handlers.calls]
    assert names == ["connection_linked", "journey_linked", "journey_completed"]
    linked = handlers.calls[0][1]
    assert isinstance(linked, consumer_example.ConnectionEvent)
    assert (linked.subject, linked.platform_key, linked.source_type, linked.status) == (
        company_id,
        "qhnd",
        "banking",
        "Linked",
    )
    completed = handlers.calls[2][1]
    assert isinstance(completed, consumer_example.JourneyEvent)
    assert completed.journey == "onboarding"

    # When SNS delivers the same event again (at least once): it is dropped
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": linked.id,
            "source": "urn:consent-journey:codat",
            "type": "consent.connection.linked",
            "time": linked.time,
            "subject": company_id,
            "datacontenttype": "application/json",
            "dataschema": "urn:consent-journey:schemas:consent.connection.linked.v1.json",
            "data": {
                "companyId": company_id,
                "journeys": linked.journeys,
                "actor": linked.actor,
                "connectionId": linked.connection_id,
                "platformKey": "qhnd",
                "sourceType": "banking",
                "status": "Linked",
            },
        }
    )
    sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    _poll_until(consumer, lambda: consumer.tally.duplicates == 1)
    assert len(handlers.calls) == 3

    # When a message breaks the contract (no connection id): not handled, not deleted (the DLQ will have it)
    broken = json.loads(body)
    del broken["data"]["connectionId"]
    broken["id"] = "another-id"
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(broken))
    _poll_until(consumer, lambda: consumer.tally.rejected == 1)
    assert len(handlers.calls) == 3
    waiting = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert waiting["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"

    # When the contract has grown a type this consumer does not know: acknowledged, ignored
    newer = {**json.loads(body), "id": "newer-id", "type": "consent.company.archived"}  # not (yet) in the contract
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(newer))
    _poll_until(consumer, lambda: consumer.tally.ignored == 1)
    assert len(handlers.calls) == 3
    assert consumer.tally.handled == 3
