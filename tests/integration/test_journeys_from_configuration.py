"""A new journey is a configuration change only: a file of journeys, no code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consent.domain.journeys import load_catalog
from consent.services import Services
from consent.settings import Settings
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

ALICE = "customer-alice"


def test_a_journey_declared_only_in_a_file_runs_end_to_end(
    tmp_path: Path, settings: Settings, store: Any, codat: Any, authorize: Any
) -> None:
    # Given a deployment whose journeys file adds "merchant_cash_advance" (commerce required, banking optional)
    journeys = tmp_path / "journeys.toml"
    journeys.write_text(
        '[journeys.merchant_cash_advance]\ntitle = "Merchant cash advance"\n'
        'required = ["commerce"]\noptional = ["banking"]\n'
    )
    configured = Settings.model_validate({**settings.model_dump(), "journeys_file": journeys})
    services = Services(configured, store=store, codat=codat, catalog=load_catalog(journeys))
    api = LocalApi(services)

    # When a customer starts it, connects the commerce platform and Codat links it
    company = api.post("/companies", customer=ALICE, json={"name": "Shop Ltd", "journey": "merchant_cash_advance"})
    assert company.status == 201, company.text
    company_id = company.body["companyId"]
    assert api.post("/companies", customer=ALICE, json={"name": "X", "journey": "onboarding"}).status == 422
    refused = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "mqjo"})
    assert refused.status == 409  # accounting is not part of this journey: a conflict with its journeys
    connection = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "aiwb"})
    assert connection.status == 201
    authorize(company_id, connection.body["connectionId"], via=services)

    # Then the journey reflects its own requirements
    progress = api.get(f"/companies/{company_id}", customer=ALICE).body["journeys"]
    assert [(p["journey"], [(r["sourceType"], r["required"]) for r in p["requirements"]]) for p in progress] == [
        ("merchant_cash_advance", [("commerce", True), ("banking", False)])
    ]
    assert progress[0]["status"] == "complete"
