"""Per-customer quotas: one customer cannot spend the bank's shared Codat quota.

A cap on the companies a customer has, and a rate (per UTC minute and per UTC day) on the routes that may call
Codat. Over either: 429 problem+json before anything is done — nothing counted, nothing sent to Codat, nothing
written, the Idempotency-Key free again. Revoke and erase are never limited."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.services import Services
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.local_api import ApiResponse, LocalApi

pytestmark = pytest.mark.integration

ALICE, BOB = "customer-alice", "customer-bob"
START = datetime(2026, 12, 6, 10, 15, 30, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock_now() -> Clock:
    return Clock()


@pytest.fixture
def quota_api(
    settings: Settings, store: DynamoDBConsentStore, codat: CodatClient, clock_now: Clock
) -> Callable[..., tuple[LocalApi, Services]]:
    def make(**limits: int) -> tuple[LocalApi, Services]:
        services = Services(settings.model_copy(update=limits), store=store, codat=codat, clock=clock_now)
        return LocalApi(services), services

    return make


def create(api: LocalApi, customer: str = ALICE, key: str | None = None, name: str = "Acme Ltd") -> ApiResponse:
    headers = {"Idempotency-Key": key} if key else None
    return api.post("/companies", customer=customer, json={"name": name, "journey": "onboarding"}, headers=headers)


def kinds(table_items: Callable[[], list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [item for item in table_items() if item["kind"]["S"] == kind]


# -- the company cap ---------------------------------------------------------------------------------------


def test_over_the_company_cap_is_429_before_codat_and_erasing_one_frees_a_place(
    quota_api: Any, simulator: CodatSimulator, table_items: Any
) -> None:
    api, _ = quota_api(max_companies_per_customer=2)
    first, second = create(api, name="One").body["companyId"], create(api, name="Two").body["companyId"]

    refused = create(api, key="third", name="Three")

    assert refused.status == 429, refused.text
    assert refused.body["code"] == "company_quota_exceeded"
    assert refused.header("retry-after") is None  # no time lifts it: only erasing a company does
    assert simulator.count("POST", "/companies") == 2
    assert len(kinds(table_items, "company")) == 2
    assert [i["state"]["S"] for i in kinds(table_items, "idempotency")] == ["RELEASED"]
    # Another customer is not affected
    assert create(api, customer=BOB).status == 201

    # When she erases one, she may create another (with the same key: it was never spent)
    assert api.delete(f"/companies/{first}", customer=ALICE).status == 204
    again = create(api, key="third", name="Three")
    assert again.status == 201, again.text
    assert {second, again.body["companyId"]} <= set(simulator.companies)


def test_a_company_over_the_cap_by_a_race_is_not_kept_anywhere(
    quota_api: Any, simulator: CodatSimulator, table_items: Any, store: DynamoDBConsentStore
) -> None:
    # Given a cap of one, and another request of hers that takes the place between our check and our write
    api, services = quota_api(max_companies_per_customer=1)
    write = store.create_company
    racer: dict[str, str] = {}

    def raced(*args: Any, **kwargs: Any) -> None:
        if not racer:
            racer["id"] = "racing"  # the other tab's own write goes straight through
            racer["id"] = create(api, name="The other tab").body["companyId"]
        write(*args, **kwargs)

    services.store.create_company = raced  # type: ignore[method-assign]

    # When her request writes its company
    refused = create(api, key="k-1", name="Mine")

    # Then it is refused, the company Codat made for it is deleted there, and the key is free again
    assert refused.status == 429, refused.text
    assert refused.body["code"] == "company_quota_exceeded"
    assert list(simulator.companies) == [racer["id"]]
    assert [c["PK"]["S"] for c in kinds(table_items, "company")] == [f"COMPANY#{racer['id']}"]
    [quota] = kinds(table_items, "quota")
    assert quota["companies"]["N"] == "1"
    services.store.create_company = write  # type: ignore[method-assign]
    assert create(api, key="k-1", name="Mine").body["code"] == "company_quota_exceeded"  # not "in progress"


def test_concurrent_creates_at_the_cap_keep_exactly_the_cap(
    quota_api: Any, simulator: CodatSimulator, table_items: Any
) -> None:
    api, _ = quota_api(max_companies_per_customer=3)
    start = threading.Barrier(10)

    def one(n: int) -> int:
        start.wait()
        return create(api, key=f"key-{n}", name=f"Company {n}").status

    with ThreadPoolExecutor(10) as pool:
        statuses = sorted(pool.map(one, range(10)))

    assert statuses == [201] * 3 + [429] * 7
    assert len(kinds(table_items, "company")) == 3
    assert len(simulator.companies) == 3  # what a lost race made in Codat is deleted there
    [quota] = kinds(table_items, "quota")
    assert quota["companies"]["N"] == "3"


# -- the rate on routes that may call Codat -------------------------------------------------------------------


def test_over_the_rate_a_minute_is_429_with_retry_after_until_the_next_minute(
    quota_api: Any, simulator: CodatSimulator, clock_now: Clock
) -> None:
    api, _ = quota_api(customer_codat_requests_per_minute=3)
    for _ in range(3):
        assert api.get("/integrations", customer=ALICE).status == 200
    company_calls = simulator.count("POST", "/companies")

    for refused in (api.get("/integrations", customer=ALICE), create(api, key="k")):
        assert refused.status == 429, refused.text
        assert refused.body["code"] == "rate_limited"
        assert refused.header("retry-after") == "30"  # 10:15:30 → 10:16:00
    assert simulator.count("POST", "/companies") == company_calls  # Codat never asked
    assert api.get("/integrations", customer=BOB).status == 200  # another customer's allowance is hers

    clock_now.now += timedelta(seconds=30)
    assert api.get("/integrations", customer=ALICE).status == 200


def test_over_the_rate_a_day_is_429_until_midnight(quota_api: Any, clock_now: Clock) -> None:
    api, _ = quota_api(customer_codat_requests_per_minute=100, customer_codat_requests_per_day=4)
    for _ in range(4):
        assert api.get("/integrations", customer=ALICE).status == 200
        clock_now.now += timedelta(minutes=5)

    refused = api.get("/integrations", customer=ALICE)

    assert refused.status == 429
    assert refused.header("retry-after") == str(
        int((datetime(2026, 12, 7, tzinfo=UTC) - clock_now.now).total_seconds())
    )
    clock_now.now = datetime(2026, 12, 7, 0, 0, 1, tzinfo=UTC)
    assert api.get("/integrations", customer=ALICE).status == 200


def test_concurrent_requests_spend_exactly_the_allowance(quota_api: Any, table_items: Any) -> None:
    api, _ = quota_api(customer_codat_requests_per_minute=5)
    start = threading.Barrier(12)

    def one(_: int) -> int:
        start.wait()
        return api.get("/integrations", customer=ALICE).status

    with ThreadPoolExecutor(12) as pool:
        statuses = sorted(pool.map(one, range(12)))

    assert statuses == [200] * 5 + [429] * 7
    [rate] = kinds(table_items, "rate")
    assert rate["requests"]["N"] == "5"  # a refused request counts nothing


def test_revoking_and_erasing_are_never_limited(
    quota_api: Any, simulator: CodatSimulator, authorize: Callable[..., None]
) -> None:
    # Given a customer with a Linked connection who has spent her whole allowance
    api, services = quota_api(customer_codat_requests_per_minute=3)
    company_id = create(api).body["companyId"]
    connection = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
    authorize(company_id, connection.body["connectionId"], via=services)
    assert api.get("/integrations", customer=ALICE).status == 200
    assert api.get("/integrations", customer=ALICE).status == 429

    # Then she can still withdraw her consent, and erase the company
    revoked = api.delete(f"/companies/{company_id}/connections/{connection.body['connectionId']}", customer=ALICE)
    assert revoked.status == 200, revoked.text
    assert revoked.body["status"] == "Unlinked"
    assert api.delete(f"/companies/{company_id}", customer=ALICE).status == 204


def test_the_customers_counts_name_no_customer(quota_api: Any, table_items: Any) -> None:
    api, _ = quota_api()
    create(api)
    counts = kinds(table_items, "quota") + kinds(table_items, "rate")
    assert counts
    assert ALICE not in repr(counts)
