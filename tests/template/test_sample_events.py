"""events/, the samples for `sam local invoke -e`: one or more for every route; each is exactly what API Gateway
(or the table's stream) hands the function; each is answered as intended by the function's real handler in the
world it names; and `make events` writes exactly what is committed, up to the webhooks' signing time."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from consent.services import Services
from consent.webhooks import receiver
from consent.webhooks.codat_events import WebhookEnvelope
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import DEV_WEBHOOK_SECRET
from consent_dev.lambda_runtime import LambdaContext, load_handler, parse_body
from consent_dev.local_api import LocalApi
from consent_dev.sample_events import (
    EVENTS_DIR,
    LIFECYCLE,
    OUTBOX_RELAY,
    RECONCILE,
    SAMPLE_IDS,
    SAMPLE_TIME,
    SAMPLES,
    SAMPLES_BY_NAME,
    Sample,
    render,
    resign,
    seed,
    signed_at,
)
from consent_dev.streams import StreamEventSource
from consent_dev.subscriber import EventsQueue
from consent_dev.template import REPO_ROOT, Route, functions, load_template, routes

pytestmark = pytest.mark.template

ROUTES = {route.route_key: route for route in routes()}
FILES = sorted(EVENTS_DIR.glob("*.json"))
CUSTOMER, COMPANY, CONNECTION = SAMPLE_IDS.customer_id, SAMPLE_IDS.company_id, SAMPLE_IDS.connection_id
HTTP_EVENT_KEYS = {"version", "routeKey", "rawPath", "rawQueryString", "headers", "requestContext", "isBase64Encoded"}


def load(path: Path) -> dict[str, Any]:
    event = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(event, dict)
    return event


def sample_of(path: Path) -> Sample:
    assert path.stem in SAMPLES_BY_NAME, f"{path.name} is not made by scripts/make-events"
    return SAMPLES_BY_NAME[path.stem]


def http_files(*, webhooks: bool) -> list[Path]:
    return [p for p in FILES if sample_of(p).status is not None and sample_of(p).is_webhook == webhooks]


def seed_time(sample: Sample, event: dict[str, Any]) -> datetime:
    """An hour before the sample happens (a webhook happens at its event's generatedDate)."""
    happens = WebhookEnvelope.model_validate_json(event["body"]).generated_date if sample.is_webhook else SAMPLE_TIME
    return happens - timedelta(hours=1)


# -- every route has a sample, and the samples are what `make events` writes -----------------------------------------


def test_every_route_and_every_function_has_a_sample() -> None:
    sent_to = {load(path).get("routeKey") for path in FILES}
    assert set(ROUTES) - sent_to == set(), "routes without a sample in events/"
    assert {f.logical_id for f in functions()} - {sample_of(path).function for path in FILES} == set()


def test_the_committed_samples_are_what_make_events_writes(tmp_path: Path) -> None:
    # When the samples are generated again
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "make-events"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    # Then they are the committed files, byte for byte, except when and with what signature a webhook was signed
    generated = sorted(tmp_path.glob("*.json"))
    assert [p.name for p in generated] == [p.name for p in FILES]
    for fresh in generated:
        committed = EVENTS_DIR / fresh.name
        if sample_of(committed).is_webhook:
            assert render(unsigned(load(fresh))) == render(unsigned(load(committed))), fresh.name
            assert committed.read_text() == render(load(committed)), f"{committed.name}: run `make events`"
        else:
            assert fresh.read_bytes() == committed.read_bytes(), f"{fresh.name}: run `make events`"


def unsigned(event: dict[str, Any]) -> dict[str, Any]:
    """A webhook sample without what depends on when it was generated."""
    event = copy.deepcopy(event)
    event["headers"].update({"webhook-timestamp": "<time>", "webhook-signature": "<signature>"})
    event["requestContext"].update(time="<time>", timeEpoch="<time>")
    body = json.loads(event["body"])
    body["generatedDate"] = "<time>"
    if "modifiedFromDate" in body["payload"]:
        body["payload"]["modifiedFromDate"] = "<time>"
    event["body"] = body
    return event


def test_the_readme_tells_what_every_sample_is_for() -> None:
    readme = (EVENTS_DIR / "README.md").read_text(encoding="utf-8")
    assert [path.name for path in FILES if path.name not in readme] == []


# -- each sample is what API Gateway or the stream sends ---------------------------------------------------------------


@pytest.mark.parametrize("path", http_files(webhooks=False) + http_files(webhooks=True), ids=lambda p: p.stem)
def test_each_http_sample_is_an_http_api_payload_2_event(path: Path) -> None:
    event = load(path)
    assert set(event) >= HTTP_EVENT_KEYS, f"missing {HTTP_EVENT_KEYS - set(event)}"
    assert event["version"] == "2.0"
    route = ROUTES.get(event["routeKey"])
    assert route is not None, f"{event['routeKey']} is not a route of template.yaml"
    assert sample_of(path).function == route.function

    context = event["requestContext"]
    assert context["routeKey"] == event["routeKey"]
    assert context["stage"] == "$default"
    assert context["http"]["method"] == route.method
    assert context["http"]["path"] == event["rawPath"]
    assert context["http"]["userAgent"] == event["headers"]["user-agent"]
    assert re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", context["http"]["sourceIp"])
    assert context["domainName"] == event["headers"]["host"]
    assert re.fullmatch(r"[A-Za-z0-9+/]{15}=", context["requestId"])
    sent = datetime.strptime(context["time"], "%d/%b/%Y:%H:%M:%S +0000").replace(tzinfo=UTC)
    assert context["timeEpoch"] == int(sent.timestamp()) * 1000

    assert route.match(route.method, event["rawPath"]) == event.get("pathParameters", {})
    assert ("pathParameters" in event) == ("{" in route.path)
    assert all(name == name.lower() for name in event["headers"])
    assert event.get("queryStringParameters", {}) == dict(parse_qsl(event["rawQueryString"]))
    assert ("queryStringParameters" in event) == bool(event["rawQueryString"])
    assert event["isBase64Encoded"] is False
    if "body" in event:
        assert isinstance(event["body"], str)
        assert event["headers"]["content-type"] == "application/json"
        assert int(event["headers"]["content-length"]) == len(event["body"].encode())
        assert isinstance(json.loads(event["body"]), dict)

    if route.authorized:
        jwt = context["authorizer"]["jwt"]
        assert set(jwt) == {"claims", "scopes"}
        claims = jwt["claims"]
        assert {"sub", "iss", "aud", "iat", "exp", "scope"} <= set(claims)
        assert all(isinstance(value, str) for value in claims.values()), "API Gateway passes every claim as a string"
        assert claims["sub"] == CUSTOMER
        assert int(claims["iat"]) < int(context["timeEpoch"]) // 1000 < int(claims["exp"])
        assert event["headers"]["authorization"].startswith("Bearer ")
    else:
        assert "authorizer" not in context, "the webhook route has no authorizer"
        assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(event["headers"])


def test_no_two_samples_share_a_request_id() -> None:
    ids = [load(p)["requestContext"]["requestId"] for p in FILES if "requestContext" in load(p)]
    assert len(ids) == len(set(ids))


def test_the_stream_sample_is_a_batch_the_relays_event_source_mapping_delivers() -> None:
    [path] = [p for p in FILES if sample_of(p).function == OUTBOX_RELAY]
    [record] = load(path)["Records"]
    assert record["eventSource"] == "aws:dynamodb"
    assert re.fullmatch(r"arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/[\w.-]+/stream/[\dT:.-]+", record["eventSourceARN"])
    assert set(record["dynamodb"]["Keys"]) == {"PK", "SK"}
    assert record["dynamodb"]["StreamViewType"] == "NEW_IMAGE"
    assert StreamEventSource.of(OUTBOX_RELAY).accepts(record), "the template's filter would not let it through"


@pytest.mark.parametrize("function", [RECONCILE, LIFECYCLE])
def test_each_schedule_sample_is_the_event_eventbridge_sends_for_its_function_s_schedule(function: str) -> None:
    [path] = [p for p in FILES if sample_of(p).function == function]
    event = load(path)
    schedules = load_template()["Resources"][function]["Properties"]["Events"].values()
    assert [e["Type"] for e in schedules] == ["Schedule"]
    assert (event["version"], event["source"], event["detail-type"]) == ("0", "aws.events", "Scheduled Event")
    assert re.fullmatch(rf"arn:aws:events:[a-z0-9-]+:\d{{12}}:rule/[\w.-]*{function}[\w.-]+", event["resources"][0])
    assert event["time"].endswith(":00Z"), "schedules fire on the minute"
    assert event["detail"] == {}


# -- each sample is answered as intended, in its world -----------------------------------------------------------------


@dataclass
class Seen:
    """What the caller got, and a way to look at the result as a customer (and in Codat) afterwards."""

    status: int
    headers: dict[str, str]
    body: Any
    api: LocalApi
    simulator: CodatSimulator

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())

    def company(self) -> dict[str, Any]:
        response = self.api.get(f"/companies/{COMPANY}", customer=CUSTOMER)
        assert response.status == 200, response.text
        return response.body  # type: ignore[no-any-return]


THEN: dict[str, Callable[[Seen], None]] = {}


def then(name: str) -> Callable[[Callable[[Seen], None]], Callable[[Seen], None]]:
    def register(check: Callable[[Seen], None]) -> Callable[[Seen], None]:
        THEN[name] = check
        return check

    return register


@then("post_companies")
def _company_created(seen: Seen) -> None:
    assert seen.body["name"] == "Acme Bakery Ltd"
    assert [(j["journey"], j["status"]) for j in seen.body["journeys"]] == [("onboarding", "pending")]
    [codat_company] = seen.simulator.companies.values()
    assert codat_company.id == seen.body["companyId"]
    # tagged with the keyed customer reference (an HMAC-SHA256), never her id
    assert re.fullmatch(r"[0-9a-f]{64}", codat_company.tags["consentCustomerRef"])
    assert CUSTOMER not in str(codat_company.tags)


@then("post_company_journeys")
def _journey_started(seen: Seen) -> None:
    journeys = {j["journey"]: j["status"] for j in seen.body["journeys"]}
    # The bank connection counts toward the loan application at once; accounting is still missing.
    assert journeys == {"onboarding": "complete", "loan_application": "linking"}


@then("get_companies")
def _companies_listed(seen: Seen) -> None:
    assert [c["companyId"] for c in seen.body["items"]] == [COMPANY]


@then("get_company")
def _company_shown(seen: Seen) -> None:
    assert seen.body["companyId"] == COMPANY
    assert seen.body["journeys"][0]["status"] == "complete"
    assert [(c["connectionId"], c["status"]) for c in seen.body["connections"]] == [(CONNECTION, "Linked")]


@then("get_company_connections")
def _connections_listed(seen: Seen) -> None:
    [connection] = seen.body["items"]
    assert (connection["connectionId"], connection["status"], connection["platformKey"]) == (
        CONNECTION,
        "Linked",
        "qhnd",
    )
    assert "linkUrl" not in connection


@then("get_company_events")
def _ledger_shown(seen: Seen) -> None:
    types = [e["type"] for e in seen.body["items"]]
    assert types[:2] == ["company.created", "journey.started"]
    assert {"connection.linked", "sync.completed", "journey.completed"} <= set(types)


@then("get_journeys")
def _journeys_listed(seen: Seen) -> None:
    assert [(j["name"], j["required"], j["access"]) for j in seen.body["items"]] == [
        ("credit_check", ["accounting", "banking"], "one_off"),
        ("loan_application", ["accounting", "banking"], "ongoing"),
        ("onboarding", ["banking"], "ongoing"),
    ]
    assert all(j["title"] and j["description"] for j in seen.body["items"])


@then("get_integrations")
def _integrations_listed(seen: Seen) -> None:
    assert {i["sourceType"] for i in seen.body["items"]} == {"accounting"}
    assert "gbol" in {i["platformKey"] for i in seen.body["items"]}


@then("post_company_connections")
def _connection_created(seen: Seen) -> None:
    assert (seen.body["platformKey"], seen.body["status"]) == ("gbol", "PendingAuth")
    assert seen.body["linkUrl"]
    assert seen.simulator.connection(COMPANY, seen.body["connectionId"]).integration.key == "gbol"


@then("get_company_access_token")
def _access_token_given(seen: Seen) -> None:
    assert seen.body["accessToken"]
    assert seen.header("cache-control") == "no-store"


@then("post_company_sdk_sessions")
def _sdk_session_opened(seen: Seen) -> None:
    assert (seen.body["component"], bool(seen.body["accessToken"])) == ("link", True)
    assert seen.header("cache-control") == "no-store"


@then("delete_company_connection")
def _connection_revoked(seen: Seen) -> None:
    assert (seen.body["connectionId"], seen.body["status"]) == (CONNECTION, "Unlinked")
    assert seen.simulator.connection(COMPANY, CONNECTION).status == "Unlinked"
    assert seen.company()["journeys"][0]["status"] == "action_required"


@then("delete_company")
def _company_erased(seen: Seen) -> None:
    assert seen.body is None
    assert COMPANY not in seen.simulator.companies
    assert seen.api.get(f"/companies/{COMPANY}", customer=CUSTOMER).status == 404


@then("webhook_connection_connected")
def _connection_linked(seen: Seen) -> None:
    company = seen.company()
    assert company["connections"][0]["status"] == "Linked"
    assert company["journeys"][0]["status"] == "linked"


@then("webhook_read_completed_initial")
def _first_read_done(seen: Seen) -> None:
    company = seen.company()
    assert company["connections"][0]["lastSyncAt"]
    assert company["journeys"][0]["status"] == "complete"


@then("webhook_connection_disconnected")
def _connection_deauthorized(seen: Seen) -> None:
    company = seen.company()
    assert company["connections"][0]["status"] == "Deauthorized"
    assert company["journeys"][0]["status"] == "action_required"


def seen(result: dict[str, Any], api: LocalApi, simulator: CodatSimulator) -> Seen:
    return Seen(int(result["statusCode"]), dict(result.get("headers") or {}), parse_body(result), api, simulator)


@pytest.mark.integration
@pytest.mark.parametrize("path", http_files(webhooks=False), ids=lambda p: p.stem)
def test_each_api_sample_is_answered_as_intended(
    path: Path, services: Services, simulator: CodatSimulator, api: LocalApi
) -> None:
    # Given the world the sample names (its customer, company and connection), in Codat and in our table
    sample, event = sample_of(path), load(path)
    seed(sample.world, services, simulator, at=seed_time(sample, event))
    route: Route = ROUTES[event["routeKey"]]

    # When API Gateway hands the sample to the route's function
    handler = load_handler(route.code_uri, route.handler)
    answer = seen(handler(event, LambdaContext(route.function), services=services), api, simulator)

    # Then it is answered with the sample's success status, and the customer sees what it did
    assert answer.status == sample.status, answer.body
    assert 200 <= answer.status < 300
    assert answer.header("x-request-id") == event["requestContext"]["requestId"]
    THEN[sample.name](answer)


@pytest.mark.integration
@pytest.mark.parametrize("path", http_files(webhooks=True), ids=lambda p: p.stem)
def test_each_webhook_sample_is_accepted_with_its_own_signature(
    path: Path, services: Services, simulator: CodatSimulator, api: LocalApi
) -> None:
    # Given the world the webhook is about
    sample, event = sample_of(path), load(path)
    seed(sample.world, services, simulator, at=seed_time(sample, event))

    # When it arrives at the moment it was signed (verified with the documented dev secret)
    moment = signed_at(event).timestamp()
    answer = seen(receiver.handle(event, services, now=lambda: moment), api, simulator)

    # Then Codat gets its 204 and the customer sees the change
    assert answer.status == sample.status == 204, answer.body
    THEN[sample.name](answer)


@pytest.mark.integration
def test_a_webhook_sample_signed_over_5_minutes_ago_is_refused_so_it_must_be_resigned(
    services: Services, simulator: CodatSimulator, api: LocalApi
) -> None:
    path = EVENTS_DIR / "webhook_connection_connected.json"
    sample, event = sample_of(path), load(path)
    seed(sample.world, services, simulator, at=seed_time(sample, event))
    late = signed_at(event) + timedelta(minutes=5, seconds=1)

    refused = receiver.handle(event, services, now=late.timestamp)
    accepted = receiver.handle(resign(event, late), services, now=late.timestamp)

    assert (refused["statusCode"], json.loads(refused["body"])["code"]) == (401, "invalid_signature")
    assert accepted["statusCode"] == 204


@pytest.mark.integration
def test_the_stream_sample_publishes_its_consent_event(services: Services, events_queue: EventsQueue) -> None:
    # Given the ledger entry in the stream sample
    [path] = [p for p in FILES if sample_of(p).function == OUTBOX_RELAY]
    event = load(path)
    relay = next(f for f in functions() if f.logical_id == OUTBOX_RELAY)

    # When the relay receives it
    result = load_handler(relay.code_uri, relay.handler)(event, LambdaContext(OUTBOX_RELAY), services=services)

    # Then no record is reported failed, and subscribers get the consent event
    assert result == {"batchItemFailures": []}
    [received] = events_queue.receive()
    assert (received.type, received.event["subject"]) == ("consent.connection.linked", COMPANY)
    assert received.event["data"]["connectionId"] == CONNECTION


@pytest.mark.integration
def test_the_schedule_sample_runs_a_reconciliation_that_heals_a_missed_webhook(
    services: Services, simulator: CodatSimulator, api: LocalApi
) -> None:
    # Given the customer revoked access in their bank, and Codat's webhook about it never arrived
    [path] = [p for p in FILES if sample_of(p).function == RECONCILE]
    sample, event = sample_of(path), load(path)
    seed(sample.world, services, simulator, at=seed_time(sample, event))
    simulator.set_connection_status(COMPANY, CONNECTION, "Deauthorized")
    reconcile = next(f for f in functions() if f.logical_id == RECONCILE)

    # When the schedule fires
    report = load_handler(reconcile.code_uri, reconcile.handler)(event, LambdaContext(RECONCILE), services=services)

    # Then the pass checks the company and heals it: the customer sees the connection as Codat has it
    assert (report["companies_checked"], report["companies_healed"], report["stopped"]) == (1, 1, "pass_complete")
    company = api.get(f"/companies/{COMPANY}", customer=CUSTOMER).body
    assert company["connections"][0]["status"] == "Deauthorized"
    assert company["journeys"][0]["status"] == "action_required"


@pytest.mark.integration
def test_the_lifecycle_schedule_sample_sends_the_reminders_due(
    services: Services, simulator: CodatSimulator, api: LocalApi
) -> None:
    # Given a customer who onboarded: her bank consent lasts 90 days, to renew a week early
    [path] = [p for p in FILES if sample_of(p).function == LIFECYCLE]
    sample, event = sample_of(path), load(path)
    seeded_at = seed_time(sample, event)
    seed(sample.world, services, simulator, at=seeded_at)
    lifecycle = next(f for f in functions() if f.logical_id == LIFECYCLE)
    handler = load_handler(lifecycle.code_uri, lifecycle.handler)

    def run(days_later: int) -> dict[str, Any]:
        then = Services(services.settings, store=services.store, clock=lambda: seeded_at + timedelta(days=days_later))
        return dict(handler(event, LambdaContext(LIFECYCLE), services=then))

    # When the schedule fires the same day, nothing is due; 70 days later (13 before renewBy), the 14-day reminder
    assert run(0)["sent"] == 0
    report = run(70)

    # Then the customer's consent history shows it
    assert report["sent"] == 1
    entries = api.get(f"/companies/{COMPANY}/events", customer=CUSTOMER).body["items"]
    assert [e["reminderDays"] for e in entries if e["type"] == "connection.expiring"] == [14]


def test_every_sample_has_what_its_customer_should_see() -> None:
    http = {s.name for s in SAMPLES if s.status is not None}
    assert http == set(THEN)


class _StackSession:
    """What boto3 would answer for a deployed stack: its outputs, and its webhook secret (two, mid-rotation)."""

    SECRET = "whsec_" + __import__("base64").b64encode(b"the stack's own webhook secret!!").decode()

    def client(self, service: str) -> Any:
        session = self

        class Client:
            def describe_stacks(self, StackName: str) -> dict[str, Any]:
                assert service == "cloudformation"
                outputs = [{"OutputKey": "CodatWebhookSecretArn", "OutputValue": f"arn:secret:{StackName}"}]
                return {"Stacks": [{"Outputs": outputs}]}

            def get_secret_value(self, SecretId: str) -> dict[str, Any]:
                assert service == "secretsmanager"
                assert SecretId == "arn:secret:bank-prod"
                return {"SecretString": f"{session.SECRET} whsec_b2xkLW9uZS1iZWluZy1yb3RhdGVkLW91dCEhISE="}

        return Client()


def test_samples_for_a_deployed_stack_are_signed_with_its_own_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from consent.webhooks.signature import parse_secrets, verify  # noqa: PLC0415
    from consent_dev import sample_events  # noqa: PLC0415

    real = sample_events.stack_webhook_secret
    monkeypatch.setattr(sample_events, "stack_webhook_secret", lambda stack: real(stack, _StackSession()))
    assert sample_events.main(["--stack", "bank-prod", "--out", str(tmp_path)]) == 0

    webhooks = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    webhooks = [e for e in webhooks if e.get("rawPath") == "/webhooks/codat"]
    assert webhooks
    for event in webhooks:
        verify(event["headers"], event["body"].encode(), parse_secrets(_StackSession.SECRET))
        with pytest.raises(Exception, match="signature"):
            verify(event["headers"], event["body"].encode(), parse_secrets(DEV_WEBHOOK_SECRET))
