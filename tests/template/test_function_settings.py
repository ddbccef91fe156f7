"""Every setting the package reads is set for every function that reads it: each function runs its routes
with only the environment the template gives it, wired by the package's own defaults (boto3 to moto,
Secrets Manager for the Codat key, Codat over real HTTP to the simulator)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from consent.services import Services
from consent.settings import Settings
from consent.store import Change
from consent_dev.aws import Deployed, MotoServer, deploy
from consent_dev.codat_simulator import CodatSimulator, serve
from consent_dev.gateway import http_event, jwt_claims
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.template import function_environment, functions, parameter_defaults

pytestmark = pytest.mark.template

SIM_KEY = "settings-test-key"


@pytest.fixture
def codat_url() -> Iterator[str]:
    server = serve(CodatSimulator(api_key=SIM_KEY), "127.0.0.1", 0)
    try:
        yield server.url
    finally:
        server.shutdown()


@pytest.fixture
def refs(moto_server: MotoServer, codat_url: str) -> dict[str, Any]:
    deployed: Deployed = deploy(moto_server.endpoint, secret_values={"CodatApiKeySecret": SIM_KEY})
    return {**parameter_defaults(), "CodatBaseUrl": codat_url, **deployed.refs()}


# A request each route should accept, and its success status.
SAMPLE_REQUESTS: dict[str, tuple[dict[str, Any] | None, int]] = {
    "POST /companies": ({"name": "Acme", "journey": "onboarding"}, 201),
    "POST /companies/{companyId}/journeys": ({"journey": "loan_application"}, 200),
    "GET /companies": (None, 200),
    "GET /companies/{companyId}": (None, 200),
}


def test_each_function_runs_its_routes_on_the_environment_the_template_gives_it(
    refs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    company_id = None
    by_route = {route.route_key: (function, route) for function in functions() for route in function.routes}
    order = ["POST /companies", "POST /companies/{companyId}/journeys", "GET /companies", "GET /companies/{companyId}"]
    assert set(order) <= set(by_route)
    for key in order:
        function, route = by_route[key]
        _use_environment(monkeypatch, function_environment(function, refs))
        services = Services(Settings.from_environment())
        body, expected = SAMPLE_REQUESTS[key]
        path = route.path.replace("{companyId}", company_id or "none")
        event = http_event(
            route,
            path,
            path_parameters={"companyId": company_id} if "{companyId}" in route.path else None,
            headers={"content-type": "application/json"},
            body=None if body is None else json.dumps(body),
            claims=jwt_claims("settings-customer"),
        )
        handler = load_handler(function.code_uri, function.handler)
        result = handler(event, LambdaContext(function.logical_id), services=services)
        assert result["statusCode"] == expected, (key, result["body"])
        if key == "POST /companies":
            company_id = json.loads(result["body"])["companyId"]


def test_reconciliation_runs_on_the_environment_the_template_gives_it(
    refs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a company created by the company step, made before the keyed customer reference (so reconciliation
    # re-tags it, which needs the reference key too)
    functions_by_id = {f.logical_id: f for f in functions()}
    company_step = functions_by_id["CreateCompanyFunction"]
    _use_environment(monkeypatch, function_environment(company_step, refs))
    services = Services(Settings.from_environment())
    [route] = [r for r in company_step.routes if r.route_key == "POST /companies"]
    event = http_event(
        route,
        route.path,
        headers={"content-type": "application/json"},
        body=json.dumps({"name": "Acme", "journey": "onboarding"}),
        claims=jwt_claims("settings-customer"),
    )
    created = load_handler(company_step.code_uri, company_step.handler)(
        event, LambdaContext(company_step.logical_id), services=services
    )
    assert created["statusCode"] == 201, created["body"]
    company_id = json.loads(created["body"])["companyId"]
    view = services.store.get_company_by_id(company_id)
    assert view is not None
    services.store.commit(Change(company=view.company.model_copy(update={"customer_ref_keyed": False})))

    # When the reconcile function runs with only what the template gives it
    reconcile = functions_by_id["ReconcileFunction"]
    _use_environment(monkeypatch, function_environment(reconcile, refs))
    handler = load_handler(reconcile.code_uri, reconcile.handler)
    report = handler({}, LambdaContext(reconcile.logical_id), services=Services(Settings.from_environment()))

    # Then it checked the company (Codat over HTTP with the key from Secrets Manager) and re-tagged it
    assert report["companies_checked"] >= 1, report
    # and Codat's webhook consumer for the stack's webhook URL (none in this Codat)
    assert report["webhook_consumer"] == "missing", report
    refreshed = services.store.get_company_by_id(company_id)
    assert refreshed is not None
    assert refreshed.company.customer_ref_keyed


def _use_environment(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    for name in list(os.environ):
        if name in environment or name.startswith(("CODAT_", "CONSENT_", "CUSTOMER_REF_")):
            monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
