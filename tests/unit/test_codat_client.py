"""The Codat client against the simulator: retries, budget, Retry-After, typed errors, tolerant models."""

from __future__ import annotations

from typing import Any

import pytest

from consent.codat.client import CodatClient, RequestBudget, codat_company_name
from consent.codat.errors import (
    CodatAuthFailed,
    CodatBadResponse,
    CodatBudgetExhausted,
    CodatNotFound,
    CodatRateLimited,
    CodatRejected,
    CodatTimeout,
    CodatUnavailable,
)
from consent.codat.models import CodatConnection
from consent_dev.codat_simulator import CodatSimulator, Fault

pytestmark = pytest.mark.unit

TAGS = {"consentCustomerRef": "alice", "consentRequestRef": "ref-1"}


def create(codat: CodatClient, key: str = "idem-1") -> Any:
    return codat.create_company(name="Acme", description=None, tags=TAGS, idempotency_key=key)


def test_creates_a_company_with_basic_auth_and_idempotency_key(codat: CodatClient, simulator: CodatSimulator) -> None:
    company = create(codat)
    [call] = simulator.calls("POST", "/companies")
    assert call.headers["authorization"].startswith("Basic ")
    assert call.headers["idempotency-key"] == "idem-1"
    assert company.id in simulator.companies
    assert company.tags == TAGS


def test_a_429_is_retried_after_retry_after(codat: CodatClient, simulator: CodatSimulator, clock: Any) -> None:
    simulator.inject(Fault(kind="status", status=429, retry_after=3, method="GET", times=2))
    create(codat)
    assert [c.id for c in codat.find_companies_by_tags({"consentRequestRef": "ref-1"})]
    assert clock.sleeps[:2]
    assert all(s >= 3 for s in clock.sleeps[:2])


def test_retry_after_beyond_the_budget_gives_up_at_once(
    simulator: CodatSimulator, clock: Any, codat_factory: Any
) -> None:
    codat = codat_factory(retry_budget=5.0)
    simulator.inject(Fault(kind="status", status=429, retry_after=60, times=None))
    with pytest.raises(CodatRateLimited) as raised:
        codat.get_company("3fa85f64-5717-4562-b3fc-2c963f66afa6")
    assert raised.value.retry_after == 60
    assert clock.sleeps == []
    assert len(simulator.calls()) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_persistent_5xx_exhausts_the_attempts_then_raises_unavailable(
    codat: CodatClient, simulator: CodatSimulator, clock: Any, status: int
) -> None:
    simulator.inject(Fault(kind="status", status=status, times=None))
    with pytest.raises(CodatUnavailable) as raised:
        codat.list_integrations()
    assert raised.value.status == status
    assert len(simulator.calls()) == 4
    assert len(clock.sleeps) == 3
    assert all(0 <= s <= 4 for s in clock.sleeps)


def test_the_budget_is_bounded_by_the_functions_remaining_time(
    simulator: CodatSimulator, clock: Any, codat_factory: Any
) -> None:
    codat = codat_factory(time_left=lambda: 2.6, max_attempts=8)
    simulator.inject(Fault(kind="status", status=503, times=None))
    with pytest.raises(CodatUnavailable):
        codat.list_integrations()
    assert sum(clock.sleeps) <= 0.6


def test_a_post_without_idempotency_key_is_not_repeated_after_a_5xx(
    simulator: CodatSimulator, codat_factory: Any
) -> None:
    codat = codat_factory()
    simulator.inject(Fault(kind="status", status=500, times=None))
    with pytest.raises(CodatUnavailable):
        codat._call("POST", "/companies", None, json={"name": "Acme"})
    assert len(simulator.calls()) == 1


def test_a_lost_response_to_a_keyed_post_is_retried_and_codat_replays_it(
    codat: CodatClient, simulator: CodatSimulator
) -> None:
    simulator.inject(Fault(kind="lose_response", method="POST", times=1))
    company = create(codat)
    assert len(simulator.calls("POST", "/companies")) == 2
    assert list(simulator.companies) == [company.id]


def test_a_dropped_connection_is_retried(codat: CodatClient, simulator: CodatSimulator) -> None:
    simulator.inject(Fault(kind="drop", times=2))
    assert codat.list_integrations()
    assert len(simulator.calls()) >= 1


def test_timeouts_beyond_the_budget_raise_codat_timeout_marked_maybe_applied(
    codat: CodatClient, simulator: CodatSimulator
) -> None:
    simulator.inject(Fault(kind="lose_response", method="POST", times=None))
    with pytest.raises(CodatTimeout) as raised:
        create(codat)
    assert raised.value.maybe_applied


def test_slow_answers_beyond_the_read_timeout_time_out(
    simulator: CodatSimulator, clock: Any, codat_factory: Any
) -> None:
    codat = codat_factory(read_timeout=0.05, max_attempts=2)
    simulator.inject(Fault(kind="slow", delay=1.0, times=None))
    with pytest.raises(CodatTimeout):
        codat.list_integrations()


@pytest.mark.parametrize(("status", "error"), [(401, CodatAuthFailed), (403, CodatAuthFailed), (400, CodatRejected)])
def test_client_errors_are_typed_and_not_retried(
    codat: CodatClient, simulator: CodatSimulator, status: int, error: type[Exception]
) -> None:
    simulator.inject(Fault(kind="status", status=status, times=None))
    with pytest.raises(error) as raised:
        create(codat)
    assert raised.value.correlation_id  # type: ignore[attr-defined]
    assert len(simulator.calls()) == 1


def test_a_wrong_api_key_is_auth_failed(simulator: CodatSimulator, clock: Any, codat_factory: Any) -> None:
    codat = codat_factory(api_key=lambda: "d3Jvbmc=")
    with pytest.raises(CodatAuthFailed):
        codat.list_integrations()


def test_unknown_company_is_not_found(codat: CodatClient) -> None:
    with pytest.raises(CodatNotFound):
        codat.get_company("3fa85f64-5717-4562-b3fc-2c963f66afa6")


def test_a_malformed_body_is_retried_for_reads_then_reported(codat: CodatClient, simulator: CodatSimulator) -> None:
    simulator.inject(Fault(kind="malformed", times=None))
    with pytest.raises(CodatBadResponse):
        codat.list_integrations()
    assert len(simulator.calls()) == 4


def test_an_unreadable_success_to_a_post_is_marked_maybe_applied(codat: CodatClient, simulator: CodatSimulator) -> None:
    # A 2xx means Codat did it, whatever became of the body: a caller must look for it before doing it again.
    simulator.inject(Fault(kind="malformed", perform=True, method="POST", times=None))
    with pytest.raises(CodatBadResponse) as raised:
        create(codat)
    assert raised.value.maybe_applied
    assert len(simulator.companies) == 1


def test_integrations_follow_every_page(codat: CodatClient, simulator: CodatSimulator) -> None:
    for n in range(600):
        simulator.add_integration(key=_key(n), name=f"Bank {n}", source_type="Banking")
    banking = codat.list_integrations("Banking")
    assert len(banking) == len({i.key for i in banking})
    assert len(banking) >= 600
    assert all(i.enabled for i in banking)
    assert len(simulator.calls("GET", "/integrations")) == 2


def _key(n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "x" + letters[n // 676 % 26] + letters[n // 26 % 26] + letters[n % 26]


@pytest.mark.parametrize(
    "stamp",
    ["2022-10-27T10:22:43Z", "2022-10-27T10:22:43.6Z", "2022-10-27T10:22:43.6464237Z", "2022-10-27T10:22:43"],
)
def test_models_read_zero_to_seven_fractional_digits(stamp: str) -> None:
    connection = CodatConnection.model_validate(
        {
            "id": "c",
            "integrationId": "i",
            "sourceId": "s",
            "platformName": "Xero",
            "linkUrl": "https://link",
            "status": "Linked",
            "sourceType": "Accounting",
            "created": stamp,
            "newFieldFromCodat": True,
        }
    )
    assert connection.created.tzinfo is not None
    assert connection.created.year == 2022


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("Acme Bakery Ltd", "Acme Bakery Ltd"),
        ("Müller & Söhne GmbH", "Muller & Sohne GmbH"),
        ("株式会社", "Company"),
        ("Tabs\tand  spaces", "Tabs and spaces"),
        ("A/B (UK) #1", "AB UK 1"),
    ],
)
def test_company_names_are_cleaned_to_codats_alphabet(given: str, sent: str) -> None:
    assert codat_company_name(given) == sent


# -- deleting a connection, and request budgets (reconciliation) ------------------------------------------


def test_deletes_a_connection_in_codat(codat: CodatClient, simulator: CodatSimulator) -> None:
    company = create(codat)
    connection = codat.create_connection(company.id, platform_key="qhnd", idempotency_key="conn-1")

    codat.delete_connection(company.id, connection.id)

    assert simulator.companies[company.id].connections == {}
    with pytest.raises(CodatNotFound):
        codat.delete_connection(company.id, connection.id)


def test_a_budgeted_client_sends_no_more_requests_than_its_budget_retries_included(
    codat: CodatClient, simulator: CodatSimulator
) -> None:
    company = create(codat)
    budget = RequestBudget(3)
    budgeted = codat.with_budget(budget)
    simulator.inject(Fault(kind="status", status=503, method="GET", times=None))
    start = len(simulator.calls())

    with pytest.raises(CodatUnavailable):
        budgeted.list_connections(company.id)  # would take 4 attempts unbudgeted
    with pytest.raises(CodatBudgetExhausted):
        budgeted.get_company(company.id)

    assert len(simulator.calls()) - start == 3
    assert (budget.used, budget.remaining) == (3, 0)
    # the client it came from is not limited
    simulator.clear_faults()
    assert codat.get_company(company.id).id == company.id


# -- webhook consumers (`make codat-webhooks`, reconciliation's health check) -----------------------------

WEBHOOK_URL = "https://a1b2c3d4e5.execute-api.eu-west-2.amazonaws.com/webhooks/codat"


def test_creates_lists_and_deletes_webhook_consumers(codat: CodatClient, simulator: CodatSimulator) -> None:
    other = simulator.add_webhook_consumer("https://elsewhere.example/hook", ["read.completed"], disabled=True)

    created = codat.create_webhook_consumer(
        url=WEBHOOK_URL, event_types=["connection.connected", "read.completed"], idempotency_key="consumer-1"
    )
    listed = codat.list_webhook_consumers()
    codat.delete_webhook_consumer(created.id)

    assert [(c.id, c.url, c.event_types, c.disabled) for c in listed] == [
        (other.id, other.url, ("read.completed",), True),
        (created.id, WEBHOOK_URL, ("connection.connected", "read.completed"), False),
    ]
    [post] = simulator.calls("POST", "/webhooks")
    assert post.json == {"url": WEBHOOK_URL, "eventTypes": ["connection.connected", "read.completed"]}
    assert post.headers["idempotency-key"] == "consumer-1"
    assert [c.id for c in simulator.webhook_consumers] == [other.id]
    with pytest.raises(CodatNotFound):
        codat.delete_webhook_consumer(created.id)


def test_a_create_whose_answer_failed_is_retried_with_its_key_and_makes_one_consumer(
    codat: CodatClient, simulator: CodatSimulator
) -> None:
    # Codat made the consumer, and its answer was lost on the way
    simulator.inject(Fault(kind="lose_response", method="POST", path="^/webhooks$"))

    created = codat.create_webhook_consumer(url=WEBHOOK_URL, event_types=["read.completed"], idempotency_key="k-9")

    assert len(simulator.calls("POST", "/webhooks")) == 2
    assert [c.id for c in simulator.webhook_consumers] == [created.id]


def test_webhook_consumers_with_nulls_where_codats_spec_allows_them_are_read(
    codat: CodatClient, simulator: CodatSimulator
) -> None:
    body = (
        b'{"results": [{"id": "8a210b68-6988-11ed-a1eb-0242ac120002", "url": "https://x.example/h",'
        b' "eventTypes": null, "disabled": null, "companyTags": null, "surprise": 1}]}'
    )
    simulator.inject(Fault(kind="malformed", status=200, body=body, method="GET", path="^/webhooks$"))

    [consumer] = codat.list_webhook_consumers()

    assert (consumer.event_types, consumer.disabled, consumer.company_tags) == ((), False, ())
