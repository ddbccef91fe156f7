"""POST /companies when Codat misbehaves: retried within budget, mapped to clear problems, nothing half-written."""

from __future__ import annotations

from typing import Any

import pytest

from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

BODY = {"name": "Acme Bakery Ltd", "journey": "onboarding"}
CREATE = {"method": "POST", "path": "^/companies$"}


def post(api: LocalApi, key: str | None = "key-1") -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return api.post("/companies", customer="alice", json=BODY, headers=headers)


def our_items(table_items: Any) -> list[str]:
    return sorted(item["kind"]["S"] for item in table_items() if item["kind"]["S"] != "idempotency")


def test_a_429_then_success_is_retried_and_answers_201(api: LocalApi, simulator: CodatSimulator, clock: Any) -> None:
    simulator.inject(Fault(kind="status", status=429, retry_after=2, times=1, **CREATE))

    response = post(api)

    assert response.status == 201, response.text
    assert simulator.count("POST", "/companies") == 2
    assert clock.sleeps
    assert clock.sleeps[0] >= 2
    assert len(simulator.companies) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_persistent_429_or_5xx_is_503_codat_unavailable_within_the_budget(
    api: LocalApi, simulator: CodatSimulator, clock: Any, table_items: Any, status: int
) -> None:
    simulator.inject(Fault(kind="status", status=status, times=None, **CREATE))

    response = post(api)

    assert response.status == 503, response.text
    assert response.body["code"] == "codat_unavailable"
    assert int(response.header("retry-after") or 0) >= 1
    assert simulator.count("POST", "/companies") == 4  # the attempt budget, no more
    assert sum(clock.sleeps) < 20  # inside the retry budget
    assert our_items(table_items) == []


@pytest.mark.parametrize("status", [401, 403])
def test_codat_refusing_our_key_is_502_and_not_retried(
    api: LocalApi, simulator: CodatSimulator, table_items: Any, status: int
) -> None:
    simulator.inject(Fault(kind="status", status=status, times=None, **CREATE))

    response = post(api)

    assert response.status == 502
    assert response.body["code"] == "codat_auth_failed"
    assert simulator.count("POST", "/companies") == 1
    assert our_items(table_items) == []


def test_codat_timing_out_is_504_and_nothing_is_stored(
    api: LocalApi, simulator: CodatSimulator, table_items: Any
) -> None:
    simulator.inject(Fault(kind="drop", error="read_timeout", times=None, **CREATE))

    response = post(api)

    assert response.status == 504, response.text
    assert response.body["code"] == "codat_timeout"
    assert our_items(table_items) == []


def test_a_lost_response_is_recovered_by_the_clients_retry_without_a_duplicate(
    api: LocalApi, simulator: CodatSimulator, table_items: Any
) -> None:
    simulator.inject(Fault(kind="lose_response", times=1, **CREATE))

    response = post(api)

    assert response.status == 201, response.text
    assert len(simulator.companies) == 1
    assert response.body["companyId"] in simulator.companies
    assert our_items(table_items) == ["company", "ledger", "ledger"]


def test_a_request_that_failed_after_codat_created_the_company_recovers_it_on_retry(
    api: LocalApi, simulator: CodatSimulator, table_items: Any
) -> None:
    # Given Codat created the company but every answer was lost, so the request failed
    simulator.inject(Fault(kind="lose_response", times=None, **CREATE))
    failed = post(api)
    assert failed.status == 504
    assert len(simulator.companies) == 1
    assert our_items(table_items) == []

    # When Codat is healthy again but its own idempotency window has passed, and the app retries
    simulator.clear_faults()
    simulator.forget_idempotency_keys()
    retried = post(api)

    # Then the company Codat already made is found by its tag and adopted: no duplicate
    assert retried.status == 201, retried.text
    assert len(simulator.companies) == 1
    assert retried.body["companyId"] in simulator.companies
    assert simulator.count("GET", "/companies") == 1
    assert our_items(table_items) == ["company", "ledger", "ledger"]


def test_dynamodb_throttling_after_codat_created_the_company_is_503_and_a_retry_adopts_it(
    api: LocalApi, simulator: CodatSimulator, table_items: Any, dynamodb_faults: Any
) -> None:
    # Given DynamoDB throttles the write (beyond botocore's own retries)
    dynamodb_faults.fail("TransactWriteItems", "ProvisionedThroughputExceededException", times=3)
    failed = post(api)
    assert failed.status == 503
    assert failed.body["code"] == "store_unavailable"
    assert our_items(table_items) == []

    # When the app retries with the same key after Codat's idempotency window
    simulator.forget_idempotency_keys()
    retried = post(api)

    assert retried.status == 201
    assert len(simulator.companies) == 1
    assert our_items(table_items) == ["company", "ledger", "ledger"]


def test_a_malformed_codat_answer_is_502_and_nothing_is_stored(
    api: LocalApi, simulator: CodatSimulator, table_items: Any
) -> None:
    simulator.inject(Fault(kind="malformed", times=None, **CREATE))

    response = post(api)

    assert response.status == 502
    assert response.body["code"] == "codat_bad_response"
    assert our_items(table_items) == []
