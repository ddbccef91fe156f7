"""A customer never reaches another customer's company or connection: every route that takes an id
answers 404 for someone else's id exactly as for an id that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consent_dev.codat_simulator import CodatSimulator
from consent_dev.local_api import LocalApi
from consent_dev.template import routes

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
BOB = "customer-bob"
UNKNOWN = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
# A body each route would accept from its owner.
BODIES: dict[str, Any] = {
    "POST /companies/{companyId}/journeys": {"journey": "onboarding"},
    "POST /companies/{companyId}/connections": {"platformKey": "qhnd"},
    "POST /companies/{companyId}/sdk-sessions": {"component": "link", "consentVersion": "2026-01"},
}
ID_ROUTES = [r for r in routes() if "{companyId}" in r.path]


def test_every_route_with_an_id_is_covered() -> None:
    assert {r.route_key for r in ID_ROUTES} >= {
        "GET /companies/{companyId}",
        "POST /companies/{companyId}/journeys",
        "POST /companies/{companyId}/connections",
        "GET /companies/{companyId}/access-token",
        "GET /companies/{companyId}/connections",
        "GET /companies/{companyId}/events",
        "DELETE /companies/{companyId}/connections/{connectionId}",
        "DELETE /companies/{companyId}",
    }


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda r: r.route_key)
@pytest.mark.parametrize("whose", ["another customer's", "unknown"])
def test_someone_elses_or_an_unknown_id_is_404_and_touches_nothing(
    api: LocalApi,
    simulator: CodatSimulator,
    new_company: Callable[..., Any],
    table_items: Any,
    route: Any,
    whose: str,
) -> None:
    company_id = new_company(customer=ALICE)["companyId"]
    connection_id = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"}).body[
        "connectionId"
    ]
    if whose == "unknown":
        company_id, connection_id = UNKNOWN, UNKNOWN
    items_before = table_items()
    codat_calls_before = len(simulator.requests)

    path = route.path.replace("{companyId}", company_id).replace("{connectionId}", connection_id)
    response = api.request(route.method, path, customer=BOB, json=BODIES.get(route.route_key))

    assert response.status == 404, response.text
    assert response.body["code"] == "not_found"
    assert len(simulator.requests) == codat_calls_before
    assert table_items() == items_before


@pytest.mark.parametrize("route", [r for r in ID_ROUTES if "{connectionId}" in r.path], ids=lambda r: r.route_key)
def test_an_unknown_connection_of_ones_own_company_is_404(
    api: LocalApi, new_company: Callable[..., Any], route: Any
) -> None:
    company_id = new_company(customer=ALICE)["companyId"]
    response = api.request(
        route.method, route.path.replace("{companyId}", company_id).replace("{connectionId}", UNKNOWN), customer=ALICE
    )
    assert response.status == 404
