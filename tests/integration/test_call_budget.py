"""The call budget: each route and each Codat webhook makes exactly the AWS and Codat calls that
`consent_dev.budget.BUDGET` allows — one more DynamoDB read or Codat request on any of them fails here.
The "Performance budget" table of docs/performance.md is generated from the same budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.services import Services
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev import budget
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.local_api import LocalApi
from consent_dev.template import routes

pytestmark = pytest.mark.integration

PERFORMANCE_DOC = Path(__file__).resolve().parents[2] / "docs" / "performance.md"


@pytest.fixture
def world(
    api: LocalApi,
    simulator: CodatSimulator,
    settings: Settings,
    store: DynamoDBConsentStore,
    codat_factory: Callable[..., CodatClient],
) -> budget.World:
    return budget.World(api, simulator, new_services=lambda: Services(settings, store=store, codat=codat_factory()))


@pytest.fixture
def counter(simulator: CodatSimulator, dynamodb: Any) -> budget.CallCounter:
    counter = budget.CallCounter(simulator)
    counter.watch(dynamodb)  # the store's client was made before counting began
    return counter


@pytest.mark.parametrize("case", budget.CASES, ids=lambda case: case.name)
def test_each_request_makes_exactly_its_budgeted_calls(
    case: budget.Case, world: budget.World, counter: budget.CallCounter
) -> None:
    # Given the state the case sets up through the API, when its one request is sent
    counted = budget.rehearse(case, world, counter)

    # Then it made exactly the AWS and Codat calls of the budget: no more, no fewer
    assert dict(counted.aws) == dict(case.budget.aws), "AWS calls"
    assert dict(counted.codat) == dict(case.budget.codat), "Codat calls"


def test_every_route_of_the_template_has_a_budget() -> None:
    budgeted = {name.split(" (")[0] for name in budget.BUDGET}
    missing = [
        route.route_key for route in routes() if route.path != budget.WEBHOOK_PATH and route.route_key not in budgeted
    ]
    assert missing == []


def test_the_performance_page_shows_the_budget_as_it_is() -> None:
    assert budget.markdown_table() in PERFORMANCE_DOC.read_text(encoding="utf-8"), (
        "docs/performance.md's 'Performance budget' table differs from consent_dev.budget: "
        "paste markdown_table()'s output"
    )
