"""Taking consent back: revoke (unlink in Codat, idempotent) and erase (Codat and ours, tombstone only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from consent.domain.resources import ConnectionStatus
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import connection_event, signed
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue

pytestmark = pytest.mark.integration
# The customer's company count and request count: keyed by a hash of her id, they outlive her companies.
QUOTA_BOOKKEEPING = ("quota", "rate")

ALICE = "customer-alice"


@pytest.fixture
def linked(api: LocalApi, new_company: Callable[..., Any], authorize: Callable[..., None]) -> tuple[str, str]:
    """Alice's onboarding company with its required bank connection Linked and read: journey complete."""
    company_id = new_company(journey="onboarding")["companyId"]
    connection_id = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"}).body[
        "connectionId"
    ]
    authorize(company_id, connection_id)
    return company_id, connection_id


def revoke(api: LocalApi, company_id: str, connection_id: str) -> Any:
    return api.delete(f"/companies/{company_id}/connections/{connection_id}", customer=ALICE)


def ledger(api: LocalApi, company_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"])


def ledger_types(api: LocalApi, company_id: str) -> list[str]:
    return [e["type"] for e in api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"]]


def test_revoking_unlinks_in_codat_records_it_and_needs_action_on_the_journey(
    api: LocalApi, simulator: CodatSimulator, linked: tuple[str, str]
) -> None:
    company_id, connection_id = linked
    assert api.get(f"/companies/{company_id}", customer=ALICE).body["journeys"][0]["status"] == "complete"

    response = revoke(api, company_id, connection_id)

    assert response.status == 200, response.text
    assert response.body["status"] == "Unlinked"
    assert response.body["connectionId"] == connection_id
    assert simulator.connection(company_id, connection_id).status == "Unlinked"
    company = api.get(f"/companies/{company_id}", customer=ALICE).body
    assert company["connections"][0]["status"] == "Unlinked"
    assert company["journeys"][0]["status"] == "action_required"
    revoked = [
        e
        for e in api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"]
        if e["type"] == "consent.revoked"
    ]
    assert len(revoked) == 1
    assert revoked[0]["actor"] == f"customer:{ALICE}"
    assert revoked[0]["connectionId"] == connection_id
    assert ledger_types(api, company_id)[-1] == "journey.action_required"


def test_revoking_twice_unlinks_once_and_writes_once(
    api: LocalApi, simulator: CodatSimulator, linked: tuple[str, str]
) -> None:
    company_id, connection_id = linked

    first = revoke(api, company_id, connection_id)
    second = revoke(api, company_id, connection_id)

    assert first.status == second.status == 200
    assert second.body == first.body
    assert len(simulator.calls("PATCH", "/companies/{companyId}/connections/{connectionId}")) == 1
    assert ledger_types(api, company_id).count("consent.revoked") == 1


@pytest.mark.parametrize("status", [ConnectionStatus.DEAUTHORIZED, ConnectionStatus.UNLINKED])
def test_revoking_a_connection_that_is_not_linked_is_a_no_op(
    api: LocalApi,
    simulator: CodatSimulator,
    new_company: Callable[..., Any],
    authorize: Callable[..., None],
    status: ConnectionStatus,
) -> None:
    company_id = new_company()["companyId"]
    connection_id = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"}).body[
        "connectionId"
    ]
    authorize(company_id, connection_id, status)
    before = ledger_types(api, company_id)

    response = revoke(api, company_id, connection_id)

    assert response.status == 200
    assert response.body["status"] == status.value
    assert simulator.calls("PATCH", "/companies/{companyId}/connections/{connectionId}") == []
    assert ledger_types(api, company_id) == before


def test_revoking_a_connection_still_pending_deletes_it_in_codat_so_its_link_dies(
    api: LocalApi,
    simulator: CodatSimulator,
    new_company: Callable[..., Any],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    # Given a connection the customer has not authorized, here or in Codat, and its link
    company_id = new_company()["companyId"]
    created = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"}).body
    connection_id, link = created["connectionId"], created["linkUrl"]
    outbox.drain()
    events_queue.receive()

    # When she revokes it
    response = revoke(api, company_id, connection_id)

    # Then Codat is asked to unlink (it refuses what is not Linked), then deletes it: the link no longer works
    assert response.status == 200, response.text
    assert "linkUrl" not in response.body
    assert len(simulator.calls("PATCH", "/companies/{companyId}/connections/{connectionId}")) == 1
    assert len(simulator.calls("DELETE", "/companies/{companyId}/connections/{connectionId}")) == 1
    assert connection_id not in simulator.companies[company_id].connections
    with httpx.Client(transport=simulator.transport()) as browser:
        assert browser.post(link, data={"action": "authorize"}).status_code == 404
    # ... her revoke is recorded as hers, the connection is gone from her company, and subscribers hear it
    [withdrawn] = [e for e in ledger(api, company_id) if e["type"] == "consent.withdrawn"]
    assert (withdrawn["actor"], withdrawn["connectionId"]) == (f"customer:{ALICE}", connection_id)
    assert api.get(f"/companies/{company_id}", customer=ALICE).body["connections"] == []
    outbox.drain()
    assert [(m.type, m.event["data"]["actor"]) for m in events_queue.receive()] == [
        ("consent.connection.deleted", f"customer:{ALICE}")
    ]
    # ... and revoking it again changes nothing
    again = revoke(api, company_id, connection_id)
    assert again.status == 200
    assert [e["type"] for e in ledger(api, company_id)].count("consent.withdrawn") == 1
    assert len(simulator.calls("DELETE", "/companies/{companyId}/connections/{connectionId}")) == 1


def test_an_authorization_reported_after_the_revoke_does_not_link_it(
    api: LocalApi, new_company: Callable[..., Any], outbox: StreamPump, events_queue: EventsQueue
) -> None:
    # Given a pending connection the customer revoked
    company_id = new_company(journey="onboarding")["companyId"]
    connection_id = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"}).body[
        "connectionId"
    ]
    assert revoke(api, company_id, connection_id).status == 200
    outbox.drain()
    events_queue.receive()

    # When a connected webhook about it arrives, stamped after the revoke
    body = connection_event(
        "connection.connected",
        company_id=company_id,
        connection_id=connection_id,
        status="Linked",
        generated=datetime.now(UTC) + timedelta(seconds=1),
    )
    raw, headers = signed(body, message_id="msg-after-revoke")
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204

    # Then it does not become a Linked consent: the connection stays gone, the journey unlinked, nothing announced
    company = api.get(f"/companies/{company_id}", customer=ALICE).body
    assert company["connections"] == []
    assert company["journeys"][0]["status"] == "pending"
    assert "journey.linked" not in [e["type"] for e in ledger(api, company_id)]
    outbox.drain()
    assert events_queue.receive() == []


def test_revoking_a_pending_connection_codat_already_has_linked_unlinks_it(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    # Given the customer has just authorized the connection in Codat, and its webhook is still on its way
    company_id = new_company(journey="onboarding")["companyId"]
    connection_id = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"}).body[
        "connectionId"
    ]
    simulator.set_connection_status(company_id, connection_id, "Linked")

    # When she revokes it (the app still shows it pending)
    response = revoke(api, company_id, connection_id)

    # Then it is unlinked in Codat and here, once
    assert response.status == 200, response.text
    assert response.body["status"] == "Unlinked"
    assert simulator.connection(company_id, connection_id).status == "Unlinked"
    assert ledger_types(api, company_id).count("consent.revoked") == 1


def test_revoking_what_codat_already_reports_deauthorized_records_codats_status_once(
    api: LocalApi, simulator: CodatSimulator, linked: tuple[str, str]
) -> None:
    company_id, connection_id = linked
    simulator.set_connection_status(company_id, connection_id, "Deauthorized")  # its webhook was missed

    first = revoke(api, company_id, connection_id)
    second = revoke(api, company_id, connection_id)

    assert first.status == 200, first.text
    assert first.body["status"] == "Deauthorized"
    assert second.body == first.body
    types = ledger_types(api, company_id)
    assert types.count("connection.deauthorized") == 1
    assert "consent.revoked" not in types


def test_erasing_deletes_the_company_in_codat_and_leaves_only_a_tombstone(
    api: LocalApi, simulator: CodatSimulator, linked: tuple[str, str], table_items: Any
) -> None:
    company_id, _ = linked
    secrets = ["Acme Bakery Ltd", "crm-777", "Bread and cakes"]
    other = api.post(
        "/companies",
        customer=ALICE,
        json={"name": secrets[0], "journey": "onboarding", "externalRef": secrets[1], "description": secrets[2]},
        headers={"Idempotency-Key": "erase-me"},
    ).body["companyId"]

    assert api.delete(f"/companies/{company_id}", customer=ALICE).status == 204
    assert api.delete(f"/companies/{other}", customer=ALICE).status == 204

    assert company_id not in simulator.companies
    assert other not in simulator.companies
    items = [i for i in table_items() if i["kind"]["S"] not in QUOTA_BOOKKEEPING]
    spent = [i for i in items if i["kind"]["S"] == "idempotency"]
    assert [i["type"]["S"] for i in items if i not in spent] == ["company.erased", "company.erased"]
    # the Idempotency-Key stays spent while Codat remembers it: its hash, nothing of the request or the answer
    [key] = spent
    assert set(key) == {"PK", "SK", "kind", "state", "expiresAt"}
    assert key["state"]["S"] == "ERASED"
    for secret in secrets:
        assert secret not in str(items)
    for path in ("", "/connections", "/events", "/access-token"):
        assert api.get(f"/companies/{company_id}{path}", customer=ALICE).status == 404
    assert api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"}).status == 404
    assert api.delete(f"/companies/{company_id}", customer=ALICE).status == 404
    assert api.get("/companies", customer=ALICE).body["items"] == []


def test_erase_interrupted_after_the_company_went_is_finished_by_the_retry(
    api: LocalApi, simulator: CodatSimulator, linked: tuple[str, str], table_items: Any, dynamodb_faults: Any
) -> None:
    # (Each failure before that, of Codat or of DynamoDB, is a cell of tests/integration/test_fault_matrix.py.)
    # Given the company and its tombstone are written, but DynamoDB fails to delete the rest of its items
    company_id, _ = linked
    dynamodb_faults.fail("BatchWriteItem", "InternalServerError", times=3)

    failed = api.delete(f"/companies/{company_id}", customer=ALICE)

    # Then the answer says retry, and no reader sees a part of the company: it is gone as a whole
    assert failed.status == 503
    assert company_id not in simulator.companies
    for path in ("", "/connections", "/events"):
        assert api.get(f"/companies/{company_id}{path}", customer=ALICE).status == 404
    assert api.get("/companies", customer=ALICE).body["items"] == []
    # and another customer can neither finish it nor learn that it was there
    assert api.delete(f"/companies/{company_id}", customer="customer-bob").status == 404
    assert len(table_items()) > 1

    # When she retries, the rest goes; then there is nothing left to erase
    assert api.delete(f"/companies/{company_id}", customer=ALICE).status == 204
    assert [i["type"]["S"] for i in table_items() if i["kind"]["S"] not in QUOTA_BOOKKEEPING] == ["company.erased"]
    assert api.delete(f"/companies/{company_id}", customer=ALICE).status == 404


def test_items_a_newer_version_wrote_still_read_during_a_deployment_or_after_a_rollback(
    api: LocalApi, linked: tuple[str, str], dynamodb: Any, settings: Any
) -> None:
    # Given a company and its connection as a newer version of the code wrote them, each with a field (and a
    # status event with a field) this version does not know: functions update one by one during a deployment
    company_id, connection_id = linked
    table = settings.table_name
    for sort_key in ("COMPANY", f"CONNECTION#{connection_id}"):
        key = {"PK": {"S": f"COMPANY#{company_id}"}, "SK": {"S": sort_key}}
        item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        data = json.loads(item["data"]["S"])
        data["addedByANewerVersion"] = {"any": "thing"}
        for event in data.get("history", []):
            event["alsoNew"] = 1
        item["data"] = {"S": json.dumps(data)}
        dynamodb.put_item(TableName=table, Item=item)

    # When this version reads and changes them
    read = api.get(f"/companies/{company_id}", customer=ALICE)
    revoked = revoke(api, company_id, connection_id)

    # Then it serves and changes them as usual (what it does not know is not refused)
    assert read.status == 200, read.text
    assert revoked.status == 200, revoked.text
    assert revoked.body["status"] == "Unlinked"
