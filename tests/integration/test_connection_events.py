"""What subscribers see of the connection step, revoke and erase: CloudEvents on a subscribed SQS queue,
with the message attributes a filter policy routes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consent_dev.codat_simulator import CodatSimulator
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue

pytestmark = pytest.mark.integration

ALICE = "customer-alice"


def delivered(outbox: StreamPump, queue: EventsQueue) -> list[Any]:
    outbox.drain()
    return queue.receive()


def test_a_new_connection_is_published_with_routable_attributes(
    api: LocalApi, new_company: Callable[..., Any], outbox: StreamPump, events_queue: EventsQueue
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    delivered(outbox, events_queue)

    connection = api.post(
        f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd", "consentVersion": "v3"}
    ).body

    [message] = delivered(outbox, events_queue)
    assert message.type == "consent.connection.created"
    assert message.event["subject"] == company_id
    assert message.event["data"]["connectionId"] == connection["connectionId"]
    assert message.event["data"]["consentVersion"] == "v3"
    assert message.event["data"]["status"] == "PendingAuth"
    assert message.attributes == {
        "type": "consent.connection.created",
        "journey": '["onboarding"]',
        "sourceType": "banking",
        "platformKey": "qhnd",
    }
    assert message.attribute_types["journey"] == "String.Array"
    assert "Acme" not in message.body


def test_revoke_publishes_unlinked_and_the_journey_needing_action_once_however_often_it_is_asked(
    api: LocalApi,
    new_company: Callable[..., Any],
    authorize: Callable[..., None],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    connection_id = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"}).body[
        "connectionId"
    ]
    authorize(company_id, connection_id)
    delivered(outbox, events_queue)

    for _ in range(3):
        assert api.delete(f"/companies/{company_id}/connections/{connection_id}", customer=ALICE).status == 200

    messages = delivered(outbox, events_queue)
    assert [m.type for m in messages] == ["consent.connection.unlinked", "consent.journey.action_required"]
    unlinked = messages[0]
    assert unlinked.event["data"]["actor"] == f"customer:{ALICE}"
    assert unlinked.event["data"]["status"] == "Unlinked"
    assert unlinked.attributes["platformKey"] == "qhnd"
    assert messages[1].attributes["journey"] == '["onboarding"]'


def test_erase_publishes_company_erased_without_personal_data(
    api: LocalApi, simulator: CodatSimulator, outbox: StreamPump, events_queue: EventsQueue
) -> None:
    company_id = api.post(
        "/companies",
        customer=ALICE,
        json={"name": "Secret Name Ltd", "journey": "onboarding", "externalRef": "ref-secret"},
    ).body["companyId"]
    delivered(outbox, events_queue)

    assert api.delete(f"/companies/{company_id}", customer=ALICE).status == 204

    [message] = delivered(outbox, events_queue)
    assert message.type == "consent.company.erased"
    assert message.event["subject"] == company_id
    assert "Secret" not in message.body
    assert "ref-secret" not in message.body
