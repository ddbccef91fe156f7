"""Calls per request (AWS by operation, Codat by endpoint) against the budget, and the Codat requests of one
whole consent journey beside the same journey done the way Codat's own sample does it (polling Codat)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from consent.services import Services
from consent.settings import Settings
from consent_dev import budget
from consent_dev.codat_webhooks import read_event
from consent_dev.local_api import LocalApi
from consent_dev.template import function_environment, functions

from common import Stack, Table

# The first request of a new container: each function's representative request, on services built from
# the environment template.yaml gives that function (secrets read from Secrets Manager, nothing cached).
CONTAINER_START = {
    "CreateCompanyFunction": "POST /companies",
    "ConsentStatusFunction": "GET /companies/{companyId}",
    "CreateConnectionFunction": "POST /companies/{companyId}/connections",
    "RevokeFunction": "DELETE /companies/{companyId}/connections/{connectionId}",
    "WebhookHandlerFunction": "webhook connection.connected",
}

LINKING_SECONDS = 180  # the customer takes 3 minutes on Codat's link page
POLL_SECONDS = 5  # the app checks every 5 s


def _calls(counted: Counter[str]) -> str:
    return ", ".join(f"{n} {op.removeprefix('dynamodb.')}" for op, n in sorted(counted.items())) or "none"


def per_request(stack: Stack) -> tuple[Table, dict[str, Any]]:
    table = Table(
        "Calls per request (one request, warm container, real I/O) vs the budget (consent_dev.budget)",
        ["request", "AWS calls", "Codat calls", "budget"],
    )
    results: dict[str, Any] = {}
    counter = stack.counter()
    cases = {case.name: case for case in budget.CASES}
    with counter.watching_new_clients():
        world, _ = stack.world()
        for case in budget.CASES:
            counted = budget.rehearse(case, world, counter)
            met = counted.matches(case.budget)
            results[case.name] = {"aws": dict(counted.aws), "codat": dict(counted.codat), "within_budget": met}
            table.add(case.name, _calls(counted.aws), _calls(counted.codat), "met" if met else "EXCEEDED")
        for function_id, case_name in CONTAINER_START.items():
            counted = _first_in_container(stack, world, counter, function_id, cases[case_name])
            extra_aws = counted.aws - Counter(cases[case_name].budget.aws)
            extra_codat = counted.codat - Counter(cases[case_name].budget.codat)
            name = f"{case_name} (first in a new container)"
            results[name] = {"aws": dict(counted.aws), "codat": dict(counted.codat)}
            table.add(name, "+ " + _calls(extra_aws), "+ " + _calls(extra_codat), "(start-up)")
    misses = [name for name, result in results.items() if result.get("within_budget") is False]
    table.notes.append(
        f"{len(budget.CASES) - len(misses)}/{len(budget.CASES)} requests exactly within budget"
        + (f"; over: {', '.join(misses)}" if misses else "")
    )
    table.notes.append("AWS calls are DynamoDB's unless named; first-in-container rows show what comes on top")
    return table, results


def _first_in_container(
    stack: Stack, world: budget.World, counter: budget.CallCounter, function_id: str, case: budget.Case
) -> budget.Counted:
    [function] = [f for f in functions() if f.logical_id == function_id]
    settings = Settings.from_environment(function_environment(function, stack.refs()))
    request = case.prepare(world)()
    api = LocalApi(Services(settings))
    with counter.measure() as counted:
        response = request.send(api)
    assert response.status == case.status, response.text
    return counted


def journey(stack: Stack) -> tuple[Table, dict[str, Any]]:
    """One onboarding journey (banking required), sign-up to `complete`, counted, with no real waiting."""
    polls = LINKING_SECONDS // POLL_SECONDS
    counter = stack.counter()
    world, _ = stack.world()
    customer = world.customer
    with counter.watching_new_clients(), counter.measure() as ours:
        company_id = world.company("onboarding")
        assert world.api.get("/integrations", customer=customer, query={"sourceType": "banking"}).status == 200
        connection_id = world.connection(company_id, "qhnd")
        created = world.connection_webhook("connection.created", company_id, connection_id, "PendingAuth")
        _deliver(world, created)
        for tick in range(polls):
            if tick == polls - 1:  # the customer authorizes at the end of the 3 minutes
                stack.simulator.set_connection_status(company_id, connection_id, "Linked")
                _deliver(world, world.connection_webhook("connection.connected", company_id, connection_id, "Linked"))
            assert world.api.get(f"/companies/{company_id}", customer=customer).status == 200
        _deliver(world, read_event(company_id=company_id, connection_ids=[connection_id], initial=True))
        final = world.api.get(f"/companies/{company_id}", customer=customer)
    assert final.body["journeys"][0]["status"] == "complete", final.text

    # Codat's sample: the app's backend talks to Codat directly and polls its connection list.
    codat = httpx.Client(base_url=stack.codat_server.url, headers={"Authorization": stack.simulator.authorization})
    with counter.measure() as sample:
        company = codat.post("/companies", json={"name": "Acme Bakery Ltd"}).json()
        codat.get("/integrations", params={"page": 1, "pageSize": 100, "query": "sourceType=Banking"})
        connection = codat.post(f"/companies/{company['id']}/connections", json={"platformKey": "qhnd"}).json()
        for tick in range(polls + 1):
            if tick == polls - 1:
                stack.simulator.set_connection_status(company["id"], connection["id"], "Linked")
            codat.get(f"/companies/{company['id']}/connections", params={"page": 1, "pageSize": 100})
    codat.close()

    ours_total, sample_total = sum(ours.codat.values()), sum(sample.codat.values())
    table = Table(
        f"Codat requests for one journey (sign-up to complete; status checked every {POLL_SECONDS} s "
        f"during a {LINKING_SECONDS // 60}-minute linking)",
        ["journey", "Codat requests", "per 1,000 journeys", "app → our API", "DynamoDB calls", "Codat calls"],
    )
    table.add(
        "ours (webhooks; status from DynamoDB)",
        ours_total,
        ours_total * 1000,
        polls + 4,
        sum(ours.aws.values()),
        _calls(ours.codat),
    )
    table.add("Codat's sample (polls Codat)", sample_total, sample_total * 1000, "-", 0, _calls(sample.codat))
    table.notes.append(
        "ours: a new container (integration list fetched once; within 5 minutes of another request it is 0)"
    )
    table.notes.append(
        "the sample's count is a floor: knowing the first read finished takes more polling (e.g. dataStatus)"
    )
    results = {
        "polls": polls,
        "ours": {"codat": dict(ours.codat), "aws": dict(ours.aws), "codat_total": ours_total},
        "codat_sample": {"codat": dict(sample.codat), "codat_total": sample_total},
        "ratio": round(sample_total / ours_total, 1),
    }
    return table, results


def _deliver(world: budget.World, body: dict[str, Any]) -> None:
    response = world.webhook(body).send(world.api)
    assert response.status == 204, response.text
