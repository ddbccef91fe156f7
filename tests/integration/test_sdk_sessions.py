"""Option 1 of Codat's consent journey: Codat's Link and Connections SDKs in the bank's page. The app opens a session
(`POST …/sdk-sessions`) before mounting a component; status still comes from Codat's signed webhooks only, and while
the session is open what Codat reports is the customer's doing: a connection made in Link is adopted with her as actor
and her consent version, a disconnect in CodatConnections is her revocation. The ledger reads as for a hosted link."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import connection_event, signed
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue

ALICE = "customer-alice"
BOB = "customer-bob"
CONNECTION = "5b1e7c0a-9d2f-4e8b-a6c3-1f0e2d4c6b8a"
CUSTOMER = f"customer:{ALICE}"


def open_session(api: LocalApi, company_id: str, body: dict[str, Any], customer: str = ALICE) -> Any:
    return api.post(f"/companies/{company_id}/sdk-sessions", customer=customer, json=body)


def deliver(api: LocalApi, event_type: str, company_id: str, status: str, at: datetime, message_id: str) -> None:
    body = connection_event(event_type, company_id=company_id, connection_id=CONNECTION, status=status, generated=at)
    raw, headers = signed(body, message_id=message_id)
    response = api.post("/webhooks/codat", body=raw, headers=headers)
    assert response.status == 204, response.text


def trail(api: LocalApi, company_id: str) -> list[tuple[str, str, str | None]]:
    ledger = api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"]
    return [(e["type"], e["actor"], e.get("consentVersion")) for e in ledger if "connectionId" in e]


def now(offset: float = 0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset)


def test_opening_a_session_answers_codats_token_and_never_caches_it(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]

    response = open_session(api, company_id, {"component": "link", "consentVersion": "2026-01"})

    assert response.status == 201, response.text
    assert response.header("cache-control") == "no-store"
    assert response.body["component"] == "link"
    assert response.body["accessToken"] in simulator.state.access_tokens
    assert response.body["expiresIn"] > 0
    expires_at = datetime.fromisoformat(response.body["expiresAt"])
    assert now() < expires_at <= now(3600)  # the session lasts at most an hour, whatever the token's lifetime


@pytest.mark.parametrize(
    "body",
    [{}, {"component": "portal"}, {"component": "link", "consentVersion": ""}, {"component": "link", "x": 1}],
    ids=["no component", "unknown component", "empty consent version", "unknown field"],
)
def test_a_session_request_that_can_never_succeed_is_422(
    api: LocalApi, new_company: Callable[..., Any], body: dict[str, Any]
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    response = open_session(api, company_id, body)
    assert response.status == 422, response.text
    assert response.body["code"] == "validation_failed"


def test_another_customers_company_is_404_and_never_reaches_codat(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    before = len(simulator.calls("GET", f"/companies/{company_id}/accessToken"))

    response = open_session(api, company_id, {"component": "link"}, customer=BOB)

    assert response.status == 404
    assert response.body["code"] == "not_found"
    assert len(simulator.calls("GET", f"/companies/{company_id}/accessToken")) == before


@pytest.mark.parametrize("first", ["connection.created", "connection.connected"])
def test_a_connection_made_in_link_is_the_customers_with_her_consent_version(
    api: LocalApi,
    new_company: Callable[..., Any],
    outbox: StreamPump,
    events_queue: EventsQueue,
    first: str,
) -> None:
    # Given the customer opened Codat's Link in the bank's page, having accepted consent text 2026-01
    company_id = new_company(journey="onboarding")["companyId"]
    assert open_session(api, company_id, {"component": "link", "consentVersion": "2026-01"}).status == 201
    outbox.drain()
    events_queue.receive()

    # When Codat reports the connection she made there (either webhook first)
    events = {"connection.created": "PendingAuth", "connection.connected": "Linked"}
    order = [first, *(e for e in events if e != first)]
    for index, event_type in enumerate(order):
        deliver(api, event_type, company_id, events[event_type], now(index * 0.01), f"msg-sdk-{index}")

    # Then the ledger reads as for a hosted link: her consent with its version, Codat's confirmation, the link
    entries = trail(api, company_id)
    assert entries[0] == ("connection.created", CUSTOMER, "2026-01")
    assert ("codat.connection.created", "codat", None) in entries
    assert ("connection.linked", "codat", None) in entries
    assert [t for t, actor, _ in entries if t == "connection.created"] == ["connection.created"]  # once, hers
    # and subscribers hear of it once, as hers
    outbox.drain()
    created = [m.event["data"] for m in events_queue.receive() if m.event["type"] == "consent.connection.created"]
    assert [(d["actor"], d.get("consentVersion")) for d in created] == [(CUSTOMER, "2026-01")]


def test_without_a_session_a_connection_made_outside_our_api_is_codats(
    api: LocalApi, new_company: Callable[..., Any]
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    assert open_session(api, company_id, {"component": "connections"}).status == 201  # not Link: manages only

    deliver(api, "connection.created", company_id, "PendingAuth", now(), "msg-outside")

    assert trail(api, company_id) == [("connection.created", "codat", None)]


def test_a_link_session_no_longer_counts_once_it_ended(api: LocalApi, new_company: Callable[..., Any]) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    assert open_session(api, company_id, {"component": "link", "consentVersion": "2026-01"}).status == 201

    deliver(api, "connection.created", company_id, "PendingAuth", now(3600 + 5), "msg-after-the-session")

    assert trail(api, company_id) == [("connection.created", "codat", None)]


def test_a_disconnect_in_codat_connections_is_the_customers_revocation(
    api: LocalApi,
    new_company: Callable[..., Any],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    # Given a connection she made in Link, linked
    company_id = new_company(journey="onboarding")["companyId"]
    assert open_session(api, company_id, {"component": "link", "consentVersion": "2026-01"}).status == 201
    deliver(api, "connection.connected", company_id, "Linked", now(), "msg-linked")
    outbox.drain()
    events_queue.receive()

    # When she opens CodatConnections and disconnects it there
    assert open_session(api, company_id, {"component": "connections"}).status == 201
    deliver(api, "connection.disconnected", company_id, "Unlinked", now(0.05), "msg-unlinked")

    # Then the ledger records her revocation (made in Codat's component), and subscribers hear it as hers
    assert trail(api, company_id)[-1] == ("consent.revoked", CUSTOMER, None)
    ledger = api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"]
    assert "Connections SDK" in next(e["detail"] for e in ledger if e["type"] == "consent.revoked")
    outbox.drain()
    unlinked = [m.event for m in events_queue.receive() if m.event["type"] == "consent.connection.unlinked"]
    assert [e["data"]["actor"] for e in unlinked] == [CUSTOMER]
    connections = api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]
    assert [c["status"] for c in connections] == ["Unlinked"]


def test_an_unlink_without_a_connections_session_stays_codats(api: LocalApi, new_company: Callable[..., Any]) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    assert open_session(api, company_id, {"component": "link"}).status == 201
    deliver(api, "connection.connected", company_id, "Linked", now(), "msg-linked")

    deliver(api, "connection.disconnected", company_id, "Unlinked", now(0.05), "msg-unlinked")

    assert trail(api, company_id)[-1] == ("connection.unlinked", "codat", None)
