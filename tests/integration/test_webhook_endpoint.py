"""POST /webhooks/codat at the door: what is refused (401, 400, 413) writes nothing, base64 bodies are verified
over their bytes, an unappliable event is parked once, and no input, however broken, gets a 5xx."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consent.services import Services
from consent.webhooks.receiver import MAX_WEBHOOK_BYTES
from consent_dev.codat_webhooks import codat_time, company_event, connection_event, envelope, read_event, signed
from consent_dev.gateway import http_event
from consent_dev.local_api import ApiResponse, LocalApi

pytestmark = pytest.mark.integration

WEBHOOK = "/webhooks/codat"
ALICE = "customer-alice"
OTHER_SECRET = "whsec_" + base64.b64encode(b"not-the-secret-codat-signs-with!").decode()
Items = Callable[[], list[dict[str, Any]]]


def unknown_company_event() -> dict[str, Any]:
    """Well formed and authentic once signed, about a company we never created: accepted means parked."""
    return connection_event(
        "connection.connected", company_id=str(uuid.uuid4()), connection_id=str(uuid.uuid4()), status="Linked"
    )


def assert_problem(response: ApiResponse, status: int, code: str) -> None:
    assert response.status == status, response.text
    assert response.header("content-type") == "application/problem+json"
    assert response.body["status"] == status
    assert response.body["code"] == code
    assert response.body["requestId"] == response.header("x-request-id")


def sorted_items(items: Items) -> list[dict[str, Any]]:
    return sorted(items(), key=lambda item: (item["PK"]["S"], item["SK"]["S"]))


def parked(items: Items) -> list[dict[str, Any]]:
    return [item for item in items() if item["kind"]["S"] == "parked"]


# -- 401: not provably from Codat ----------------------------------------------------------------------------


def _unsigned(raw: bytes) -> dict[str, str]:
    return {"content-type": "application/json"}


def _wrong_secret(raw: bytes) -> dict[str, str]:
    return signed(raw, OTHER_SECRET)[1]


def _stale(raw: bytes) -> dict[str, str]:
    return signed(raw, timestamp=int(time.time()) - 301)[1]


def _future(raw: bytes) -> dict[str, str]:
    return signed(raw, timestamp=int(time.time()) + 3600)[1]


def _other_body(raw: bytes) -> dict[str, str]:
    return signed(raw + b" ")[1]


def _signature_only(raw: bytes) -> dict[str, str]:
    return {"webhook-signature": signed(raw)[1]["webhook-signature"]}


def _lone_surrogate_id(raw: bytes) -> dict[str, str]:
    return {**signed(raw)[1], "webhook-id": "msg_\ud800"}


def _v2_only(raw: bytes) -> dict[str, str]:
    headers = signed(raw)[1]
    return {**headers, "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,")}


@pytest.mark.parametrize(
    "sign_badly",
    [_unsigned, _wrong_secret, _stale, _future, _other_body, _signature_only, _v2_only, _lone_surrogate_id],
)
def test_a_delivery_not_provably_from_codat_is_refused_and_writes_nothing(
    api: LocalApi, table_items: Items, sign_badly: Callable[[bytes], dict[str, str]]
) -> None:
    # Given an event that would be parked if it were accepted
    raw = json.dumps(unknown_company_event()).encode()
    before = sorted_items(table_items)

    # When it arrives without a valid signature
    response = api.post(WEBHOOK, body=raw, headers=sign_badly(raw))

    # Then it is refused as unauthenticated, and nothing is recorded
    assert_problem(response, 401, "invalid_signature")
    assert sorted_items(table_items) == before


def test_the_same_event_correctly_signed_is_accepted(api: LocalApi, table_items: Items) -> None:
    # The control for the refusals above: the event itself is fine.
    raw, headers = signed(unknown_company_event())

    assert api.post(WEBHOOK, body=raw, headers=headers).status == 204
    assert len(parked(table_items)) == 1


def test_a_deployed_stack_never_accepts_the_documented_development_secret(
    api: LocalApi,
    table_items: Items,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a function in Lambda itself (its runtime sets AWS_EXECUTION_ENV) whose secret is make dev's fake
    monkeypatch.setenv("AWS_EXECUTION_ENV", "AWS_Lambda_python3.13")
    raw, headers = signed(unknown_company_event())  # signed with the documented development secret
    capsys.readouterr()

    # When a webhook signed with it arrives (anyone can sign with a documented secret)
    response = api.post(WEBHOOK, body=raw, headers=headers)

    # Then nothing is applied, the operator is told, and the failure is counted (alarmed)
    assert_problem(response, 500, "webhook_secret_misconfigured")
    assert parked(table_items) == []
    assert any("development one" in str(r.__dict__.get("error")) for r in caplog.records)
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["WebhooksFailed"] for m in metrics if "WebhooksFailed" in m] == [[1.0]]


def test_svix_header_names_are_accepted(api: LocalApi, table_items: Items) -> None:
    raw, headers = signed(unknown_company_event())
    svix = {name.replace("webhook-", "svix-"): value for name, value in headers.items()}

    assert api.post(WEBHOOK, body=raw, headers=svix).status == 204
    assert len(parked(table_items)) == 1


def test_header_names_in_any_case_are_accepted(api: LocalApi, services: Services, table_items: Items) -> None:
    # HTTP APIs lowercase header names; other front doors (REST APIs, a function URL behind a proxy) may not.
    raw, headers = signed(unknown_company_event())
    delivery = webhook_event(api, raw, {}, base64_body=None)
    delivery["headers"] = {
        "Webhook-Id": headers["webhook-id"],
        "SVIX-TIMESTAMP": headers["webhook-timestamp"],
        "wEbHoOk-SiGnAtUrE": headers["webhook-signature"],
    }

    assert invoke(api, services, delivery)["statusCode"] == 204
    assert len(parked(table_items)) == 1


# -- 400: authentic but not a Codat event --------------------------------------------------------------------

_GOOD = envelope("connection.connected", {"referenceCompany": {"id": "c"}})


def _without(field: str) -> bytes:
    return json.dumps({k: v for k, v in _GOOD.items() if k != field}).encode()


def _with(**fields: Any) -> bytes:
    return json.dumps({**_GOOD, **fields}).encode()


MALFORMED = {
    "empty": b"",
    "not-json": b"not json",
    "truncated-json": b"{",
    "empty-object": b"{}",
    "array": b"[]",
    "null": b"null",
    "string": b'"connection.connected"',
    "number": b"2432232314",
    "envelope-in-array": json.dumps([_GOOD]).encode(),
    "no-eventType": _without("eventType"),
    "no-id": _without("id"),
    "no-generatedDate": _without("generatedDate"),
    "no-payload": _without("payload"),
    "empty-eventType": _with(eventType=""),
    "null-eventType": _with(eventType=None),
    "list-eventType": _with(eventType=["connection.connected"]),
    "long-eventType": _with(eventType="x" * 201),
    "empty-id": _with(id=""),
    "long-id": _with(id="x" * 257),
    "words-generatedDate": _with(generatedDate="yesterday"),
    "impossible-generatedDate": _with(generatedDate="2026-02-30T10:00:00Z"),
    "null-generatedDate": _with(generatedDate=None),
    # Valid ISO 8601, but before year 1 / after year 9999 once in UTC.
    "generatedDate-before-year-1-in-utc": _with(generatedDate="0001-01-01T00:00:00+14:00"),
    "generatedDate-after-year-9999-in-utc": _with(generatedDate="9999-12-31T23:59:59-14:00"),
    "null-payload": _with(payload=None),
    "list-payload": _with(payload=[]),
    "string-payload": _with(payload="{}"),
    "trailing-bytes": json.dumps(_GOOD).encode() + b"trailing",
    "utf8-byte-order-mark": b"\xef\xbb\xbf" + json.dumps(_GOOD).encode(),
    "utf16": json.dumps(_GOOD).encode("utf-16"),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_body_that_is_not_a_codat_event_is_malformed(api: LocalApi, table_items: Items, raw: bytes) -> None:
    before = sorted_items(table_items)
    body, headers = signed(raw)

    response = api.post(WEBHOOK, body=body, headers=headers)

    assert_problem(response, 400, "malformed_event")
    assert sorted_items(table_items) == before


# -- 413, and base64 bodies ----------------------------------------------------------------------------------


def padded_to(size: int) -> bytes:
    """An authentic, parkable event padded with an ignored field to exactly `size` bytes."""
    delivery = {**unknown_company_event(), "padding": ""}
    delivery["padding"] = "x" * (size - len(json.dumps(delivery).encode()))
    raw = json.dumps(delivery).encode()
    assert len(raw) == size
    return raw


def test_a_body_over_256_kib_is_refused_before_anything_else(api: LocalApi, table_items: Items) -> None:
    before = sorted_items(table_items)
    raw, headers = signed(padded_to(MAX_WEBHOOK_BYTES + 1))

    signed_response = api.post(WEBHOOK, body=raw, headers=headers)
    unsigned_response = api.post(WEBHOOK, body=b"x" * (MAX_WEBHOOK_BYTES * 4))

    assert_problem(signed_response, 413, "payload_too_large")
    assert_problem(unsigned_response, 413, "payload_too_large")
    assert sorted_items(table_items) == before


def test_a_body_of_exactly_256_kib_is_accepted(api: LocalApi, table_items: Items) -> None:
    raw, headers = signed(padded_to(MAX_WEBHOOK_BYTES))

    assert api.post(WEBHOOK, body=raw, headers=headers).status == 204
    assert len(parked(table_items)) == 1


def webhook_event(api: LocalApi, raw: bytes, headers: dict[str, str], *, base64_body: str | None) -> dict[str, Any]:
    found = api.find("POST", WEBHOOK)
    assert found is not None
    route, _ = found
    event = http_event(route, WEBHOOK, headers=headers, body=raw)
    if base64_body is not None:
        event["body"], event["isBase64Encoded"] = base64_body, True
    return event


def invoke(api: LocalApi, services: Services, event: dict[str, Any]) -> dict[str, Any]:
    found = api.find("POST", WEBHOOK)
    assert found is not None
    return LocalApi.invoke(found[0], event, services)


def test_a_base64_encoded_body_is_verified_over_its_decoded_bytes(
    api: LocalApi, services: Services, table_items: Items
) -> None:
    # Given API Gateway passes a valid delivery base64-encoded
    raw, headers = signed(unknown_company_event())
    event = webhook_event(api, raw, headers, base64_body=base64.b64encode(raw).decode())

    # When the function runs, Then the signature over the decoded bytes is accepted and the event parked
    result = invoke(api, services, event)

    assert result["statusCode"] == 204, result.get("body")
    assert [item["webhookId"]["S"] for item in parked(table_items)] == [headers["webhook-id"]]


def test_a_signature_over_the_base64_text_is_not_accepted(
    api: LocalApi, services: Services, table_items: Items
) -> None:
    raw = json.dumps(unknown_company_event()).encode()
    encoded = base64.b64encode(raw)
    _, headers = signed(encoded)  # signed over what API Gateway carries, not over what Codat sent
    before = sorted_items(table_items)

    result = invoke(api, services, webhook_event(api, raw, headers, base64_body=encoded.decode()))

    assert result["statusCode"] == 401
    assert json.loads(result["body"])["code"] == "invalid_signature"
    assert sorted_items(table_items) == before


def test_a_body_flagged_base64_that_is_not_base64_is_malformed(api: LocalApi, services: Services) -> None:
    raw, headers = signed(b"{not base64}")

    result = invoke(api, services, webhook_event(api, raw, headers, base64_body="{not base64}"))

    assert result["statusCode"] == 400
    assert json.loads(result["body"])["code"] == "malformed_event"


def test_a_body_that_is_not_utf8_is_verified_over_its_bytes(api: LocalApi) -> None:
    # `http_event` base64-encodes bytes that are not UTF-8, as API Gateway does.
    raw, headers = signed(b'{"eventType": "\xff\xfe"}')

    response = api.post(WEBHOOK, body=raw, headers=headers)

    # Authentic (not 401) but not a Codat event
    assert_problem(response, 400, "malformed_event")


# -- parked once ---------------------------------------------------------------------------------------------


def test_an_event_for_an_unknown_company_is_parked_once_and_redeliveries_change_nothing(
    api: LocalApi, table_items: Items
) -> None:
    # Given an authentic connection event about a company we never created
    event = unknown_company_event()
    raw, headers = signed(event)

    # When Codat delivers it
    first = api.post(WEBHOOK, body=raw, headers=headers)

    # Then it is acknowledged (so not retried for a day) and parked with its reason
    assert first.status == 204, first.text
    assert first.text == ""
    assert first.header("x-request-id")
    [item] = parked(table_items)
    assert item["webhookId"]["S"] == headers["webhook-id"]
    assert item["eventType"]["S"] == "connection.connected"
    assert item["reason"]["S"] == "unknown company"
    after_first = sorted_items(table_items)

    # When Codat delivers it again: the same bytes, then re-signed a little later, with the same id
    again = api.post(WEBHOOK, body=raw, headers=headers)
    _, later_headers = signed(event, message_id=headers["webhook-id"], timestamp=int(time.time()) + 30)
    later = api.post(WEBHOOK, body=raw, headers=later_headers)

    # Then both are acknowledged and nothing new is written
    assert (again.status, later.status) == (204, 204)
    assert sorted_items(table_items) == after_first


# -- no input gives a 5xx ------------------------------------------------------------------------------------

HEADER_NAMES = [f"{prefix}-{name}" for prefix in ("webhook", "svix") for name in ("id", "timestamp", "signature")]
EVENT_TYPES = [
    "company.created",
    "company.deleted",
    "connection.created",
    "connection.connected",
    "connection.failed",
    "connection.disconnected",
    "connection.reconnected",
    "connection.deleted",
    "read.completed",
    "read.completed.initial",
    "client.rateLimit.reached",
    "client.rateLimit.reset",
]
# Mostly printable ASCII, as a real HTTP header carries; sometimes any code point, lone surrogates included
# (the Lambda event is JSON, which can carry them).
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
HEADER_TEXT = st.text(PRINTABLE, max_size=40) | st.text(st.characters() | st.characters(categories=["Cs"]), max_size=40)
JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
CONNECTION_ERRORS = st.fixed_dictionaries(
    {}, optional={"statusText": st.text(max_size=1100), "errorMessage": st.text(max_size=1100), "status": JSON}
)
OFFSETS = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60 - 59, 23 * 60 + 59))
DATES = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(codat_time),
    st.datetimes(timezones=OFFSETS).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),  # no offset
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.9999999Z", "2022-10-27T10:22:43.6464237Z"]),
    st.integers(min_value=-(2**63), max_value=2**63),
    JSON,
)


@st.composite
def codat_like_events(draw: st.DrawFn, company_id: str, connection_id: str) -> Any:
    """Codat-shaped envelopes with any field possibly wrong, about our company or another one."""
    # Mostly about our company and its connection, so that events get applied, not only parked.
    ours = draw(st.integers(0, 9)) < 7
    company = company_id if ours else draw(st.sampled_from([str(uuid.uuid4()), "", "x" * 65]) | st.text(max_size=70))
    ours = draw(st.integers(0, 9)) < 7
    connection = connection_id if ours else draw(st.sampled_from([str(uuid.uuid4()), ""]) | st.text(max_size=70))
    recent = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
    generated = draw(recent)
    event_type = draw(st.sampled_from(EVENT_TYPES)) if draw(st.integers(0, 4)) else draw(st.text(max_size=30))
    if event_type.startswith("read."):
        base = read_event(company_id=company, connection_ids=[connection], initial=True, generated=generated)
    elif event_type.startswith("company."):
        base = envelope(event_type, {"id": company})
    else:
        base = connection_event(
            "connection.created",
            company_id=company,
            connection_id=connection,
            status=draw(st.sampled_from(["PendingAuth", "Linked", "Unlinked", "Deauthorized"]) | st.text(max_size=40)),
            source_type=draw(st.sampled_from(["Banking", "Accounting", "Commerce", "Other"]) | st.text(max_size=40)),
            integration_key=draw(st.sampled_from(["qhnd", "gbol"]) | st.text(max_size=20)),
            generated=generated,
            errors=draw(st.lists(CONNECTION_ERRORS, max_size=3)),
        )
    base["eventType"] = event_type
    if draw(st.integers(0, 3)) == 0:
        base["generatedDate"] = draw(DATES)
    # Now and then, a part of it replaced by any JSON.
    if draw(st.integers(0, 3)) == 0:
        base[draw(st.sampled_from(["id", "eventType", "generatedDate", "payload"]))] = draw(JSON)
    if draw(st.integers(0, 3)) == 0:
        payload = base["payload"] if isinstance(base["payload"], dict) else {}
        payload[draw(st.sampled_from(["referenceCompany", "connection", "dataTypes", "id"]))] = draw(JSON)
    return base


@st.composite
def deliveries(draw: st.DrawFn, company_id: str, connection_id: str) -> tuple[bytes, dict[str, str]]:
    kind = draw(st.sampled_from(["random", "signed-json", "signed-codat-like", "signed-codat-like"]))
    if kind == "random":
        raw = draw(st.binary(max_size=600))
        headers: dict[str, str] = {}
    else:
        document = draw(codat_like_events(company_id, connection_id) if kind == "signed-codat-like" else JSON)
        # Mostly a fresh id (a first delivery); sometimes any id, which may repeat (a redelivery).
        fresh = draw(st.integers(0, 9)) < 8
        message_id = f"msg_{uuid.uuid4().hex}" if fresh else draw(st.text(PRINTABLE, min_size=1, max_size=256))
        raw, headers = signed(json.dumps(document).encode(), message_id=message_id)
    # Random header values, often under the real names, on top of (or instead of) the signature.
    extra = draw(st.dictionaries(st.sampled_from(HEADER_NAMES) | HEADER_TEXT, HEADER_TEXT, max_size=4))
    return raw, {**headers, **extra} if draw(st.booleans()) else {**extra, **headers}


@pytest.fixture
def company_with_connection(api: LocalApi, new_company: Callable[..., Any]) -> tuple[str, str]:
    company_id = new_company(journey="onboarding")["companyId"]
    response = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
    assert response.status == 201, response.text
    return company_id, response.body["connectionId"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_delivery_however_broken_gets_a_5xx(
    api: LocalApi, company_with_connection: tuple[str, str], data: st.DataObject
) -> None:
    raw, headers = data.draw(deliveries(*company_with_connection))

    # The handler must answer (LocalApi calls it directly: an exception would fail here) ...
    response = api.post(WEBHOOK, body=raw, headers=headers)

    # ... and never with a status that makes Codat retry for a day
    event(f"{response.status} {response.body.get('code') if response.body else ''}")
    assert response.status in (204, 400, 401, 413), (response.status, response.text)
    if response.status != 204:
        assert response.header("content-type") == "application/problem+json"


# -- log levels: WARNING only for what needs a look ----------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "message", "level"),
    [
        # Codat's notice of a company we created: routine
        (
            lambda: company_event("company.created", {"id": str(uuid.uuid4()), "name": "New Ltd"}),
            "codat notice",
            "INFO",
        ),
        # The echo of an erasure: Codat says a company we no longer hold was deleted
        (
            lambda: company_event("company.deleted", {"id": str(uuid.uuid4()), "name": "Gone Ltd"}),
            "webhook parked",
            "INFO",
        ),
        # The client ran out of Codat quota: an operator should know
        (lambda: envelope("client.rateLimit.reached", {}), "codat notice", "WARNING"),
        # A connection of a company we never had: something is off
        (unknown_company_event, "webhook parked", "WARNING"),
    ],
    ids=["company-created", "company-deleted-after-erasure", "rate-limit-reached", "unknown-connection"],
)
def test_only_webhooks_that_need_a_look_are_logged_as_warnings(
    api: LocalApi, caplog: pytest.LogCaptureFixture, event: Callable[[], dict[str, Any]], message: str, level: str
) -> None:
    # Given an authentic event
    raw, headers = signed(event())

    # When Codat delivers it
    answer = api.post(WEBHOOK, body=raw, headers=headers)

    # Then it is acknowledged and logged once, at the level an operator's alerting expects
    assert answer.status == 204, answer.text
    assert [r.levelname for r in caplog.records if r.getMessage() == message] == [level]
