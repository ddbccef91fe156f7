"""`make dev` end to end: the stack it starts, driven over HTTP only — a customer's consent journey from sign-up
to erasure through the simulator's link page and webhooks, the local authorizer, the API document, and the
command itself (ready within the README's promise, stopped cleanly by a signal)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from openapi_spec_validator import validate

from consent.contract import schema_file_name
from consent.events import ConsentEventType
from consent.usecases.webhooks import HANDLED_EVENT_TYPES
from consent_dev.codat_simulator import CodatSimulator, serve
from consent_dev.contracts import ASYNCAPI_FILE, validate_message
from consent_dev.devserver import DevStack, DevStackError
from consent_dev.gateway import lambda_response
from consent_dev.jwt_auth import LocalIssuer
from consent_dev.subscriber import EventsQueue
from consent_dev.template import REPO_ROOT, routes

pytestmark = pytest.mark.e2e

# The bank's identity provider, locally: the stack verifies its tokens as API Gateway's JWT authorizer would.
ISSUER = LocalIssuer(url="https://issuer.consent.test")
ALICE = {"Authorization": f"Bearer {ISSUER.token('customer-alice')}"}
BOB = {"Authorization": f"Bearer {ISSUER.token('customer-bob')}"}
STARTUP_PROMISE_SECONDS = 30.0  # what the README promises for `make dev`
WEBHOOK_WAIT_SECONDS = 20.0  # link page → webhooks → journey state; the simulator's first read takes ~2 s
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    # environ={}: the simulator, whatever CODAT_* a developer's shell has.
    with DevStack(port=0, codat_port=0, environ={}, issuer=ISSUER) as running:
        yield running


@pytest.fixture
def http(stack: DevStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=10.0) as client:
        yield client


class PublishedEvents:
    """What a bank's system subscribed to the topic receives, step by step."""

    def __init__(self, queue: EventsQueue) -> None:
        self._queue = queue
        self.all: list[dict[str, Any]] = []
        self.with_attributes: list[tuple[dict[str, Any], dict[str, str]]] = []
        self._seen = 0

    def expect(self, *types: str, timeout: float = WEBHOOK_WAIT_SECONDS) -> list[dict[str, Any]]:
        """Wait until the events received since the last call include `types` in this order; return them."""
        deadline = time.monotonic() + timeout
        while True:
            for received in self._queue.receive():
                self.all.append(received.event)
                self.with_attributes.append((received.event, received.attributes))
            step = self.all[self._seen :]
            if is_subsequence(list(types), [event["type"] for event in step]):
                self._seen = len(self.all)
                return step
            if time.monotonic() > deadline:
                pytest.fail(f"expected {types} in order; received {[event['type'] for event in step]}")
            time.sleep(0.1)


def is_subsequence(expected: list[str], actual: list[str]) -> bool:
    remaining = iter(actual)
    return all(any(item == candidate for candidate in remaining) for item in expected)


def wait_for_journey(http: httpx.Client, company_id: str, status: str) -> dict[str, Any]:
    """Poll GET /companies/{id} (bounded) until its journey has `status`, as the bank's app would."""
    deadline = time.monotonic() + WEBHOOK_WAIT_SECONDS
    while True:
        company: dict[str, Any] = http.get(f"/companies/{company_id}", headers=ALICE).json()
        if company["journeys"][0]["status"] == status:
            return company
        if time.monotonic() > deadline:
            pytest.fail(f"journey still {company['journeys'][0]['status']!r}, not {status!r}: {company}")
        time.sleep(0.1)


def authorize_on_link_page(link_url: str) -> None:
    """What the customer does in the browser: open Codat's link page and press Authorize."""
    with httpx.Client(timeout=10.0) as browser:
        page = browser.get(link_url)
        assert page.status_code == 200, page.text
        assert "Authorize" in page.text
        answer = browser.post(link_url, data={"action": "authorize"})
        assert answer.status_code in (200, 302, 303), answer.text


def test_a_customer_connects_revokes_reconnects_is_deauthorized_and_erases(
    stack: DevStack, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="consent_dev.devserver")
    events = PublishedEvents(EventsQueue.subscribe(stack.topic_arn))

    # Given a customer who signs up for business onboarding (banking required)
    created = http.post("/companies", json={"name": "Acme Bakery Ltd", "journey": "onboarding"}, headers=ALICE)
    assert created.status_code == 201, created.text
    company_id = created.json()["companyId"]
    assert created.json()["journeys"][0]["status"] == "pending"
    events.expect("consent.company.created")

    # When they pick Codat's banking sandbox among the enabled banking integrations
    integrations = http.get("/integrations", params={"sourceType": "banking"}, headers=ALICE)
    assert integrations.status_code == 200, integrations.text
    assert "qhnd" in {item["platformKey"] for item in integrations.json()["items"]}
    connection = http.post(f"/companies/{company_id}/connections", json={"platformKey": "qhnd"}, headers=ALICE)
    assert connection.status_code == 201, connection.text
    connection_id = connection.json()["connectionId"]
    link_url = connection.json()["linkUrl"]
    assert urlsplit(link_url).netloc == urlsplit(stack.codat_url).netloc  # the simulator's link page
    events.expect("consent.connection.created")

    # And authorize it on the link page: Codat's webhooks complete the journey
    authorize_on_link_page(link_url)
    company = wait_for_journey(http, company_id, "complete")
    assert company["connections"][0]["status"] == "Linked"
    assert "linkUrl" not in company["connections"][0]
    events.expect(
        "consent.connection.linked", "consent.journey.linked", "consent.sync.completed", "consent.journey.completed"
    )

    # When they revoke it: unlinked in Codat, and the journey needs them again
    revoked = http.delete(f"/companies/{company_id}/connections/{connection_id}", headers=ALICE)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "Unlinked"
    wait_for_journey(http, company_id, "action_required")
    events.expect("consent.connection.unlinked", "consent.journey.action_required")

    # When they relink: the same connection comes back with a fresh link, and the journey completes again
    relink = http.post(f"/companies/{company_id}/connections", json={"platformKey": "qhnd"}, headers=ALICE)
    assert relink.status_code == 200, relink.text
    assert relink.json()["connectionId"] == connection_id
    assert relink.json()["linkUrl"] != link_url
    authorize_on_link_page(relink.json()["linkUrl"])
    wait_for_journey(http, company_id, "complete")
    events.expect("consent.connection.linked", "consent.journey.completed")

    # When the platform deauthorizes the connection (rehearsed through the simulator's control route)
    control = httpx.post(
        f"{stack.codat_url}/_simulator/companies/{company_id}/connections/{connection_id}/deauthorize", timeout=10.0
    )
    assert control.status_code < 300, control.text
    company = wait_for_journey(http, company_id, "action_required")
    assert company["connections"][0]["status"] == "Deauthorized"
    events.expect("consent.connection.deauthorized", "consent.journey.action_required")

    # When they erase the company: gone, here and in Codat
    erased = http.delete(f"/companies/{company_id}", headers=ALICE)
    assert erased.status_code == 204, erased.text
    gone = http.get(f"/companies/{company_id}", headers=ALICE)
    assert gone.status_code == 404
    assert gone.json()["code"] == "not_found"
    events.expect("consent.company.erased")

    # Then every event was about this company, each once, and the simulator saw only what Codat's spec allows
    assert {event["subject"] for event in events.all} == {company_id}
    assert len({event["id"] for event in events.all}) == len(events.all)
    assert stack.simulator is not None
    assert stack.simulator.contract_violations == []

    # And make dev's log showed every one of them: its type, id and subject
    def logged(event: dict[str, Any]) -> bool:
        return any(
            event["type"] in line and f"id={event['id']} " in line and f"subject={company_id}" in line
            for line in caplog.messages
        )

    assert wait_for(lambda: all(logged(event) for event in events.all), timeout=5.0)
    # And every event held to its published contract, on the events log as here
    assert stack.events_log is not None
    assert stack.events_log.violations == []
    assert all(validate_message(json.dumps(event), attributes) == [] for event, attributes in events.with_attributes)


def test_health_reports_every_part_up(http: httpx.Client) -> None:
    health = http.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert {part: state["state"] for part, state in body["parts"].items()} == {
        "aws": "up",
        "codat": "up",
        "webhooks": "delivering",
        "api": "up",
        "outboxRelay": "running",
        "eventsLog": "running",
    }


def test_make_dev_registers_its_webhook_route_with_codat_as_make_codat_webhooks_does(
    stack: DevStack, http: httpx.Client
) -> None:
    # The simulator's webhook consumer for the local route was made through Codat's API, by the same use case
    assert stack.simulator is not None
    with httpx.Client(base_url=stack.codat_url, timeout=10.0) as codat:
        listed = codat.get("/webhooks", headers={"Authorization": stack.simulator.authorization})
        summary = codat.get("/_simulator/webhooks").json()
    [consumer] = [c for c in listed.json()["results"] if c["url"] == stack.webhook_url]
    assert (consumer["disabled"], set(consumer["eventTypes"])) == (False, HANDLED_EVENT_TYPES)
    assert http.get("/health").json()["parts"]["webhooks"]["consumer"] == consumer["id"]
    assert summary["url"] == stack.webhook_url
    assert consumer["id"] in {c["id"] for c in summary["consumers"]}


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BAD_TOKENS = {
    "none": None,
    "empty": "",
    "no token": "Bearer",
    "two words": "Bearer two words",
    "basic": "Basic Y3VzdG9tZXI6eA==",
    "a bare customer id": "customer-alice",
    "a customer id as the token": "Bearer customer-alice",
    "malformed": "Bearer eyJhbGciOiJSUzI1NiJ9.not-base64!.x",
    "expired": f"Bearer {ISSUER.token('customer-alice', lifetime=-60)}",
    "not yet valid": f"Bearer {ISSUER.token('customer-alice', nbf=int(time.time()) + 3600)}",
    "another issuer's key": f"Bearer {LocalIssuer(url=ISSUER.url, kid=ISSUER.kid).token('customer-alice')}",
    "another issuer": f"Bearer {ISSUER.token('customer-alice', iss='https://evil.example/')}",
    "another audience": f"Bearer {ISSUER.token('customer-alice', aud='another-app')}",
    "alg none": f"Bearer {_unsigned({'sub': 'customer-alice', 'iss': ISSUER.url, 'aud': 'consent-app', 'exp': 9e9})}",
}


@pytest.mark.parametrize("authorization", list(BAD_TOKENS.values()), ids=list(BAD_TOKENS))
def test_the_local_authorizer_refuses_every_token_api_gateway_would(
    http: httpx.Client, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = http.get("/companies", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "unauthenticated"
    assert answer.json()["requestId"] == answer.headers["x-request-id"]


@pytest.mark.parametrize("customer", ["", "two words"])
def test_a_valid_token_without_a_usable_identity_claim_is_refused_by_the_function(
    http: httpx.Client, customer: str
) -> None:
    # API Gateway's authorizer checks the token, not who it names: the function reads IdentityClaim itself
    answer = http.get("/companies", headers={"Authorization": f"Bearer {ISSUER.token(customer)}"})
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "unauthenticated"
    assert answer.json()["requestId"] == answer.headers["x-request-id"]


def test_the_bearer_customer_is_the_caller_and_sees_only_their_own(http: httpx.Client) -> None:
    created = http.post("/companies", json={"name": "Bob's Bikes", "journey": "onboarding"}, headers=BOB)
    assert created.status_code == 201, created.text
    company_id = created.json()["companyId"]
    assert company_id in {item["companyId"] for item in http.get("/companies", headers=BOB).json()["items"]}
    assert http.get(f"/companies/{company_id}", headers=ALICE).status_code == 404


def test_the_webhook_route_takes_no_token_and_the_product_checks_the_signature(http: httpx.Client) -> None:
    answer = http.post("/webhooks/codat", json={"eventType": "connection.connected"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "invalid_signature"  # the product's answer, not the authorizer's


def test_a_request_no_route_takes_is_api_gateway_s_404(http: httpx.Client) -> None:
    answer = http.get("/nowhere", headers=ALICE)
    assert answer.status_code == 404
    assert answer.json() == {"message": "Not Found"}
    assert answer.headers["apigw-requestid"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/companies", "GET, POST"),
        ("TRACE", "/integrations", "GET"),
        ("GET", "/webhooks/codat", "POST"),
        ("PATCH", "/companies/abc", "DELETE, GET"),
    ],
)
def test_a_route_s_path_with_another_method_is_405_with_allow(
    http: httpx.Client, method: str, path: str, allowed: str
) -> None:
    # (deployed, the HTTP API answers these 404 like any request it has no route for: docs/local-vs-deployed.md)
    answer = http.request(method, path, headers=ALICE)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.json() == {"message": "Method Not Allowed"}


def test_openapi_is_valid_3_1_and_documents_exactly_the_template_routes(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    validate(document)
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS
    }
    assert documented == {(route.method, route.path) for route in routes()}
    # The webhook has no JWT: its own scheme is Codat's signature, and an unsigned body is a 401
    webhook = document["paths"]["/webhooks/codat"]["post"]
    assert webhook["security"] == [{"codatWebhookSignature": []}]
    assert document["components"]["securitySchemes"]["codatWebhookSignature"]["name"] == "webhook-signature"
    assert "401" in webhook["responses"]


def test_the_event_contract_is_served_as_the_repository_has_it(http: httpx.Client) -> None:
    assert http.get("/asyncapi.json").json() == json.loads(ASYNCAPI_FILE.read_text(encoding="utf-8"))
    for event_type in ConsentEventType:
        name = schema_file_name(event_type)
        served = http.get(f"/schemas/events/{name}")
        assert served.status_code == 200, name
        assert served.headers["content-type"] == "application/schema+json"
        assert served.json() == json.loads((ASYNCAPI_FILE.parent / "events" / name).read_text(encoding="utf-8"))
    assert http.get("/schemas/events/consent.nothing.v1.json").status_code == 404


def test_docs_serve_swagger_ui_offline_on_the_api_document(http: httpx.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assets = ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui-standalone-preset.js"]
    for asset in assets:
        assert asset in page.text
        assert http.get(asset).status_code == 200, asset
    initializer = http.get("/docs/initializer.js")
    assert '"/openapi.json"' in initializer.text
    # Nothing outside Swagger UI's files, however the path is spelt.
    for escape in ("/docs/%2e%2e/%2e%2e/pyproject.toml", "/docs/..%2f..%2fpyproject.toml", "/docs/nothing.js"):
        assert http.get(escape).status_code == 404, escape


def test_a_real_codat_is_used_when_its_url_and_key_are_set() -> None:
    # Given something that speaks Codat's API at CODAT_BASE_URL, with its own key
    codat = CodatSimulator(api_key="not-the-dev-key")
    with serve(codat) as served:
        environ = {"CODAT_BASE_URL": served.url, "CODAT_API_KEY": "not-the-dev-key"}
        # When `make dev` runs with them
        with (
            DevStack(environ=environ, issuer=ISSUER) as stack,
            httpx.Client(base_url=stack.api_url, timeout=10.0) as http,
        ):
            created = http.post("/companies", json={"name": "Acme Bakery Ltd", "journey": "onboarding"}, headers=ALICE)
            health = http.get("/health").json()
        # Then no simulator of its own runs, and the company is created there (the key from Secrets Manager)
        assert created.status_code == 201, created.text
        assert stack.simulator is None
        assert health["parts"]["codat"] == {"state": "up", "mode": "external", "url": served.url}
        assert created.json()["companyId"] in codat.companies


def test_half_a_real_codat_configuration_is_refused() -> None:
    with pytest.raises(DevStackError, match="CODAT_BASE_URL and CODAT_API_KEY"):
        DevStack(environ={"CODAT_BASE_URL": "https://api.codat.io"})


# -- the command itself ------------------------------------------------------------------------------------


def free_port_pair() -> int:
    """A free port with the next one free too (the simulator's), below Linux's ephemeral range so that no
    outgoing connection of this process can be holding either."""
    for port in random.sample(range(20000, 32000, 2), 50):
        if bindable(port) and bindable(port + 1):
            return port
    raise RuntimeError("no two consecutive free ports")


def bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class HealthProbe:
    """GET /health until it answers 200, remembering every other answer on the way."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.before_ready: list[tuple[int, str]] = []

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(self.url, timeout=1.0)
            if answer.status_code == 200:
                return True
            self.before_ready.append((answer.status_code, answer.json()["status"]))
        return False


def test_make_dev_on_a_taken_port_says_so_and_exits() -> None:
    port = free_port_pair()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        result = subprocess.run(
            [sys.executable, "-m", "consent_dev.devserver", "--port", str(port)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not listening(port + 1)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_make_dev_is_healthy_within_its_promise_and_stops_cleanly_on_a_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    port = free_port_pair()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CODAT_", "AWS_"))}
    output = tmp_path / "make-dev.log"
    started = time.monotonic()
    with output.open("wb") as log:
        # The command `make dev` runs (Makefile: $(PY) -m consent_dev.devserver --port $(PORT)).
        process = subprocess.Popen(
            [sys.executable, "-m", "consent_dev.devserver", "--port", str(port)],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            health = HealthProbe(f"http://127.0.0.1:{port}/health")
            ready = wait_for(lambda: health.ready() or process.poll() is not None, STARTUP_PROMISE_SECONDS)
            startup = time.monotonic() - started
            print(f"make dev answered /health 200 after {startup:.2f} s")  # the figure the README quotes
            assert ready, output.read_text()
            assert process.poll() is None, output.read_text()
            assert set(health.before_ready) <= {(503, "starting")}  # listening at once, honest until ready
            aws_endpoint = httpx.get(f"http://127.0.0.1:{port}/health").json()["parts"]["aws"]["endpoint"]
            assert listening(port + 1)  # the simulator, on PORT+1

            process.send_signal(stop_signal)
            assert process.wait(timeout=15) == 0, output.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
    shown = output.read_text()
    assert f"http://127.0.0.1:{port}/docs" in shown
    assert f"http://127.0.0.1:{port + 1}" in shown
    assert "curl" in shown
    aws_port = urlsplit(aws_endpoint).port
    assert aws_port is not None
    assert not any(listening(p) for p in (port, port + 1, aws_port))


def test_the_local_issuer_hands_out_tokens_and_publishes_its_keys(stack: DevStack, http: httpx.Client) -> None:
    # Given a customer who signs in through the local issuer (dev only: no password)
    issued = http.post("/dev/token", data={"customer": "customer-carol"})
    assert issued.status_code == 200, issued.text
    assert issued.headers["cache-control"] == "no-store"
    token = issued.json()["accessToken"]

    # When she calls the API with it, she is that customer (with her own, empty, list of companies)
    listed = http.get("/companies", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []

    # and the issuer publishes what an authorizer verifies tokens with, as OpenID discovery says
    discovery = http.get("/dev/issuer/.well-known/openid-configuration").json()
    assert discovery["issuer"] == stack.issuer.url
    jwks = httpx.get(f"{stack.api_url}/dev/issuer/.well-known/jwks.json", timeout=10).json()
    assert [key["kid"] for key in jwks["keys"]] == [stack.issuer.kid]
    assert "d" not in jwks["keys"][0]  # the public half only
    assert http.post("/dev/token", data={"customer": ""}).status_code == 422


def test_a_request_over_api_gateway_s_quota_is_refused_before_any_function(http: httpx.Client) -> None:
    # API Gateway's HTTP API takes payloads up to 10 MB; over it, it answers itself, in its own words
    answer = http.post(
        "/companies", content=b"x" * (10 * 1024 * 1024 + 1), headers={**ALICE, "Content-Type": "application/json"}
    )

    assert answer.status_code == 413
    assert answer.json() == {"message": "Request Entity Too Large"}


def test_a_function_answer_over_lambda_s_6_mb_is_api_gateway_s_500() -> None:
    too_big = {"statusCode": 200, "body": "x" * (6 * 1024 * 1024 + 1)}
    fits = {"statusCode": 200, "body": "x" * 1024}

    answer = lambda_response(too_big)

    assert answer.status == 500
    assert json.loads(answer.body) == {"message": "Internal Server Error"}
    assert lambda_response(fits).status == 200
