"""Taking consent back: revoke (unlink in Codat, idempotent) and erase (Codat and ours, tombstone only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consent.domain import ConnectionStatus
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

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


def test_revoking_a_connection_still_pending_in_codat_changes_nothing(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    # Given a connection the customer has not authorized, here or in Codat
    company_id = new_company()["companyId"]
    connection_id = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"}).body[
        "connectionId"
    ]
    before = ledger_types(api, company_id)

    # When she revokes it
    response = revoke(api, company_id, connection_id)

    # Then Codat is asked (it refuses to unlink what is not Linked), and nothing changes or is recorded
    assert response.status == 200, response.text
    assert response.body["status"] == "PendingAuth"
    assert len(simulator.calls("PATCH", "/companies/{companyId}/connections/{connectionId}")) == 1
    assert simulator.connection(company_id, connection_id).status == "PendingAuth"
    assert ledger_types(api, company_id) == before


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
    items = table_items()
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
    assert [i["type"]["S"] for i in table_items()] == ["company.erased"]
    assert api.delete(f"/companies/{company_id}", customer=ALICE).status == 404
