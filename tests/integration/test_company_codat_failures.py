"""POST /companies when Codat misbehaves: retried within budget, mapped to clear problems, nothing half-written.
Each failure of the fault matrix is in tests/integration/test_fault_matrix.py; these are the ones beside it."""

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
    """What the table holds of the consent domain (not the key's claim, nor the customer's request count)."""
    return sorted(item["kind"]["S"] for item in table_items() if item["kind"]["S"] not in ("idempotency", "rate"))


def test_a_429_then_success_is_retried_and_answers_201(api: LocalApi, simulator: CodatSimulator, clock: Any) -> None:
    simulator.inject(Fault(kind="status", status=429, retry_after=2, times=1, **CREATE))

    response = post(api)

    assert response.status == 201, response.text
    assert simulator.count("POST", "/companies") == 2
    assert clock.sleeps
    assert clock.sleeps[0] >= 2
    assert len(simulator.companies) == 1


def test_a_persistent_502_is_503_codat_unavailable_within_the_budget(
    api: LocalApi, simulator: CodatSimulator, clock: Any, table_items: Any
) -> None:
    # 429, 500 and 503 (and every other failure of Codat): tests/integration/test_fault_matrix.py
    simulator.inject(Fault(kind="status", status=502, times=None, **CREATE))

    response = post(api)

    assert response.status == 503, response.text
    assert response.body["code"] == "codat_unavailable"
    assert int(response.header("retry-after") or 0) >= 1
    assert simulator.count("POST", "/companies") == 4  # the attempt budget, no more
    assert sum(clock.sleeps) < 20  # inside the retry budget
    assert our_items(table_items) == []


def test_codat_refusing_our_key_with_a_403_is_502_and_not_retried(
    api: LocalApi, simulator: CodatSimulator, table_items: Any
) -> None:
    # A 401: tests/integration/test_fault_matrix.py
    simulator.inject(Fault(kind="status", status=403, times=None, **CREATE))

    response = post(api)

    assert response.status == 502
    assert response.body["code"] == "codat_auth_failed"
    assert simulator.count("POST", "/companies") == 1
    assert our_items(table_items) == []


def test_a_lost_response_is_recovered_by_the_clients_retry_without_a_duplicate(
    api: LocalApi, simulator: CodatSimulator, table_items: Any
) -> None:
    simulator.inject(Fault(kind="lose_response", times=1, **CREATE))

    response = post(api)

    assert response.status == 201, response.text
    assert len(simulator.companies) == 1
    assert response.body["companyId"] in simulator.companies
    assert our_items(table_items) == ["company", "ledger", "ledger", "quota"]  # quota: the customer's count


@pytest.mark.parametrize(
    ("advice", "passed_on"),
    [
        ("inf", "1"),  # not finite: no advice, our own default
        ("1e999", "1"),
        ("nan", "1"),
        ("-30", "1"),
        ("Fri, 31 Dec 9999 23:59:59 GMT", "3600"),  # a far-future date: an hour at most
        ("99999999999", "3600"),
        ("7", "7"),
    ],
)
def test_codat_s_retry_after_is_passed_on_only_finite_and_at_most_an_hour(
    api: LocalApi, simulator: CodatSimulator, table_items: Any, advice: str, passed_on: str
) -> None:
    # Given Codat rate limiting every attempt with an odd Retry-After
    simulator.inject(Fault(kind="status", status=429, headers={"Retry-After": advice}, times=None, **CREATE))

    # When the customer creates a company
    response = post(api)

    # Then the answer is the rate-limit problem with a sane Retry-After, never a 500, and nothing is stored
    assert response.status == 503, response.text
    assert response.body["code"] == "codat_unavailable"
    assert response.header("retry-after") == passed_on
    assert our_items(table_items) == []
