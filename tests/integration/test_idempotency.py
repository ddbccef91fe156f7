"""Idempotency-Key on POST /companies: scoped to the caller, replayed, refused on another body, one at a time."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

BODY = {"name": "Acme Bakery Ltd", "journey": "onboarding"}


def post(api: LocalApi, key: str, body: dict[str, Any] = BODY, customer: str = "alice") -> Any:
    return api.post("/companies", customer=customer, json=body, headers={"Idempotency-Key": key})


def company_items(table_items: Any) -> list[dict[str, Any]]:
    return [item for item in table_items() if item["kind"]["S"] == "company"]


def test_the_same_key_and_body_replays_the_first_response(
    api: LocalApi, simulator: CodatSimulator, table_items: Any
) -> None:
    first = post(api, "key-1")
    second = post(api, "key-1")

    assert first.status == 201
    assert second.status == first.status
    assert second.text == first.text
    assert second.header("idempotent-replayed") == "true"
    assert len(simulator.companies) == 1
    assert len(company_items(table_items)) == 1


def test_the_same_key_with_another_body_is_409(api: LocalApi, simulator: CodatSimulator) -> None:
    assert post(api, "key-1").status == 201

    response = post(api, "key-1", {**BODY, "name": "Other Name"})

    # A well-formed request that the key's state (bound to another body) refuses: a conflict
    assert response.status == 409
    assert response.body["code"] == "idempotency_key_reused"
    assert len(simulator.companies) == 1


def test_keys_are_scoped_to_the_caller(api: LocalApi, simulator: CodatSimulator) -> None:
    alice = post(api, "shared-key", customer="alice")
    bob = post(api, "shared-key", customer="bob")

    assert alice.status == bob.status == 201
    assert alice.body["companyId"] != bob.body["companyId"]
    assert len(simulator.companies) == 2
    assert api.get(f"/companies/{alice.body['companyId']}", customer="bob").status == 404


@pytest.mark.parametrize("key", ["k" * 256, "two words", "tab\tkey", "caf\u00e9"])
def test_an_over_long_or_unprintable_key_is_422(api: LocalApi, key: str) -> None:
    response = post(api, key)
    assert response.status == 422
    assert (
        response.body["errors"][0]["field"] == "Idempotency-Key".lower()
        or "idempotency" in str(response.body["errors"]).lower()
    )


def test_concurrent_requests_with_one_key_create_one_company(
    api: LocalApi, simulator: CodatSimulator, table_items: Any
) -> None:
    # Codat answers slowly, so the two requests overlap
    simulator.inject(Fault(kind="slow", method="POST", path="^/companies$", delay=0.3, times=1))
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(post(api, "race"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(r.status for r in results)
    assert statuses in ([201, 409], [201, 201])
    conflict = [r for r in results if r.status == 409]
    if conflict:
        assert conflict[0].body["code"] == "idempotency_request_in_progress"
        assert conflict[0].header("retry-after") == "1"
    assert simulator.count("POST", "/companies") == 1
    assert len(simulator.companies) == 1
    assert len(company_items(table_items)) == 1
    # and once the first finished, a retry replays it
    assert post(api, "race").body == next(r.body for r in results if r.status == 201)


def test_twenty_parallel_requests_with_one_key_create_one_codat_company(
    api: LocalApi, simulator: CodatSimulator, table_items: Any
) -> None:
    simulator.inject(Fault(kind="slow", method="POST", path="^/companies$", delay=0.2, times=1))
    results: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        response = post(api, "burst")
        with lock:
            results.append(response)

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 20
    assert {r.status for r in results} <= {201, 409}
    created = {r.body["companyId"] for r in results if r.status == 201}
    assert len(created) == 1
    assert all(r.body["code"] == "idempotency_request_in_progress" for r in results if r.status == 409)
    assert simulator.count("POST", "/companies") == 1
    assert len(simulator.companies) == 1
    assert len(company_items(table_items)) == 1


@pytest.mark.parametrize("body", [BODY, {**BODY, "name": "Another Company Ltd"}], ids=["same body", "another body"])
def test_a_key_reused_after_its_company_was_erased_is_409_not_a_codat_failure(
    api: LocalApi, simulator: CodatSimulator, body: dict[str, Any]
) -> None:
    # Given a company created with a key, then erased (with everything we kept of its create request)
    first = api.post("/companies", customer="alice", json=BODY, headers={"Idempotency-Key": "k-erased"})
    assert first.status == 201, first.text
    assert api.delete(f"/companies/{first.body['companyId']}", customer="alice").status == 204

    # When the key comes again, while Codat still remembers it
    again = api.post("/companies", customer="alice", json=body, headers={"Idempotency-Key": "k-erased"})

    # Then it is the client's mistake, said clearly: Codat is not asked (it would refuse another body, and
    # replay the erased company for the same one)
    assert again.status == 409, again.text
    assert again.body["code"] == "idempotency_key_reused"
    assert "erased" in again.body["detail"]
    assert simulator.count("POST", "/companies") == 1
