"""A bank ships its own journeys: a file beside the package (shared/consent/<name>.toml, which the layer carries)
named by the JourneysFile parameter as the functions see it (/opt/python/consent/<name>.toml). The stack runs on
it as deployed: the catalogue, the document and the routes all offer the bank's journeys, and only those."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from consent_dev.devserver import DevStack
from consent_dev.jwt_auth import LocalIssuer
from consent_dev.template import REPO_ROOT

pytestmark = pytest.mark.e2e

ISSUER = LocalIssuer(url="https://issuer.consent.test")
ALICE = {"Authorization": f"Bearer {ISSUER.token('customer-alice')}"}
BANK_JOURNEYS = """
[journeys.merchant_cash_advance]
title = "Merchant cash advance"
description = "An advance on your card takings: connect your online shop and your bank."
required = ["commerce", "banking"]
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    name = f"bank-journeys-{uuid.uuid4().hex[:8]}"
    shipped = REPO_ROOT / "shared" / "consent" / f"{name}.toml"  # where the bank keeps it, beside the package
    shipped.write_text(BANK_JOURNEYS, encoding="utf-8")
    try:
        parameters = {"JourneysFile": f"/opt/python/consent/{name}.toml"}
        with DevStack(port=0, codat_port=0, environ={}, issuer=ISSUER, parameters=parameters) as running:
            yield running
    finally:
        shipped.unlink()


def test_the_stack_offers_the_banks_own_journeys_and_only_those(stack: DevStack) -> None:
    with httpx.Client(base_url=stack.api_url, headers=ALICE, timeout=10.0) as http:
        catalogue = http.get("/journeys").json()["items"]
        assert [(j["name"], j["title"], j["required"]) for j in catalogue] == [
            ("merchant_cash_advance", "Merchant cash advance", ["commerce", "banking"])
        ]
        document = http.get("/openapi.json").json()
        journey = document["components"]["schemas"]["CreateCompanyRequest"]["properties"]["journey"]
        assert journey["enum"] == ["merchant_cash_advance"]
        created = http.post("/companies", json={"name": "Shop Ltd", "journey": "merchant_cash_advance"})
        assert created.status_code == 201, created.text
        assert http.post("/companies", json={"name": "X", "journey": "onboarding"}).status_code == 422
