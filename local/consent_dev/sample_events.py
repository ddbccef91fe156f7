"""The sample events in events/ (`sam local invoke -e events/<name>.json`), built from code so they never drift,
and the world they assume (the customer, company and connection they name), for tests and local runs."""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

from consent.codat.models import CUSTOMER_TAG
from consent.domain.journeys import JourneyDefinition, evaluate, load_catalog
from consent.domain.ledger import entry
from consent.domain.records import CompanyRecord
from consent.domain.resources import Actor, ConnectionStatus, LedgerEntryType, SourceType
from consent.services import Services
from consent.store.dynamodb import company_pk, ledger_sk
from consent.usecases.webhooks import Outcome, apply_webhook
from consent.webhooks.codat_events import WebhookEnvelope
from consent_dev.aws import REGION
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import DEV_CUSTOMER_REF_KEY, DEV_WEBHOOK_SECRET, connection_event, read_event, signed
from consent_dev.gateway import http_event
from consent_dev.template import REPO_ROOT, Route, routes

EVENTS_DIR = REPO_ROOT / "events"

# A deployed API as the samples show it: documentation values (TEST-NET addresses, example.com), never real ones.
ACCOUNT_ID = "123456789012"
API_ID = "k3x9q2w7ma"
DOMAIN = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
ISSUER = "https://login.example-bank.com/"
AUDIENCE = "consent-web-app"
CUSTOMER_IP = "203.0.113.42"
CODAT_IP = "198.51.100.17"
APP_ORIGIN = "https://app.example-bank.com"
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)
SVIX = "Svix-Webhooks/1.66.0 (sender-KZJ0o; +https://www.svix.com/http-sender/)"
TABLE_STREAM_ARN = (
    f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/consent-journey-ConsentTable-1XK7Q2M4T9ZB"
    "/stream/2026-01-05T08:12:44.118"
)
OUTBOX_RELAY = "OutboxRelayFunction"
RECONCILE = "ReconcileFunction"
LIFECYCLE = "LifecycleFunction"
# The rule each schedule's events come from (CloudFormation names it after the function and the event).
SCHEDULE_RULE_ARNS = {
    RECONCILE: f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/consent-journey-ReconcileFunctionReconcileSche-1Q2W3E4R5T6Y",
    LIFECYCLE: f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/consent-journey-LifecycleFunctionLifecycleSche-7U8I9O0P1A2S",
}

# When the API samples were sent. Fixed, so that regenerating them changes nothing; only the webhook samples carry
# the time they are generated at (a signature is accepted for 5 minutes).
SAMPLE_TIME = datetime(2026, 1, 15, 9, 30, 12, tzinfo=UTC)

COMPANY_NAME = "Acme Bakery Ltd"  # also the name in consent_dev.codat_webhooks' referenceCompany
COMPANY_DESCRIPTION = "Artisan bakery, two shops in Leeds"
COMPANY_EXTERNAL_REF = "BANK-CUST-0042118"
SAMPLE_JOURNEY = "onboarding"
BANK_PLATFORM_KEY = "qhnd"  # Codat's banking sandbox
BANK_PLATFORM_NAME = "Codat Banking Sandbox"
_ID_NAMESPACE = uuid.UUID("0c3a6a52-57a4-4d57-9f0e-1f3d2b6c8e41")


@dataclass(frozen=True)
class SampleIds:
    """The ids the samples name: the caller (the JWT's `sub`), their Codat company and its bank connection."""

    customer_id: str = "764e073c-1f54-44bd-979b-5c888e104025"
    company_id: str = "a093c617-5007-45e4-a2d3-694097b1f467"
    connection_id: str = "5a94682b-a0a2-4e84-8a70-597fe79b4e69"

    def path_parameter(self, name: str) -> str:
        return {"companyId": self.company_id, "connectionId": self.connection_id}[name]


SAMPLE_IDS = SampleIds()


class World(IntEnum):
    """What exists before a sample is sent; each stage includes the ones before it."""

    EMPTY = 0
    COMPANY = 1  # the customer's company, onboarding started, in Codat and in our table
    CONNECTION_PENDING = 2  # and its bank connection, created but not yet authorized
    CONNECTION_LINKED = 3  # authorized by the customer
    JOURNEY_COMPLETE = 4  # and its first read finished: onboarding is complete


@dataclass(frozen=True)
class Sample:
    """One file in events/: what it is, the function it goes to, and what it answers in its world."""

    name: str
    function: str  # the template's logical id
    world: World
    status: int | None  # the HTTP status it is answered with (None: not an HTTP event)
    build: Callable[[SampleIds, datetime], dict[str, Any]]

    @property
    def file_name(self) -> str:
        return f"{self.name}.json"

    @property
    def is_webhook(self) -> bool:
        return self.function == _route("POST /webhooks/codat").function


# -- API Gateway HTTP API (payload 2.0) -------------------------------------------------------------------------


def _route(route_key: str) -> Route:
    found = [route for route in routes() if route.route_key == route_key]
    if len(found) != 1:
        raise KeyError(f"template.yaml has no route {route_key!r}")
    return found[0]


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def _request_id(name: str) -> str:
    # API Gateway's HTTP API request ids look like `Xk3p9QbLjoEEJ2A=`.
    return base64.b64encode(_digest("request", name)[:11]).decode()


def _trace_id(name: str, at: datetime) -> str:
    return f"Root=1-{int(at.timestamp()):08x}-{_digest('trace', name)[:12].hex()}"


def jwt_claims(ids: SampleIds, at: datetime) -> dict[str, str]:
    """The claims API Gateway's JWT authorizer passes on: every value a string."""
    issued = int((at - timedelta(minutes=7)).timestamp())
    return {
        "sub": ids.customer_id,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": str(issued),
        "exp": str(issued + 3600),
        "scope": "openid profile",
    }


def _bearer(claims: dict[str, str]) -> str:
    """An unsigned stand-in for the customer's token (API Gateway checked the real one; functions never read it)."""

    def part(value: dict[str, Any] | bytes) -> str:
        raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    claims_json = {**claims, "iat": int(claims["iat"]), "exp": int(claims["exp"])}
    return ".".join([part({"alg": "RS256", "kid": "sample", "typ": "JWT"}), part(claims_json), part(b"not-signed")])


def _deployed(event: dict[str, Any], name: str, at: datetime, source_ip: str) -> dict[str, Any]:
    """`event` as API Gateway builds it for the deployed API (rather than for the local stand-in)."""
    context = event["requestContext"]
    context.update(
        accountId=ACCOUNT_ID,
        apiId=API_ID,
        domainName=DOMAIN,
        domainPrefix=API_ID,
        requestId=_request_id(name),
        time=at.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        timeEpoch=int(at.timestamp() * 1000),
    )
    context["http"]["sourceIp"] = source_ip
    return event


def api_request(
    name: str,
    route_key: str,
    *,
    query: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Callable[[SampleIds, datetime], dict[str, Any]]:
    """A customer's request from the bank's web app, through the JWT authorizer."""
    route = _route(route_key)

    def build(ids: SampleIds, _: datetime) -> dict[str, Any]:
        parameters = {p: ids.path_parameter(p) for p in re.findall(r"\{(\w+)\}", route.path)}
        raw_body = None if body is None else json.dumps(body, separators=(",", ":"))
        claims = jwt_claims(ids, SAMPLE_TIME)
        all_headers = {
            "accept": "application/json",
            "accept-encoding": "gzip, deflate, br",
            "accept-language": "en-GB,en;q=0.9",
            "authorization": f"Bearer {_bearer(claims)}",
            **({"content-length": str(len(raw_body.encode())), "content-type": "application/json"} if raw_body else {}),
            "host": DOMAIN,
            "origin": APP_ORIGIN,
            "referer": f"{APP_ORIGIN}/",
            "user-agent": BROWSER,
            "x-amzn-trace-id": _trace_id(name, SAMPLE_TIME),
            "x-forwarded-for": CUSTOMER_IP,
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            **(headers or {}),
        }
        event = http_event(
            route,
            route.path.format(**parameters),
            path_parameters=parameters or None,
            query=query,
            headers=all_headers,
            body=raw_body,
            request_id=_request_id(name),
        )
        event = _deployed(event, name, SAMPLE_TIME, CUSTOMER_IP)
        # `scopes` is null: no route asks for OAuth scopes, so API Gateway checks none and passes none.
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
        return event

    return build


# -- Codat's webhooks, signed ------------------------------------------------------------------------------------


def _codat_connection_event(event_type: str, ids: SampleIds, status: str, generated: datetime) -> dict[str, Any]:
    body = connection_event(
        event_type,
        company_id=ids.company_id,
        connection_id=ids.connection_id,
        status=status,
        integration_key=BANK_PLATFORM_KEY,
        source_type="Banking",
        platform_name=BANK_PLATFORM_NAME,
        generated=generated,
    )
    # As Codat sends it: the company as tagged by the company step, `created` without fractional seconds.
    body["payload"]["referenceCompany"].update(
        description=COMPANY_DESCRIPTION, tags={CUSTOMER_TAG: sample_customer_ref(ids)}
    )
    body["payload"]["connection"]["created"] = f"{SAMPLE_TIME - timedelta(hours=1):%Y-%m-%dT%H:%M:%S}Z"
    return body


def _initial_read(ids: SampleIds, generated: datetime) -> dict[str, Any]:
    body = read_event(company_id=ids.company_id, connection_ids=[ids.connection_id], initial=True, generated=generated)
    body["payload"]["referenceCompany"].update(
        description=COMPANY_DESCRIPTION, tags={CUSTOMER_TAG: sample_customer_ref(ids)}
    )
    return body


def webhook_delivery(
    name: str,
    message_id: str,
    codat_event: Callable[[SampleIds, datetime], dict[str, Any]],
    *,
    generated_before: timedelta,
) -> Callable[[SampleIds, datetime], dict[str, Any]]:
    """Codat's delivery (through Svix) of one event to POST /webhooks/codat, signed with the dev secret at `now`."""
    route = _route("POST /webhooks/codat")

    def build(ids: SampleIds, now: datetime) -> dict[str, Any]:
        body = codat_event(ids, now - generated_before)
        body["id"] = str(uuid.uuid5(_ID_NAMESPACE, name))
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {
            "accept": "*/*",
            "content-length": str(len(raw)),
            "content-type": "application/json",
            "host": DOMAIN,
            "user-agent": SVIX,
            "webhook-id": message_id,
            "webhook-signature": "",
            "webhook-timestamp": "",
            "x-amzn-trace-id": _trace_id(name, SAMPLE_TIME),
            "x-forwarded-for": CODAT_IP,
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        }
        event = http_event(route, route.path, headers=headers, body=raw.decode(), request_id=_request_id(name))
        return resign(_deployed(event, name, now, CODAT_IP), now)

    return build


def resign(event: dict[str, Any], at: datetime, secret: str = DEV_WEBHOOK_SECRET) -> dict[str, Any]:
    """The same webhook delivery (same `webhook-id`, same body) signed at `at`, as Codat's retry would be."""
    event = copy.deepcopy(event)
    headers = event["headers"]
    _, fresh = signed(event["body"].encode(), secret, message_id=headers["webhook-id"], timestamp=int(at.timestamp()))
    headers["webhook-timestamp"] = fresh["webhook-timestamp"]
    headers["webhook-signature"] = fresh["webhook-signature"]
    event["requestContext"].update(time=at.strftime("%d/%b/%Y:%H:%M:%S +0000"), timeEpoch=int(at.timestamp()) * 1000)
    return event


def signed_at(event: dict[str, Any]) -> datetime:
    """When a webhook sample was signed."""
    return datetime.fromtimestamp(int(event["headers"]["webhook-timestamp"]), UTC)


# -- the consent ledger's stream, as the outbox relay receives it --------------------------------------------------


def ledger_stream(name: str) -> Callable[[SampleIds, datetime], dict[str, Any]]:
    """One new ledger entry (the bank connection became Linked) on the table's stream, after the template's filter."""

    def build(ids: SampleIds, _: datetime) -> dict[str, Any]:
        journey = load_catalog().get(SAMPLE_JOURNEY)
        assert journey is not None
        company = company_record(ids, journey, SAMPLE_TIME - timedelta(hours=1))
        linked = entry(
            company,
            LedgerEntryType.CONNECTION_LINKED,
            actor=Actor.CODAT,
            at=SAMPLE_TIME,
            entry_id="webhook:msg_ganisLWG1ptsNfZDObyUjD8qLSC",
            connection_id=ids.connection_id,
            platform_key=BANK_PLATFORM_KEY,
            source_type=SourceType.BANKING,
            status=ConnectionStatus.LINKED,
        )
        # The ledger item as consent.store.dynamodb writes it (the relay test would fail on any drift).
        keys = {"PK": {"S": company_pk(ids.company_id)}, "SK": {"S": ledger_sk(linked)}}
        image = {**keys, "kind": {"S": "ledger"}, "type": {"S": linked.type}, "data": {"S": linked.model_dump_json()}}
        record = {
            "eventID": _digest("record", name)[:16].hex(),
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": {
                "ApproximateCreationDateTime": int(SAMPLE_TIME.timestamp()),
                "Keys": keys,
                "NewImage": image,
                "SequenceNumber": "4421584500000000017450439091",
                "SizeBytes": len(json.dumps(image)),
                "StreamViewType": "NEW_IMAGE",
            },
            "eventSourceARN": TABLE_STREAM_ARN,
        }
        return {"Records": [record]}

    return build


# -- the reconciliation schedule -----------------------------------------------------------------------------------


def scheduled_event(name: str, function: str) -> Callable[[SampleIds, datetime], dict[str, Any]]:
    """EventBridge's event for one run of `function`'s schedule (the function reads nothing from it)."""

    def build(_: SampleIds, __: datetime) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid5(_ID_NAMESPACE, name)),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": f"{SAMPLE_TIME:%Y-%m-%dT%H:%M}:00Z",
            "region": REGION,
            "resources": [SCHEDULE_RULE_ARNS[function]],
            "detail": {},
        }

    return build


# -- the samples ---------------------------------------------------------------------------------------------------


def _samples() -> tuple[Sample, ...]:
    def api(name: str, route_key: str, world: World, status: int, **request: Any) -> Sample:
        return Sample(name, _route(route_key).function, world, status, api_request(name, route_key, **request))

    def webhook(name: str, world: World, message_id: str, event: Callable[..., dict[str, Any]], ago: int) -> Sample:
        build = webhook_delivery(name, message_id, event, generated_before=timedelta(seconds=ago))
        return Sample(name, _route("POST /webhooks/codat").function, world, 204, build)

    company = World.JOURNEY_COMPLETE  # the everyday state: a customer who onboarded and can manage their consent
    return (
        api(
            "post_companies",
            "POST /companies",
            World.EMPTY,
            201,
            body={
                "name": COMPANY_NAME,
                "journey": SAMPLE_JOURNEY,
                "description": COMPANY_DESCRIPTION,
                "externalRef": COMPANY_EXTERNAL_REF,
            },
            headers={"idempotency-key": "3f2b8c1e-7d4a-4f0b-9a6e-2c5d8e1f4a7b"},
        ),
        api(
            "post_company_journeys",
            "POST /companies/{companyId}/journeys",
            company,
            200,
            body={"journey": "loan_application"},
        ),
        api("get_companies", "GET /companies", company, 200, query={"limit": "20"}),
        api("get_company", "GET /companies/{companyId}", company, 200),
        api("get_company_connections", "GET /companies/{companyId}/connections", company, 200),
        api("get_company_events", "GET /companies/{companyId}/events", company, 200, query={"limit": "50"}),
        api("get_journeys", "GET /journeys", World.EMPTY, 200),
        api("get_integrations", "GET /integrations", World.EMPTY, 200, query={"sourceType": "accounting"}),
        api(
            "post_company_connections",
            "POST /companies/{companyId}/connections",
            company,
            201,
            body={"platformKey": "gbol", "consentVersion": "2025-11"},
        ),
        api("get_company_access_token", "GET /companies/{companyId}/access-token", company, 200),
        api(
            "post_company_sdk_sessions",
            "POST /companies/{companyId}/sdk-sessions",
            company,
            201,
            body={"component": "link", "consentVersion": "2025-11"},
        ),
        api("delete_company_connection", "DELETE /companies/{companyId}/connections/{connectionId}", company, 200),
        api("delete_company", "DELETE /companies/{companyId}", company, 204),
        webhook(
            "webhook_connection_connected",
            World.CONNECTION_PENDING,
            "msg_ganisLWG1ptsNfZDObyUjD8qLSC",
            lambda ids, at: _codat_connection_event("connection.connected", ids, "Linked", at),
            ago=90,
        ),
        webhook(
            "webhook_read_completed_initial",
            World.CONNECTION_LINKED,
            "msg_9yju6EDUx1I9WulO2xsZSMuCWbh",
            _initial_read,
            ago=60,
        ),
        webhook(
            "webhook_connection_disconnected",
            World.JOURNEY_COMPLETE,
            "msg_nUjDVa6mxGQDguY30QQ6E1G5L1B",
            lambda ids, at: _codat_connection_event("connection.disconnected", ids, "Deauthorized", at),
            ago=30,
        ),
        Sample(
            "ledger_stream_connection_linked",
            OUTBOX_RELAY,
            World.EMPTY,
            None,
            ledger_stream("ledger_stream_connection_linked"),
        ),
        Sample(
            "schedule_reconcile",
            RECONCILE,
            World.JOURNEY_COMPLETE,
            None,
            scheduled_event("schedule_reconcile", RECONCILE),
        ),
        Sample(
            "schedule_lifecycle",
            LIFECYCLE,
            World.JOURNEY_COMPLETE,
            None,
            scheduled_event("schedule_lifecycle", LIFECYCLE),
        ),
    )


SAMPLES = _samples()
SAMPLES_BY_NAME = {sample.name: sample for sample in SAMPLES}


def render(event: dict[str, Any]) -> str:
    """A sample's file content."""
    return json.dumps(event, indent=2) + "\n"


def write_samples(out: Path, *, now: datetime, ids: SampleIds = SAMPLE_IDS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in SAMPLES:
        path = out / sample.file_name
        path.write_text(render(sample.build(ids, now)), encoding="utf-8")
        written.append(path)
    return written


# -- the world the samples assume ------------------------------------------------------------------------------------


def sample_customer_ref(ids: SampleIds) -> str:
    """The customer reference Codat keeps on the samples' company: keyed with `make dev`'s documented fake key."""
    return hmac.new(DEV_CUSTOMER_REF_KEY.encode(), ids.customer_id.encode(), hashlib.sha256).hexdigest()


def company_record(ids: SampleIds, journey: JourneyDefinition, at: datetime) -> CompanyRecord:
    """The samples' company as the company step records it, its journey just started."""
    return CompanyRecord(
        company_id=ids.company_id,
        customer_id=ids.customer_id,
        name=COMPANY_NAME,
        description=COMPANY_DESCRIPTION,
        external_ref=COMPANY_EXTERNAL_REF,
        created_at=at,
        updated_at=at,
        journeys=[evaluate(journey, [], started_at=at, previous=None, now=at)],
        customer_ref_keyed=True,
    )


def seed(
    world: World, services: Services, simulator: CodatSimulator, *, at: datetime, ids: SampleIds = SAMPLE_IDS
) -> None:
    """Make `world` exist, as of `at`: in Codat (the simulator) and in our table, written the way the product
    writes it (the store for the company, Codat's webhooks through the webhook use case for the connection)."""
    if world < World.COMPANY:
        return
    journey = services.catalog.get(SAMPLE_JOURNEY)
    if journey is None:
        raise LookupError(f"the samples need the {SAMPLE_JOURNEY!r} journey")
    company = company_record(ids, journey, at)
    _codat_company(simulator, ids)
    actor = Actor.customer(ids.customer_id)
    services.store.create_company(
        company,
        [
            entry(company, LedgerEntryType.COMPANY_CREATED, actor=actor, at=at),
            entry(
                company,
                LedgerEntryType.JOURNEY_STARTED,
                actor=actor,
                at=at,
                journeys=[journey.name],
                journey=journey.name,
                seq=1,
            ),
        ],
        None,
    )
    if world < World.CONNECTION_PENDING:
        return
    linked = world >= World.CONNECTION_LINKED
    _codat_bank_connection(simulator, ids, "Linked" if linked else "PendingAuth")
    history = [_codat_connection_event("connection.created", ids, "PendingAuth", at + timedelta(minutes=1))]
    if linked:
        history.append(_codat_connection_event("connection.connected", ids, "Linked", at + timedelta(minutes=2)))
    if world >= World.JOURNEY_COMPLETE:
        history.append(_initial_read(ids, at + timedelta(minutes=3)))
    for step, body in enumerate(history):
        envelope = WebhookEnvelope.model_validate(body)
        moment = envelope.generated_date
        then = Services(services.settings, store=services.store, catalog=services.catalog, clock=_stopped_at(moment))
        applied = apply_webhook(then, f"msg_seed_{step}_{envelope.event_type}", envelope)
        if applied.outcome != Outcome.APPLIED:
            raise RuntimeError(f"seeding {envelope.event_type}: {applied.outcome}")


def _stopped_at(moment: datetime) -> Callable[[], datetime]:
    """A clock that reads `moment`: the services that apply a seeded webhook live at the webhook's time."""
    return lambda: moment


def _codat_company(simulator: CodatSimulator, ids: SampleIds) -> None:
    codat_company = simulator.add_company(
        COMPANY_NAME, description=COMPANY_DESCRIPTION, tags={CUSTOMER_TAG: sample_customer_ref(ids)}
    )
    # Codat picks its own ids; the samples name theirs, so the fake's company is moved to the documented id.
    simulator.companies[ids.company_id] = simulator.companies.pop(codat_company.id)
    codat_company.id = ids.company_id


def _codat_bank_connection(simulator: CodatSimulator, ids: SampleIds, status: str) -> None:
    connection = simulator.add_connection(ids.company_id, BANK_PLATFORM_KEY, status=status)  # type: ignore[arg-type]
    connections = simulator.companies[ids.company_id].connections
    connections[ids.connection_id] = connections.pop(connection.id)
    connection.id = ids.connection_id


# -- `make events` ---------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make-events",
        description="Write the sample events for `sam local invoke -e` (the webhook samples signed now, with the "
        "documented dev secret: valid for 5 minutes).",
    )
    parser.add_argument("--out", type=Path, help=f"where to write them (default: {EVENTS_DIR})")
    parser.add_argument("--customer-id", default=SAMPLE_IDS.customer_id, help="the JWT's sub")
    parser.add_argument("--company-id", default=SAMPLE_IDS.company_id)
    parser.add_argument("--connection-id", default=SAMPLE_IDS.connection_id)
    parser.add_argument(
        "--stack",
        help="a deployed stack's name: sign the webhook samples with its own CodatWebhookSecret (read with your AWS "
        "credentials; never printed), into .artifacts/events-<stack>/ unless --out says otherwise",
    )
    args = parser.parse_args(argv)
    ids = SampleIds(args.customer_id, args.company_id, args.connection_id)
    if ids != SAMPLE_IDS and args.out is None and args.stack is None:
        parser.error("events/ keeps the documented ids: write samples for other ids elsewhere (--out DIR)")
    out: Path = args.out or (REPO_ROOT / ".artifacts" / f"events-{args.stack}" if args.stack else EVENTS_DIR)
    now = datetime.now(UTC)
    written = write_samples(out, now=now, ids=ids)
    signer = "the documented dev secret"
    if args.stack:
        secret = stack_webhook_secret(args.stack)
        for path in written:
            event = json.loads(path.read_text(encoding="utf-8"))
            if event.get("rawPath") == "/webhooks/codat":
                path.write_text(render(resign(event, now, secret)), encoding="utf-8")
        signer = f"stack {args.stack}'s own secret"
    until = (now + timedelta(minutes=5)).strftime("%H:%M:%S")
    print(f"wrote {len(written)} sample events to {out} (webhook samples signed with {signer} until {until} UTC)")
    return 0


def stack_webhook_secret(stack: str, session: Any = None) -> str:
    """The webhook secret a deployed stack verifies with: its CodatWebhookSecret (the first, during a rotation)."""
    import boto3  # noqa: PLC0415 - only for a deployed stack

    session = session or boto3.session.Session()
    outputs = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    arn = next((o["OutputValue"] for o in outputs if o["OutputKey"] == "CodatWebhookSecretArn"), None)
    if arn is None:
        raise SystemExit(f"stack {stack} has no CodatWebhookSecretArn output")
    value = session.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    return str(value).split()[0]
