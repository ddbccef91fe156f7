"""No secret and no personal data in the logs: the whole journey through the API and the webhook route, with
every log line captured (Powertools' JSON on stdout at DEBUG, and stdlib logging), searched for each planted
value, raw and in the encodings it travels in (base64 for Basic auth and secrets, JSON escapes)."""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from consent.observability import logger
from consent.services import Services
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import DEV_WEBHOOK_SECRET, connection_event, envelope, read_event, reference_company
from consent_dev.codat_webhooks import signed as signed_webhook
from consent_dev.lambda_runtime import LambdaContext, load_handler, load_module
from consent_dev.local_api import ApiResponse, LocalApi
from consent_dev.streams import StreamPump
from consent_dev.template import functions

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
RECONCILE = next(f for f in functions() if f.logical_id == "ReconcileFunction")
NAME = "Zebrafish Lantern Holdings"
DESCRIPTION = "Wholesale of planted lanterns 7Q2X"
EXTERNAL_REF = "crm-planted-4471-XK"
# A made-up JWT, for the check of the check (the journey plants the customer's real token).
BEARER = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjdXN0b21lci1hbGljZSJ9.c2lnbmF0dXJlLXBsYW50ZWQtOTk"


class Logs:
    """Everything logged during the test: Powertools' lines (pointed at the captured stdout), any other
    output on file descriptors 1 and 2, and every stdlib log record (formatted, with its arguments)."""

    def __init__(self, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
        self._capfd = capfd
        self._caplog = caplog
        self._seen: list[str] = []

    def text(self) -> str:
        out, err = self._capfd.readouterr()
        self._seen.extend([out, err])
        records = [
            f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''} {json.dumps(r.__dict__, default=str)}"
            for r in self._caplog.records
        ]
        return "\n".join([*self._seen, *records])


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Logs]:
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    # Powertools' handler holds the stdout of import time; for this test it writes where capfd reads.
    # (assigned, not setStream(): that would flush the old stream, which an earlier capture may have closed)
    original_stream, handler.stream = handler.stream, sys.stdout
    original_level = logger.log_level
    logger.setLevel("DEBUG")  # the most a deployment can ask for (the template's LogLevel parameter)
    caplog.set_level(logging.DEBUG)
    try:
        yield Logs(capfd, caplog)
    finally:
        logger.setLevel(original_level)
        handler.stream = original_stream


@pytest.fixture
def event_logging_switched_on() -> Iterator[None]:
    """As an operator debugging might: Powertools' event logging on (events carry bearer tokens and bodies).
    The handlers read it when they are imported, so they are imported afresh, and again afterwards."""
    previous = os.environ.get("POWERTOOLS_LOGGER_LOG_EVENT")
    os.environ["POWERTOOLS_LOGGER_LOG_EVENT"] = "true"
    load_module.cache_clear()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["POWERTOOLS_LOGGER_LOG_EVENT"]
        else:
            os.environ["POWERTOOLS_LOGGER_LOG_EVENT"] = previous
        load_module.cache_clear()


def variants(value: str) -> set[str]:
    """The value as it could appear in a log line."""
    return {value, json.dumps(value)[1:-1], base64.b64encode(value.encode()).decode()}


def leaked(text: str, planted: dict[str, str]) -> list[str]:
    return sorted({name for name, value in planted.items() for form in variants(value) if form in text})


def test_the_whole_journey_logs_no_secret_and_no_personal_data(
    api: LocalApi,
    simulator: CodatSimulator,
    services: Services,
    outbox: StreamPump,
    logs: Logs,
    event_logging_switched_on: None,
) -> None:
    secret_key_b64 = DEV_WEBHOOK_SECRET.removeprefix("whsec_")
    api_key = simulator.api_key  # the Codat API key the product is configured with (the simulator checks it)
    planted: dict[str, str] = {
        "codat api key": api_key,
        "codat basic credential": base64.b64encode(api_key.encode()).decode(),
        "webhook secret": DEV_WEBHOOK_SECRET,
        "webhook key (base64)": secret_key_b64,
        "webhook key": base64.b64decode(secret_key_b64).decode(),
        # What API Gateway passes on in the event's headers: the customer's bearer token.
        "bearer token": f"Bearer {api.token(ALICE)}",
        "bearer jwt": api.token(ALICE),
        "company name": NAME,
        "description": DESCRIPTION,
        "external reference": EXTERNAL_REF,
    }

    def call(method: str, path: str, **kwargs: Any) -> ApiResponse:
        return api.request(method, path, customer=ALICE, **kwargs)

    def deliver(body: dict[str, Any] | bytes, *, break_signature: bool = False) -> ApiResponse:
        raw, headers = signed_webhook(body)
        if break_signature:
            headers["webhook-signature"] = headers["webhook-signature"][:-6] + "AAAAA="
        planted[f"webhook signature {len(planted)}"] = headers["webhook-signature"].removeprefix("v1,")
        return api.post("/webhooks/codat", body=raw, headers=headers)

    # Given the customer's whole journey, through the API and Codat's webhooks (failures included), and a
    # reconciliation run
    created = call(
        "POST",
        "/companies",
        json={"name": NAME, "journey": "onboarding", "description": DESCRIPTION, "externalRef": EXTERNAL_REF},
        headers={"Idempotency-Key": "log-hygiene-1"},
    )
    assert created.status == 201, created.text
    company_id = created.body["companyId"]
    too_long = call(
        "POST", "/companies", json={"name": NAME * 10, "journey": "onboarding", "externalRef": EXTERNAL_REF}
    )
    assert too_long.status == 422, too_long.text
    unknown_field = call("POST", "/companies", json={"name": NAME, "journey": "onboarding", "secret": DESCRIPTION})
    assert unknown_field.status == 422
    connection = call("POST", f"/companies/{company_id}/connections", json={"platformKey": "qhnd"})
    assert connection.status == 201, connection.text
    connection_id = connection.body["connectionId"]
    token = call("GET", f"/companies/{company_id}/access-token")
    assert token.status == 200
    planted["access token"] = token.body["accessToken"]

    reference = reference_company(company_id, name=NAME, description=DESCRIPTION)
    ids = {"company_id": company_id, "connection_id": connection_id}
    simulator.set_connection_status(company_id, connection_id, "Linked")
    assert deliver(connection_event("connection.connected", status="Linked", reference=reference, **ids)).status == 204
    read = read_event(company_id=company_id, connection_ids=[connection_id], initial=True, reference=reference)
    assert deliver(read).status == 204
    forged = connection_event("connection.disconnected", status="Unlinked", reference=reference, **ids)
    assert deliver(forged, break_signature=True).status == 401
    parked = envelope("company.product.added", {"referenceCompany": reference, "productName": NAME})
    assert deliver(parked).status == 204
    assert deliver(b'{"not": "' + NAME.encode() + b'"').status == 400

    assert call("GET", f"/companies/{company_id}").status == 200
    assert call("GET", f"/companies/{company_id}/events").status == 200
    assert call("GET", "/companies", query={"cursor": base64.b64encode(NAME.encode()).decode()}).status == 422
    assert call("DELETE", f"/companies/{company_id}/connections/{connection_id}").status == 200
    simulator.set_connection_status(company_id, connection_id, "Deauthorized")  # for reconciliation to heal
    # (which also checks Codat's webhook consumer for our webhook URL: Codat has none)
    webhook_url = "https://a1b2c3d4e5.execute-api.eu-west-2.amazonaws.com/webhooks/codat"
    reconciling = Services(
        services.settings.model_copy(update={"webhook_url": webhook_url}), store=services.store, codat=services.codat
    )
    report = load_handler(RECONCILE.code_uri, RECONCILE.handler)(
        {}, LambdaContext(RECONCILE.logical_id), services=reconciling
    )
    assert report["companies_healed"] == 1
    assert report["webhook_consumer"] == "missing"
    outbox.drain()
    assert call("DELETE", f"/companies/{company_id}").status == 204

    # The planted values did reach the product (so their absence from the logs means something)
    codat_bodies = b"".join(c.body for c in simulator.calls())
    assert NAME.encode() in codat_bodies
    assert DESCRIPTION.encode() in codat_bodies
    assert all(c.headers["authorization"] == "Basic " + planted["codat basic credential"] for c in simulator.calls())
    assert created.body["externalRef"] == EXTERNAL_REF
    assert sum(name.startswith("webhook signature") for name in planted) == 5

    # Then no log line holds any of them
    text = logs.text()
    assert "webhook received" in text  # the capture does see the product's logs
    assert "webhook consumer unhealthy" in text
    found = {
        name: [line[:200] for line in text.splitlines() if any(v in line for v in variants(planted[name]))][:2]
        for name in leaked(text, planted)
    }
    assert found == {}


def test_the_capture_would_catch_a_leak(logs: Logs) -> None:
    # A check of the check: a value logged through each channel is found.
    logger.info("leak", extra={"detail": NAME})
    logging.getLogger("httpx").warning("Authorization: %s", BEARER)
    print(DESCRIPTION)
    assert leaked(logs.text(), {"name": NAME, "bearer": BEARER, "description": DESCRIPTION}) == [
        "bearer",
        "description",
        "name",
    ]
