"""The fault matrix: every route of template.yaml, the webhook handler, the outbox relay and reconciliation, each
against every way what it depends on can fail — Codat (429 with Retry-After, 500, 503, a timeout, a reset
connection, malformed JSON, 401), DynamoDB (throttling, a conditional-check race, a transaction conflict) and SNS.

This module runs the matrix; the matrix itself is data, in the `fault_matrix` package next to it: its `LINES` (one
per row, with the expected outcome of every cell) are the parametrization of `test_each_cell`, and docs/reliability.md's
"Fault matrix" table is `markdown_table(LINES)`; a test keeps the two the same. Each cell, Given the row's state:
When the failure is armed and the request sent, Then the status and problem `code` are the cell's; the failing
dependency saw what the cell says (every attempt of the retry budget, Codat's Retry-After honoured and passed on,
or no call at all where the failure cannot reach the row); what is stored is the table exactly as before (nothing
half-done) or the row's change once; what is published is the consent events of the new ledger entries (the
outbox), through the relay to a subscriber in the SNS column; and once the failure clears, the retry (or, after a
success, the same request again) ends as the row's success with nothing twice."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries.standard import ExponentialBackoff
from fault_matrix import LINES, MATRIX
from fault_matrix.cells import (
    C401,
    C429,
    C500,
    C503,
    DYNAMODB_FAILURES,
    MALFORMED,
    NO_CODAT_CALL,
    NO_DYNAMODB_CALL,
    RACE,
    RESET,
    SNS,
    THROTTLING,
    TIMEOUT,
    Failure,
    Outcome,
    Stored,
)
from fault_matrix.document import markdown_table

from consent.domain.requests import CreateCompanyRequest, CreateConnectionRequest, OpenSdkSessionRequest
from consent.domain.resources import utc_now
from consent.events import LEDGER_EVENT_TYPES, CloudEvent
from consent.publisher import EventPublisher, PublishFailure, SnsEventPublisher
from consent.services import Services, aws_client
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore, company_pk
from consent.store.positions import sortable
from consent.usecases.companies import create_company
from consent.usecases.connections import create_connection, open_sdk_session
from consent.usecases.quotas import spend_codat_allowance
from consent.usecases.webhooks import HANDLED_EVENT_TYPES
from consent_dev.aws import Deployed, MotoServer, deploy, deploy_tables, drop_tables
from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.codat_webhooks import connection_event, read_event, signed
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.local_api import ApiResponse, LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue, ReceivedEvent
from consent_dev.template import functions, resolve, routes

pytestmark = pytest.mark.integration

RELIABILITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
ALICE = "customer-alice"
CODAT_ATTEMPTS = 4  # the client's attempt budget in tests (conftest's Codat client)
CODAT_RETRY_BUDGET = 20.0  # seconds
RETRY_AFTER = 2  # what Codat's 429 says


# -- how each Codat failure is played ----------------------------------------------------------------------------

# How each Codat failure is played by the simulator, for every request while it lasts. A timeout and malformed
# JSON come after Codat did the work (the answer is lost or garbled); the others before it does anything.
CODAT_FAULTS: dict[Failure, Fault] = {
    C429: Fault(kind="status", status=429, retry_after=RETRY_AFTER, times=None),
    C500: Fault(kind="status", status=500, times=None),
    C503: Fault(kind="status", status=503, times=None),
    TIMEOUT: Fault(kind="lose_response", error="read_timeout", times=None),
    RESET: Fault(kind="drop", error="remote_protocol", times=None),
    MALFORMED: Fault(kind="malformed", perform=True, times=None),
    C401: Fault(kind="status", status=401, times=None),
}


# -- the world a cell acts on -------------------------------------------------------------------------------------

Item = dict[str, Any]


@dataclass(frozen=True)
class Result:
    """What a row's request came back with: an HTTP answer, or what a function run did."""

    status: int | str
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())


def answered(response: ApiResponse) -> Result:
    code = response.body.get("code") if response.status >= 400 and isinstance(response.body, dict) else None
    return Result(response.status, code, response.headers, response.body)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _operation(request: Any) -> str:
    target = request.headers.get("X-Amz-Target", b"")
    return (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[-1]


class DynamoDBTrouble:
    """What DynamoDB does to the store's own boto3 client for chosen operations: error answers (throttling beyond
    botocore's retries, a cancelled transaction) or a concurrent writer that gets in just before the request."""

    WRITES = ("TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
    EVERY = (*WRITES, "GetItem", "Query", "Scan")

    def __init__(self, client: Any) -> None:
        self._plans: dict[str, list[Callable[[Any], AWSResponse | None]]] = {}
        client.meta.events.register("before-send.dynamodb.*", self._before_send)

    @property
    def armed(self) -> int:
        return sum(len(plans) for plans in self._plans.values())

    def clear(self) -> None:
        self._plans.clear()

    def throttle(self, operation: str, *, times: int = 3) -> None:
        """`times` answers of throttling (botocore makes three attempts of each call)."""
        for _ in range(times):
            self._plan(operation, lambda request: _error(request, "ProvisionedThroughputExceededException"))

    def conflict(self, operation: str) -> None:
        """One answer as DynamoDB gives when another transaction holds an item this request writes."""
        self._plan(
            operation, lambda request: _cancelled(request, "TransactionConflict", "TransactionConflictException")
        )

    def condition_fails(self, operation: str) -> None:
        self._plan(
            operation, lambda request: _cancelled(request, "ConditionalCheckFailed", "ConditionalCheckFailedException")
        )

    def race(self, operation: str, racer: Callable[[], None]) -> None:
        """Run `racer` (a concurrent writer, on any client) right before the next `operation` is sent."""

        def run(_: Any) -> None:
            racer()

        self._plan(operation, run)

    def _plan(self, operation: str, plan: Callable[[Any], AWSResponse | None]) -> None:
        self._plans.setdefault(operation, []).append(plan)

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        plans = self._plans.get(_operation(request))
        if not plans:
            return None
        return plans.pop(0)(request)  # popped first: a racer's own requests pass


def _answer(request: Any, document: dict[str, Any]) -> AWSResponse:
    body = json.dumps(document).encode()
    return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, _Body(body))


def _error(request: Any, code: str) -> AWSResponse:
    return _answer(request, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code})


def _cancelled(request: Any, reason: str, single_item_code: str) -> AWSResponse:
    if _operation(request) != "TransactWriteItems":
        return _error(request, single_item_code)
    count = len(json.loads(request.body or b"{}").get("TransactItems", [])) or 1
    reasons = [{"Code": reason, "Message": reason}] + [{"Code": "None"}] * (count - 1)
    return _answer(
        request,
        {
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{reason}]",
            "CancellationReasons": reasons,
        },
    )


class SnsTrouble:
    """Makes a real boto3 SNS client receive SNS error answers, so the publisher's own handling runs."""

    def __init__(self, client: Any) -> None:
        self.remaining: list[str] = []
        client.meta.events.register("before-send.sns.PublishBatch", self._before_send)

    def fail(self, code: str, *, times: int = 1) -> None:
        self.remaining.extend([code] * times)

    def _before_send(self, request: Any, **_: Any) -> Any:
        if not self.remaining:
            return None
        code = self.remaining.pop(0)
        body = (
            '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{code}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        ).encode()
        return AWSResponse(request.url, 400, {"Content-Type": "text/xml"}, _Body(body))


class RefusingPublisher(EventPublisher):
    """SNS refusing every publish, for the functions that would publish (none of the API's does)."""

    def __init__(self) -> None:
        self.attempts = 0

    def publish(self, events: Sequence[CloudEvent]) -> list[PublishFailure]:
        self.attempts += len(events)
        return [PublishFailure(event.id, "SNS is down") for event in events]


class Relay:
    """The template's outbox relay on the cell's table, publishing through a real SNS client that `sns` can make
    fail, and a subscriber of the topic."""

    def __init__(self, world: World) -> None:
        assert world.settings.topic_arn
        client = aws_client("sns")
        self.sns = SnsTrouble(client)
        services = Services(
            world.settings, store=world.store, publisher=SnsEventPublisher(client, world.settings.topic_arn)
        )
        self.pump = StreamPump(world.settings.table_name, "OutboxRelayFunction", lambda: services, deployed=world.aws)
        self.queue = EventsQueue.subscribe(world.settings.topic_arn)

    def published(self) -> list[ReceivedEvent]:
        summary = self.pump.drain()
        assert summary.discarded == 0
        return self.queue.receive()


@dataclass
class World:
    api: LocalApi
    simulator: CodatSimulator
    services: Services
    store: DynamoDBConsentStore
    settings: Settings
    aws: Deployed
    clock: Any  # conftest's FakeClock
    dynamodb: DynamoDBTrouble
    items: Callable[[], list[Item]]
    authorize: Callable[..., None]
    relay: Relay | None = None

    def start_relay(self) -> Relay:
        """The relay, with everything committed so far already published (and received)."""
        self.relay = Relay(self)
        self.relay.published()
        return self.relay

    # -- state through the API, as the bank's app and Codat make it ----------------------------------------------

    def company(self, journey: str = "onboarding", *, key: str | None = None) -> str:
        headers = {"Idempotency-Key": key} if key else {}
        response = self.api.post(
            "/companies", customer=ALICE, json={"name": "Acme Bakery Ltd", "journey": journey}, headers=headers
        )
        assert response.status == 201, response.text
        return str(response.body["companyId"])

    def connection(self, company_id: str, platform_key: str = "qhnd") -> str:
        response = self.api.post(
            f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": platform_key}
        )
        assert response.status in (200, 201), response.text
        return str(response.body["connectionId"])

    def webhook(self, body: Mapping[str, Any], *, message_id: str | None = None) -> ApiResponse:
        raw, headers = signed(body, message_id=message_id)
        return self.api.post("/webhooks/codat", body=raw, headers=headers)

    def synced(self, company_id: str, connection_id: str) -> None:
        """Codat reports a later read of the connection (`read.completed`): a change to the company."""
        response = self.webhook(read_event(company_id=company_id, connection_ids=[connection_id], initial=False))
        assert response.status == 204, response.text

    def get(self, path: str) -> ApiResponse:
        return self.api.get(path, customer=ALICE)

    def connections(self, company_id: str) -> list[dict[str, Any]]:
        response = self.get(f"/companies/{company_id}/connections")
        assert response.status == 200, response.text
        return list(response.body["items"])

    def ledger(self, company_id: str) -> list[dict[str, Any]]:
        response = self.api.get(f"/companies/{company_id}/events", customer=ALICE, query={"limit": "100"})
        assert response.status == 200, response.text
        return list(response.body["items"])


# -- the table, as one Scan sees it ---------------------------------------------------------------------------------


def snapshot(items: list[Item]) -> list[Item]:
    """Every item but bookkeeping: the Idempotency-Key records (claimed and released by a failed attempt), the
    customer's count of Codat-calling requests (spent before anything else: a failed request still counts) and the
    lifecycle's count of the day's keep-alive Codat requests (the same)."""
    return sorted(
        (i for i in items if _kind(i) not in ("idempotency", "rate") and not _keep_alive_count(i)),
        key=lambda i: (i["PK"]["S"], i["SK"]["S"]),
    )


def keep_alive_spent(items: list[Item]) -> int:
    """The day's keep-alive Codat requests, as the lifecycle counts them against its budget."""
    return sum(int(i["count"]["N"]) for i in items if _keep_alive_count(i))


def _keep_alive_count(item: Item) -> bool:
    return bool(item["PK"]["S"] == "LIFECYCLE#keep-alive")


def claims_in_flight(items: list[Item]) -> list[Item]:
    return [i for i in items if _kind(i) == "idempotency" and i["state"]["S"] == "IN_PROGRESS"]


def ledger_keys(items: list[Item]) -> set[tuple[str, str]]:
    return {(i["PK"]["S"], i["SK"]["S"]) for i in items if _kind(i) == "ledger"}


def outbox_since(items: list[Item], keys: set[tuple[str, str]]) -> Counter[str]:
    """The consent events of the ledger entries written since `keys` were (what the relay publishes)."""
    new = [i for i in items if _kind(i) == "ledger" and (i["PK"]["S"], i["SK"]["S"]) not in keys]
    return Counter(LEDGER_EVENT_TYPES[i["type"]["S"]].value for i in new if i["type"]["S"] in LEDGER_EVENT_TYPES)


def _kind(item: Item) -> str:
    return str(item.get("kind", {}).get("S", ""))


# -- the rows -----------------------------------------------------------------------------------------------------

Context = dict[str, Any]


class Row:
    """One route, or function. Its request is sent once under the failure and once more after it clears."""

    name: str  # the matrix key: the template's route key, or the function
    success: int | str
    again: int | str | None = None  # the same request after a success (default: `success`)
    events: tuple[str, ...] = ()  # the consent events its change publishes
    write_op: str | None = None  # the DynamoDB call its change commits with
    read_op: str | None = None  # the DynamoDB call a read route reads with
    race_op: str | None = None  # where a concurrent writer gets in (default: `write_op`)
    throttle_op: str | None = None  # the DynamoDB call throttling is tried on (default: `write_op`, else `read_op`)
    racer_events: tuple[str, ...] = ()  # the consent events the concurrent writer's own change publishes
    codat_calls = 1  # the Codat calls its request makes while Codat fails, each with the client's whole budget
    store_retry_after = "1"

    def given(self, world: World) -> Context:
        return {}

    def when(self, world: World, ctx: Context) -> Result:
        raise NotImplementedError

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        """The row's change is made, once, here and in Codat (`result` is the answer that last made or saw it)."""

    def done_in_codat(self, world: World, ctx: Context) -> bool:
        return False

    def found_in_codat(self, world: World, ctx: Context) -> None:
        """After a retry of what Codat had done already: how the retry learnt it (Codat replays a keyed request
        by default, which `done` sees as one Codat connection, company or status)."""

    def racer(self, world: World, ctx: Context) -> None:
        raise NotImplementedError(f"{self.name} has no concurrent writer")

    def before_retry(self, world: World) -> None:
        """Anything the world does between the failure and the retry."""

    def unchanged(self, items: list[Item]) -> list[Item]:
        """What a cell that stores nothing leaves exactly as it was."""
        return snapshot(items)


class CreateCompany(Row):
    name = "POST /companies"
    success = again = 201
    events = ("consent.company.created",)
    write_op = "TransactWriteItems"
    race_op = "UpdateItem"  # claiming the Idempotency-Key
    body = {"name": "Acme Bakery Ltd", "journey": "onboarding"}

    def given(self, world: World) -> Context:
        return {"key": f"key-{uuid.uuid4().hex}"}

    def when(self, world: World, ctx: Context) -> Result:
        headers = {"Idempotency-Key": ctx["key"]}
        return answered(world.api.post("/companies", customer=ALICE, json=self.body, headers=headers))

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        [company] = [i for i in items if _kind(i) == "company"]
        company_id = company["PK"]["S"].removeprefix(company_pk(""))
        assert list(world.simulator.companies) == [company_id]  # one company in Codat, the one we recorded
        # the company, its two first ledger entries, and its customer's company count, once
        assert sorted(_kind(i) for i in snapshot(items)) == ["company", "ledger", "ledger", "quota"]
        [quota] = [i for i in items if _kind(i) == "quota"]
        assert quota["companies"]["N"] == "1"
        [claim] = [i for i in items if _kind(i) == "idempotency"]
        assert claim["state"]["S"] == "COMPLETED"
        assert result.body["companyId"] == company_id

    def done_in_codat(self, world: World, ctx: Context) -> bool:
        return len(world.simulator.companies) == 1

    def found_in_codat(self, world: World, ctx: Context) -> None:
        # Codat has forgotten the Idempotency-Key: the company is found by the tags we gave it, once.
        assert world.simulator.count("GET", "/companies") == 1

    def racer(self, world: World, ctx: Context) -> None:
        # Another container runs the same request (same key, same body) to its end first.
        request = CreateCompanyRequest.model_validate(self.body)
        assert create_company(world.services, ALICE, request, ctx["key"]).status == 201

    def before_retry(self, world: World) -> None:
        # The retry comes after Codat's 90-minute idempotency window: only our tags on the company can tell that
        # Codat already made it.
        world.simulator.forget_idempotency_keys()


class StartJourney(Row):
    name = "POST /companies/{companyId}/journeys"
    success = 200
    events = ("consent.journey.completed",)  # its bank connection, linked and read, counts at once
    write_op = "TransactWriteItems"
    racer_events = ("consent.sync.completed",)

    def given(self, world: World) -> Context:
        company_id = world.company("loan_application")
        connection_id = world.connection(company_id, "qhnd")
        world.authorize(company_id, connection_id)
        return {"company": company_id, "connection": connection_id}

    def when(self, world: World, ctx: Context) -> Result:
        path = f"/companies/{ctx['company']}/journeys"
        return answered(world.api.post(path, customer=ALICE, json={"journey": "onboarding"}))

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        company = world.get(f"/companies/{ctx['company']}").body
        assert [(j["journey"], j["status"]) for j in company["journeys"]] == [
            ("loan_application", "linking"),
            ("onboarding", "complete"),
        ]
        started = [e for e in world.ledger(ctx["company"]) if e["type"] == "journey.started"]
        assert [e["journey"] for e in started] == ["loan_application", "onboarding"]
        assert result.body["journeys"] == company["journeys"]

    def racer(self, world: World, ctx: Context) -> None:
        world.synced(ctx["company"], ctx["connection"])


class ReadRoute(Row):
    """A read: served from DynamoDB only."""

    success = 200
    read_op = "Query"
    path = ""

    def given(self, world: World) -> Context:
        company_id = world.company()
        return {"company": company_id, "connection": world.connection(company_id)}

    def when(self, world: World, ctx: Context) -> Result:
        return answered(world.get(self.path.format(**ctx)))


class ListCompanies(ReadRoute):
    name = "GET /companies"
    path = "/companies"

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        assert [c["companyId"] for c in result.body["items"]] == [ctx["company"]]


class GetCompany(ReadRoute):
    name = "GET /companies/{companyId}"
    path = "/companies/{company}"

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        assert result.body["companyId"] == ctx["company"]
        assert [c["connectionId"] for c in result.body["connections"]] == [ctx["connection"]]


class ListConnections(ReadRoute):
    name = "GET /companies/{companyId}/connections"
    path = "/companies/{company}/connections"

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        assert [c["connectionId"] for c in result.body["items"]] == [ctx["connection"]]


class ListEvents(ReadRoute):
    name = "GET /companies/{companyId}/events"
    path = "/companies/{company}/events"

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        types = [e["type"] for e in result.body["items"]]
        assert types == ["company.created", "journey.started", "connection.created"]


class ListJourneys(Row):
    name = "GET /journeys"
    success = 200

    def when(self, world: World, ctx: Context) -> Result:
        return answered(world.api.get("/journeys", customer=ALICE))

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        assert [j["name"] for j in result.body["items"]] == ["credit_check", "loan_application", "onboarding"]


class ListIntegrations(Row):
    name = "GET /integrations"
    success = 200
    write_op = "UpdateItem"  # the customer's count of Codat-calling requests

    def when(self, world: World, ctx: Context) -> Result:
        return answered(world.api.get("/integrations", customer=ALICE, query={"sourceType": "banking"}))

    def racer(self, world: World, ctx: Context) -> None:
        spend_codat_allowance(world.services, ALICE)  # the customer's other tab, counted first

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        assert "qhnd" in {i["platformKey"] for i in result.body["items"]}


class CreateConnection(Row):
    name = "POST /companies/{companyId}/connections"
    success = 201
    again = 200  # the same platform again: the connection is reused, with a fresh link
    events = ("consent.connection.created",)
    write_op = "TransactWriteItems"

    def given(self, world: World) -> Context:
        assert world.get("/integrations").status == 200  # a warm container: Codat's list is cached
        return {"company": world.company("loan_application")}

    def when(self, world: World, ctx: Context) -> Result:
        path = f"/companies/{ctx['company']}/connections"
        return answered(world.api.post(path, customer=ALICE, json={"platformKey": "qhnd"}))

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        [ours] = world.connections(ctx["company"])
        assert list(world.simulator.companies[ctx["company"]].connections) == [ours["connectionId"]]
        assert (ours["platformKey"], ours["status"]) == ("qhnd", "PendingAuth")
        assert result.body["connectionId"] == ours["connectionId"]
        assert result.body["linkUrl"]

    def done_in_codat(self, world: World, ctx: Context) -> bool:
        return len(world.simulator.companies[ctx["company"]].connections) == 1

    def racer(self, world: World, ctx: Context) -> None:
        # The customer's other tab asks for the same platform, and gets there first.
        request = CreateConnectionRequest.model_validate({"platformKey": "qhnd"})
        assert create_connection(world.services, ALICE, ctx["company"], request).created


class AccessToken(Row):
    name = "GET /companies/{companyId}/access-token"
    success = 200
    read_op = "GetItem"
    throttle_op = "GetItem"  # the owner check (the count before it goes on uncounted: see GET /integrations)
    write_op = "UpdateItem"  # the customer's count of Codat-calling requests

    def racer(self, world: World, ctx: Context) -> None:
        spend_codat_allowance(world.services, ALICE)

    def given(self, world: World) -> Context:
        return {"company": world.company()}

    def when(self, world: World, ctx: Context) -> Result:
        return answered(world.get(f"/companies/{ctx['company']}/access-token"))

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        assert result.body["expiresIn"] > 0
        assert result.body["accessToken"] not in json.dumps(items)  # handed over, never kept


class SdkSession(Row):
    name = "POST /companies/{companyId}/sdk-sessions"
    success = 201
    write_op = "TransactWriteItems"  # the session, on the company
    throttle_op = "Query"  # the company read, before Codat is asked for a token

    def given(self, world: World) -> Context:
        return {"company": world.company()}

    def when(self, world: World, ctx: Context) -> Result:
        body = {"component": "link", "consentVersion": "2026-10"}
        return answered(world.api.post(f"/companies/{ctx['company']}/sdk-sessions", customer=ALICE, json=body))

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        assert result.body["component"] == "link"
        assert result.body["accessToken"] not in json.dumps(items)  # handed over, never kept
        assert world.services.store.get_company(ALICE, ctx["company"]).company.sdk_sessions  # type: ignore[union-attr]

    def racer(self, world: World, ctx: Context) -> None:
        # The customer's other tab opens Codat's Connections component meanwhile: both sessions are kept.
        request = OpenSdkSessionRequest.model_validate({"component": "connections"})
        open_sdk_session(world.services, ALICE, ctx["company"], request)


class Revoke(Row):
    name = "DELETE /companies/{companyId}/connections/{connectionId}"
    success = 200
    events = ("consent.connection.unlinked", "consent.journey.action_required")
    write_op = "TransactWriteItems"
    racer_events = ("consent.sync.completed",)

    def given(self, world: World) -> Context:
        company_id = world.company()
        connection_id = world.connection(company_id)
        world.authorize(company_id, connection_id)  # Linked and read: the onboarding journey is complete
        return {"company": company_id, "connection": connection_id}

    def when(self, world: World, ctx: Context) -> Result:
        return answered(
            world.api.delete(f"/companies/{ctx['company']}/connections/{ctx['connection']}", customer=ALICE)
        )

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        [ours] = world.connections(ctx["company"])
        assert ours["status"] == "Unlinked"
        assert world.simulator.connection(ctx["company"], ctx["connection"]).status == "Unlinked"
        revoked = [e for e in world.ledger(ctx["company"]) if e["type"] == "consent.revoked"]
        assert [(e["actor"], e["connectionId"]) for e in revoked] == [(f"customer:{ALICE}", ctx["connection"])]
        assert world.get(f"/companies/{ctx['company']}").body["journeys"][0]["status"] == "action_required"
        assert (result.body["connectionId"], result.body["status"]) == (ctx["connection"], "Unlinked")

    def done_in_codat(self, world: World, ctx: Context) -> bool:
        return world.simulator.connection(ctx["company"], ctx["connection"]).status == "Unlinked"

    def racer(self, world: World, ctx: Context) -> None:
        world.synced(ctx["company"], ctx["connection"])


class Erase(Row):
    name = "DELETE /companies/{companyId}"
    success = 204
    again = 404  # erased: nothing left to erase
    events = ("consent.company.erased",)
    write_op = "TransactWriteItems"

    def given(self, world: World) -> Context:
        company_id = world.company(key=f"key-{uuid.uuid4().hex}")  # the remembered answer holds the name
        return {"company": company_id, "connection": world.connection(company_id)}

    def when(self, world: World, ctx: Context) -> Result:
        return answered(world.api.delete(f"/companies/{ctx['company']}", customer=ALICE))

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        # The tombstone, and nothing else (but the id of a webhook a racer delivered, remembered for 8 days, and
        # the create request's Idempotency-Key, spent: its hash and nothing else)
        left = [i for i in items if _kind(i) not in ("webhook", "idempotency", "rate", "quota")]
        assert [(i["PK"]["S"], i["type"]["S"]) for i in left] == [(company_pk(ctx["company"]), "company.erased")]
        keys = [i for i in items if _kind(i) == "idempotency"]
        assert [(set(i), i["state"]["S"]) for i in keys] == [({"PK", "SK", "kind", "state", "expiresAt"}, "ERASED")]
        # The customer's company count is one fewer (its items are keyed by a hash: nothing names the customer)
        [quota] = [i for i in items if _kind(i) == "quota"]
        assert quota["companies"]["N"] == "0"
        assert ALICE not in json.dumps([i for i in items if _kind(i) in ("quota", "rate")])
        assert "Acme Bakery Ltd" not in json.dumps(items)
        assert ctx["company"] not in world.simulator.companies
        for path in ("", "/connections", "/events"):
            assert world.get(f"/companies/{ctx['company']}{path}").status == 404
        if result.status == 404:
            assert result.code == "not_found"

    def done_in_codat(self, world: World, ctx: Context) -> bool:
        return ctx["company"] not in world.simulator.companies

    def racer(self, world: World, ctx: Context) -> None:
        world.synced(ctx["company"], ctx["connection"])


class Webhook(Row):
    name = "POST /webhooks/codat"
    success = 204
    events = ("consent.connection.linked", "consent.journey.linked")
    write_op = "TransactWriteItems"
    store_retry_after = "5"

    def given(self, world: World) -> Context:
        company_id = world.company()
        connection_id = world.connection(company_id)
        body = connection_event(
            "connection.connected", company_id=company_id, connection_id=connection_id, status="Linked"
        )
        return {"company": company_id, "connection": connection_id, "body": body, "id": f"msg_{uuid.uuid4().hex}"}

    def when(self, world: World, ctx: Context) -> Result:
        return answered(world.webhook(ctx["body"], message_id=ctx["id"]))

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        [ours] = world.connections(ctx["company"])
        assert ours["status"] == "Linked"
        assert [e["type"] for e in world.ledger(ctx["company"])].count("connection.linked") == 1
        assert len([i for i in items if _kind(i) == "webhook"]) == 1  # remembered once

    def racer(self, world: World, ctx: Context) -> None:
        # Codat (through Svix) delivers the same message again at the same moment.
        assert world.webhook(ctx["body"], message_id=ctx["id"]).status == 204


class OutboxRelay(Row):
    name = "outbox relay"
    success = "published"

    def given(self, world: World) -> Context:
        relay = world.relay = Relay(world)
        companies = [world.company(), world.company()]
        return {"companies": companies, "received": [], "relay": relay}

    def when(self, world: World, ctx: Context) -> Result:
        relay: Relay = ctx["relay"]
        summary = relay.pump.drain(max_invocations=3)  # SNS refuses three times; Lambda would try 21
        assert summary.discarded == 0
        ctx["received"].extend(relay.queue.receive())
        if summary.failed_invocations:
            assert (summary.failed_invocations, summary.pending) == (3, 4)  # the batch: every record kept
            assert ctx["received"] == []
            return Result("kept on the stream")
        assert summary.pending == 0
        return Result("published")

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        created = {
            i["PK"]["S"].removeprefix(company_pk("")): json.loads(i["data"]["S"])["entry_id"]
            for i in items
            if _kind(i) == "ledger" and i["type"]["S"] == "company.created"
        }
        received = ctx["received"]
        assert sorted(r.event["id"] for r in received) == sorted(created[c] for c in ctx["companies"])
        assert {r.type for r in received} == {"consent.company.created"}


class Reconcile(Row):
    name = "reconcile"
    success = "pass complete"
    events = ("consent.connection.deauthorized", "consent.journey.action_required")
    write_op = "TransactWriteItems"
    function = next(f for f in functions() if f.logical_id == "ReconcileFunction")
    # As deployed (the template gives it CODAT_WEBHOOK_URL): Codat's webhook consumer is checked first, and the
    # pass goes on whatever Codat answers, so a failing Codat meets both calls.
    codat_calls = 2
    webhook_url = str(resolve(function.environment["CODAT_WEBHOOK_URL"], {"ConsentApi": "a1b2c3d4e5"}))

    def given(self, world: World) -> Context:
        world.services.settings = world.services.settings.model_copy(update={"webhook_url": self.webhook_url})
        # `make codat-webhooks` made the consumer
        world.simulator.add_webhook_consumer(self.webhook_url, sorted(HANDLED_EVENT_TYPES))
        world.simulator.initial_read_delay = 3600  # no first read completes while the cell runs
        company_id = world.company()
        connection_id = world.connection(company_id)
        world.authorize(company_id, connection_id)
        # The customer revokes access at her bank; Codat's webhook about it never arrives.
        world.simulator.set_connection_status(company_id, connection_id, "Deauthorized")
        return {"company": company_id, "connection": connection_id}

    def when(self, world: World, ctx: Context) -> Result:
        handler = load_handler(self.function.code_uri, self.function.handler)
        context = LambdaContext(self.function.logical_id, timeout_seconds=300)
        try:
            report = handler({}, context, services=world.services)
        except Exception as error:  # the run fails: Lambda reports it, ReconcileErrorsAlarm fires
            return Result("run fails", type(error).__name__)
        if report["stopped"] != "pass_complete":
            return Result(f"stops {report['stopped']}", body=report)
        return Result("skips the company" if report["companies_skipped"] else "pass complete", body=report)

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        assert result.body["webhook_consumer"] == "healthy"
        [ours] = world.connections(ctx["company"])
        assert ours["status"] == "Deauthorized"
        assert world.get(f"/companies/{ctx['company']}").body["journeys"][0]["status"] == "action_required"

    def racer(self, world: World, ctx: Context) -> None:
        # The missed webhook turns up while reconciliation is healing the same connection.
        body = connection_event(
            "connection.disconnected", company_id=ctx["company"], connection_id=ctx["connection"], status="Deauthorized"
        )
        assert world.webhook(body).status == 204


class Lifecycle(Row):
    name = "lifecycle"
    success = "sent"
    events = ("consent.connection.expiring",)
    write_op = "TransactWriteItems"
    throttle_op = "Query"  # what is due, read first
    function = next(f for f in functions() if f.logical_id == "LifecycleFunction")
    # 13 days before renewBy (a bank connection: 90 days, to renew a week early): the 14-day reminder is due
    later = timedelta(days=70)

    def given(self, world: World) -> Context:
        company_id = world.company()
        connection_id = world.connection(company_id)
        body = connection_event(
            "connection.connected", company_id=company_id, connection_id=connection_id, status="Linked"
        )
        assert world.webhook(body).status == 204
        return {"company": company_id, "connection": connection_id}

    def run(self, world: World, ctx: Context) -> dict[str, Any]:
        # The world's Codat client and publisher (what a cell arms), on a clock moved on to when something is due
        then = Services(
            world.settings,
            store=world.store,
            codat=self.codat(world, ctx),
            publisher=world.services.publisher,
            clock=lambda: utc_now() + self.later,
        )
        handler = load_handler(self.function.code_uri, self.function.handler)
        report: dict[str, Any] = handler(
            {}, LambdaContext(self.function.logical_id, timeout_seconds=120), services=then
        )
        return report

    def codat(self, world: World, ctx: Context) -> Any:
        return world.services.codat

    def when(self, world: World, ctx: Context) -> Result:
        try:
            report = self.run(world, ctx)
        except Exception as error:  # the run fails: Lambda reports it, LifecycleErrorsAlarm fires
            return Result("run fails", type(error).__name__)
        return Result("sent" if report["skipped"] == 0 else "skipped", body=report)

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        reminders = [e for e in world.ledger(ctx["company"]) if e["type"] == "connection.expiring"]
        assert [(e["connectionId"], e["reminderDays"]) for e in reminders] == [(ctx["connection"], 14)]

    def racer(self, world: World, ctx: Context) -> None:
        # Another run (a retry of the schedule, a run by hand) sends the same reminder first.
        assert self.run(world, ctx)["sent"] == 1


class KeepAlive(Lifecycle):
    name = "lifecycle keep-alive"
    success = "refreshed"
    events = ()  # a refresh is no consent event: Codat reads, and the connection's next refresh moves on
    throttle_op = None  # the write after Codat queued the refresh (`write_op`)
    # 31 days after linking: an accounting connection idle 30 days is due a refresh (and, its clock unknown, nothing
    # else; nor its company, whose journey declares no data to read)
    later = timedelta(days=31)
    queue = "/companies/{companyId}/data/queue/{dataType}"

    def given(self, world: World) -> Context:
        company_id = world.company("onboarding")
        connection_id = world.connection(company_id, "gbol")
        world.simulator.set_connection_status(company_id, connection_id, "Linked")
        world.simulator.complete_reads()  # its first read is done: nothing is being read when keep-alive asks
        body = connection_event(
            "connection.connected", company_id=company_id, connection_id=connection_id, status="Linked"
        )
        assert world.webhook(body).status == 204
        ctx = {"company": company_id, "connection": connection_id, "raced": 0}
        due = self.connection(world, ctx)
        assert due["refresh_requested_at"] is None
        assert due["refresh_at"] <= utc_now() + self.later
        reads = [d["id"] for d in world.simulator.datasets(company_id)]
        return {**ctx, "due": due["refresh_at"], "reads": reads, "codat": QueueCount(world.services.codat)}

    def codat(self, world: World, ctx: Context) -> Any:
        return ctx["codat"]

    def connection(self, world: World, ctx: Context) -> dict[str, Any]:
        view = world.store.get_company_by_id(ctx["company"])
        assert view is not None
        [ours] = [c for c in view.connections if c.connection_id == ctx["connection"]]
        return {"refresh_requested_at": ours.refresh_requested_at, "refresh_at": ours.refresh_at}

    def when(self, world: World, ctx: Context) -> Result:
        spent, queued, raced = keep_alive_spent(world.items()), ctx["codat"].calls, ctx["raced"]
        try:
            report = self.run(world, ctx)
        except Exception as error:  # the run fails: Lambda reports it, LifecycleErrorsAlarm fires
            result = Result("run fails", type(error).__name__)
        else:
            assert (report["sent"], report["skipped"]) == (0, 0), report
            result = Result("deferred" if report["deferred"] else "refreshed", body=report)
        # Each request to Codat, failed or not, is one of the day's budget; a run asks at most once (none once it is
        # refreshed), a racer aside
        asked = ctx["codat"].calls - queued
        assert keep_alive_spent(world.items()) - spent == asked
        ours = asked - (ctx["raced"] - raced)
        if result.status == "deferred":
            assert result.body["refreshed"] == 0
            # still due, as it was: the next run asks again (with the same Idempotency-Key)
            assert self.connection(world, ctx) == {"refresh_requested_at": None, "refresh_at": ctx["due"]}
        # once, whatever happens to its write (a write retried after a conflict does not ask again)
        assert ours <= 1, ours
        return result

    def unchanged(self, items: list[Item]) -> list[Item]:
        # A deferral writes the connection back as it was read (the run writes every connection it visits): its
        # version moves on, and nothing else
        return [_unversioned(i) if _kind(i) == "connection" else i for i in snapshot(items)]

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        # One read queued in Codat, from the connection; its next refresh a day on (no sync has followed yet)
        [read] = [r for r in world.simulator.datasets(ctx["company"]) if r["id"] not in ctx["reads"]]
        assert (read["dataType"], read["connectionId"]) == ("company", ctx["connection"])
        ours = self.connection(world, ctx)
        assert ours["refresh_requested_at"] is not None
        assert ctx["due"] <= ours["refresh_requested_at"] <= utc_now() + self.later
        assert ours["refresh_at"] == ours["refresh_requested_at"] + timedelta(hours=24)

    def done_in_codat(self, world: World, ctx: Context) -> bool:
        return len(world.simulator.datasets(ctx["company"])) == len(ctx["reads"]) + 1

    def found_in_codat(self, world: World, ctx: Context) -> None:
        # Every request for it (each attempt, each run) carried the same Idempotency-Key, the connection's and its due
        # time: Codat replayed its first answer rather than queueing a second read (`done` sees one)
        keys = {r.headers.get("idempotency-key") for r in world.simulator.calls("POST", self.queue)}
        assert keys == {f"keep-alive:{ctx['connection']}:{sortable(ctx['due'])}"}

    def racer(self, world: World, ctx: Context) -> None:
        # Another run (a retry of the schedule, a run by hand) refreshes the same connection first.
        queued = ctx["codat"].calls
        assert self.run(world, ctx)["refreshed"] == 1
        ctx["raced"] += ctx["codat"].calls - queued


class QueueCount:
    """A Codat client that counts the reads it is asked to queue (a call, however many attempts it makes)."""

    def __init__(self, codat: Any) -> None:
        self.codat, self.calls = codat, 0

    def queue_data(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.codat.queue_data(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.codat, name)


class OneOffConsent(Lifecycle):
    name = "lifecycle one-off consent"
    success = "unlinked"
    # Each connection's consent.fulfilled (her one-off consent, spent), published as an unlink; the credit check, its
    # purpose served, is no news (not "action required", not "data stale")
    events = ("consent.connection.unlinked", "consent.connection.unlinked")
    throttle_op = None  # the write after Codat unlinked (`write_op`)
    # Just after its data was read: the company is due (its one-off consent is spent), and nothing else is yet
    later = timedelta(minutes=5)
    unlink = "/companies/{companyId}/connections/{connectionId}"
    data_types = {"gbol": ("balanceSheet", "profitAndLoss"), "qhnd": ("banking-accounts",)}
    linked = {"gbol": "Linked", "qhnd": "Linked"}
    unlinked = {"gbol": "Unlinked", "qhnd": "Unlinked"}

    def given(self, world: World) -> Context:
        # A credit check (one-off, 30 days' retention) with its books and its bank Linked, here and in Codat, and
        # its data read
        company_id = world.company("credit_check")
        connections = {key: world.connection(company_id, key) for key in self.data_types}
        for connection_id in connections.values():
            world.simulator.set_connection_status(company_id, connection_id, "Linked")
            world.simulator.complete_reads()
            body = connection_event(
                "connection.connected", company_id=company_id, connection_id=connection_id, status="Linked"
            )
            assert world.webhook(body).status == 204
        for key, types in self.data_types.items():
            body = read_event(company_id=company_id, connection_ids=[connections[key]], initial=True, data_types=types)
            assert world.webhook(body).status == 204
        ctx = {"company": company_id, "connections": connections, "raced": Counter[str]()}
        assert self.statuses(world, ctx) == self.in_codat(world, ctx) == self.linked
        due = self.retention_at(world, ctx)
        assert due is not None
        assert due <= utc_now() + self.later  # its one-off consent is spent: the company is due
        return {**ctx, "codat": UnlinkCount(world.services.codat)}

    def codat(self, world: World, ctx: Context) -> Any:
        return ctx["codat"]

    def statuses(self, world: World, ctx: Context) -> dict[str, str]:
        view = world.store.get_company_by_id(ctx["company"])
        assert view is not None
        ours = {c.connection_id: c.status.value for c in view.connections}
        return {key: ours[cid] for key, cid in ctx["connections"].items()}

    def in_codat(self, world: World, ctx: Context) -> dict[str, str]:
        return {key: world.simulator.connection(ctx["company"], cid).status for key, cid in ctx["connections"].items()}

    def retention_at(self, world: World, ctx: Context) -> Any:
        view = world.store.get_company_by_id(ctx["company"])
        assert view is not None
        return view.company.retention_at

    def when(self, world: World, ctx: Context) -> Result:
        first = not ctx["codat"].calls
        asked, raced = Counter[str](ctx["codat"].calls), Counter[str](ctx["raced"])
        before, raced_before = self.fulfilled(world, ctx), ctx.get("raced_written", 0)
        try:
            report = self.run(world, ctx)
        except Exception as error:  # the run fails: Lambda reports it, LifecycleErrorsAlarm fires
            result = Result("run fails", type(error).__name__)
        else:
            assert (report["sent"], report["refreshed"], report["purged"], report["skipped"]) == (0, 0, 0, 0), report
            result = Result("unlinked" if self.statuses(world, ctx) == self.unlinked else "deferred", body=report)
        ours = ctx["codat"].calls - asked - (ctx["raced"] - raced)
        if result.status == "deferred":
            assert result.body["unlinked"] == 0
            # still due, as it was: both Linked here, the company due (the next run asks again, with the same keys)
            assert self.statuses(world, ctx) == self.linked
            assert self.retention_at(world, ctx) <= utc_now() + self.later
        elif result.status == "unlinked":
            # The report counts what the run wrote (none when a racer wrote them first), not what it asked Codat
            by_racer = ctx.get("raced_written", 0) - raced_before
            assert result.body["unlinked"] == self.fulfilled(world, ctx) - before - by_racer, (result.body, ours)
        # each connection once a run, whatever happens to its write (retried after a conflict, it does not ask again)
        assert all(n <= 1 for n in ours.values()), (first, ours)
        return result

    def fulfilled(self, world: World, ctx: Context) -> int:
        return sum(e["type"] == "consent.fulfilled" for e in world.ledger(ctx["company"]))

    def unchanged(self, items: list[Item]) -> list[Item]:
        # A deferral writes the company back as it was read, settled at the run's time (the run writes every company
        # it visits): its version, `updated_at` and due time (`retention_at`, the run's now: still due) move on, and
        # nothing else
        return [_undated(i) if _kind(i) == "company" else i for i in snapshot(items)]

    def done(self, world: World, ctx: Context, result: Result, items: list[Item]) -> None:
        # Unlinked here and in Codat, each once, on her behalf; the data kept 30 days from now (the company due then)
        assert self.statuses(world, ctx) == self.in_codat(world, ctx) == self.unlinked
        fulfilled = [e for e in world.ledger(ctx["company"]) if e["type"] == "consent.fulfilled"]
        assert sorted((e["actor"], e["connectionId"]) for e in fulfilled) == sorted(
            (f"customer:{ALICE}", cid) for cid in ctx["connections"].values()
        )
        assert self.retention_at(world, ctx) > utc_now() + timedelta(days=29)
        # and Codat never refused an unlink (it refuses one of an Unlinked connection): each connection's requests,
        # every attempt of every run, carried one Idempotency-Key, replayed
        for connection_id in ctx["connections"].values():
            sent = self.patches(world, ctx, connection_id)
            assert len({r.headers.get("idempotency-key") for r in sent}) == 1
            assert 400 not in {r.status for r in sent}, [r.status for r in sent]

    def patches(self, world: World, ctx: Context, connection_id: str) -> list[Any]:
        path = self.unlink.format(companyId=ctx["company"], connectionId=connection_id)
        return [r for r in world.simulator.calls("PATCH", self.unlink) if r.path == path]

    def done_in_codat(self, world: World, ctx: Context) -> bool:
        return "Unlinked" in self.in_codat(world, ctx).values()

    def found_in_codat(self, world: World, ctx: Context) -> None:
        # Codat had unlinked a connection (both, when our write failed after); the next run, finding it Linked here,
        # asked again with the same key (the connection's latest event, unchanged) and Codat replayed its first
        # answer: recorded from that, with no need to ask Codat what it has
        replayed = [cid for cid in ctx["connections"].values() if len(self.patches(world, ctx, cid)) > 1]
        assert replayed
        for connection_id in replayed:
            assert self.patches(world, ctx, connection_id)[-1].status == 200
        assert world.simulator.calls("GET", self.unlink) == []

    def racer(self, world: World, ctx: Context) -> None:
        # Another run (a retry of the schedule, a run by hand) ends the same consent first.
        asked = Counter(ctx["codat"].calls)
        report = self.run(world, ctx)
        assert report["unlinked"] == 2
        ctx["raced_written"] = ctx.get("raced_written", 0) + report["unlinked"]
        ctx["raced"] += ctx["codat"].calls - asked


class UnlinkCount:
    """A Codat client that counts the unlinks it is asked for, by connection (a call, however many attempts)."""

    def __init__(self, codat: Any) -> None:
        self.codat, self.calls = codat, Counter[str]()

    def unlink_connection(self, company_id: str, connection_id: str, **kwargs: Any) -> Any:
        self.calls[connection_id] += 1
        return self.codat.unlink_connection(company_id, connection_id, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.codat, name)


def _unversioned(item: Item) -> Item:
    data = {k: v for k, v in json.loads(item["data"]["S"]).items() if k != "version"}
    return {**{k: v for k, v in item.items() if k != "version"}, "data": data}


def _undated(item: Item) -> Item:
    """A company item without what a settle at another time moves: its version, `updated_at` and due time."""
    unversioned = _unversioned(item)
    data = {k: v for k, v in unversioned["data"].items() if k not in ("updated_at", "retention_at")}
    due = {"GSI2SK": {"S": item["GSI2SK"]["S"].partition("#")[2]}} if "GSI2SK" in item else {}
    return {**unversioned, "data": data, **due}


ROWS: tuple[Row, ...] = (
    CreateCompany(),
    StartJourney(),
    ListCompanies(),
    GetCompany(),
    ListConnections(),
    ListEvents(),
    ListJourneys(),
    ListIntegrations(),
    CreateConnection(),
    AccessToken(),
    SdkSession(),
    Revoke(),
    Erase(),
    Webhook(),
    OutboxRelay(),
    Reconcile(),
    Lifecycle(),
    KeepAlive(),
    OneOffConsent(),
)
assert [row.name for row in ROWS] == list(MATRIX), "one row for each line of the matrix, in order"
ROW = {row.name: row for row in ROWS}


# -- the test -----------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _botocore_retries_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore retries throttling with real back-off sleeps: the attempts stay, the waits go (as the FakeClock
    # does for the Codat client's).
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


@pytest.fixture(scope="module")
def deployment(moto_server: MotoServer) -> Deployed:
    return deploy(moto_server.endpoint)


@pytest.fixture
def aws(deployment: Deployed, moto_server: MotoServer) -> Iterator[Deployed]:
    """The module's deployment (topic, queues, secrets) with a table of the cell's own: a whole deployment for
    each cell would be most of the module's time. The table goes with the cell (moto copies every table it holds on
    each transaction)."""
    tables = deploy_tables(moto_server.endpoint)
    yield dataclasses.replace(deployment, tables=tables.tables, stream_arns=tables.stream_arns)
    drop_tables(moto_server.endpoint, tables)


@pytest.fixture(scope="module")
def dynamodb(moto_server: MotoServer) -> Any:
    """The product's own DynamoDB client, one for the module (making one is a tenth of a second)."""
    return aws_client("dynamodb")


@pytest.fixture(scope="module")
def dynamodb_trouble(dynamodb: Any) -> DynamoDBTrouble:
    return DynamoDBTrouble(dynamodb)


@pytest.fixture
def world(
    api: LocalApi,
    simulator: CodatSimulator,
    services: Services,
    store: DynamoDBConsentStore,
    settings: Settings,
    aws: Deployed,
    clock: Any,
    dynamodb_trouble: DynamoDBTrouble,
    table_items: Callable[[], list[Item]],
    authorize: Callable[..., None],
) -> Iterator[World]:
    yield World(api, simulator, services, store, settings, aws, clock, dynamodb_trouble, table_items, authorize)
    dynamodb_trouble.clear()


@dataclass
class Armed:
    """A failure armed for one cell, and what the failing dependency must then have seen."""

    world: World
    row: Row
    failure: Failure
    expected: Outcome
    requests: int = 0
    sleeps: int = 0
    dynamodb: int = 0
    publisher: RefusingPublisher | None = None
    raced: list[bool] = field(default_factory=list)

    def arm(self, ctx: Context) -> None:
        world, row, failure, expected = self.world, self.row, self.failure, self.expected
        self.requests, self.sleeps = len(world.simulator.requests), len(world.clock.sleeps)
        if failure in CODAT_FAULTS:
            world.simulator.inject(dataclasses.replace(CODAT_FAULTS[failure]))  # a fresh one: faults count hits
        elif failure is SNS:
            world.services.publisher = self.publisher = RefusingPublisher()
            assert world.relay is not None
            world.relay.sns.fail("KMSDisabled", times=3)
        elif expected.untouched is not None:  # DynamoDB, on every operation the row could make
            for operation in (
                DynamoDBTrouble.EVERY if expected.untouched == NO_DYNAMODB_CALL else DynamoDBTrouble.WRITES
            ):
                if failure is THROTTLING:
                    world.dynamodb.throttle(operation)
                elif failure is RACE:
                    world.dynamodb.condition_fails(operation)
                else:
                    world.dynamodb.conflict(operation)
        elif failure is THROTTLING:
            operation = row.throttle_op or row.write_op or row.read_op
            assert operation is not None
            world.dynamodb.throttle(operation)
        elif failure is RACE:
            operation = row.race_op or row.write_op
            assert operation is not None

            def racer() -> None:
                self.raced.append(True)
                row.racer(world, ctx)

            world.dynamodb.race(operation, racer)
        else:
            assert row.write_op is not None
            world.dynamodb.conflict(row.write_op)
        self.dynamodb = world.dynamodb.armed

    def check(self, result: Result) -> None:
        """What the failing dependency saw."""
        world, failure, expected = self.world, self.failure, self.expected
        sent = world.simulator.requests[self.requests :]
        sleeps = world.clock.sleeps[self.sleeps :]
        if failure in CODAT_FAULTS:
            if expected.untouched == NO_CODAT_CALL:
                assert sent == []
            elif expected.stored is Stored.NOTHING:
                # Every attempt of the client's budget (none again after a 401), within its time budget, per call.
                calls = self.row.codat_calls
                assert len(sent) == (1 if failure is C401 else CODAT_ATTEMPTS) * calls, [r.path for r in sent]
                assert sum(sleeps) < CODAT_RETRY_BUDGET * calls
                if failure is C429:
                    assert sleeps
                    assert all(s >= RETRY_AFTER for s in sleeps)  # Codat's Retry-After, honoured
                if result.status == 503:  # and the caller is told when to try again: after Codat's 429, when it said
                    after = result.header("retry-after")
                    assert after is not None
                    assert int(after) >= 1
                    if failure is C429:
                        assert after == str(RETRY_AFTER)
        elif failure in DYNAMODB_FAILURES:
            if expected.untouched is not None:
                assert world.dynamodb.armed == self.dynamodb, "the row made a DynamoDB call it was said not to"
            else:
                assert world.dynamodb.armed == 0, "the armed failure was never reached"
            if failure is RACE and expected.untouched is None:
                assert self.raced == [True]
            if failure is THROTTLING and result.status == 503:
                assert result.header("retry-after") == self.row.store_retry_after
        elif failure is SNS and self.publisher is not None:
            assert self.publisher.attempts == 0  # no API function publishes: the relay does, from the stream


CELLS = [
    pytest.param(ROW[line.name], failure, id=f"{line.slug}-{failure.name.lower()}")
    for line in LINES
    for failure in Failure
]


@pytest.mark.parametrize(("row", "failure"), CELLS)
def test_each_cell(row: Row, failure: Failure, world: World) -> None:
    expected = MATRIX[row.name][failure]
    events = Counter(row.events + (row.racer_events if failure is RACE else ()))
    # Given the row's state (and, in the SNS column, the relay having published everything until now)
    ctx = {**row.given(world), "failure": failure}
    relay = world.start_relay() if failure is SNS and world.relay is None else world.relay
    items = world.items()
    before, ledger_before, claims_before = row.unchanged(items), ledger_keys(items), claims_in_flight(items)
    armed = Armed(world, row, failure, expected)
    armed.arm(ctx)

    # When the request is sent while the failure lasts
    result = row.when(world, ctx)

    # Then the answer is the cell's, and the failing dependency saw what the cell says
    assert (result.status, result.code) == (expected.status, expected.code), result.body
    armed.check(result)
    world.dynamodb.clear()  # what was armed and not reached (a proof) must not hit the checks below
    # and what is stored is nothing at all, or the row's change once with its consent events in the outbox once
    items = world.items()
    if expected.stored is Stored.ONCE:
        row.done(world, ctx, result, items)
        assert outbox_since(items, ledger_before) == events
    else:
        assert row.unchanged(items) == before, "half a change was stored"
        assert claims_in_flight(items) == claims_before, "an Idempotency-Key was left claimed"
        if expected.stored is Stored.READ:
            row.done(world, ctx, result, items)
        else:
            assert row.done_in_codat(world, ctx) is expected.done_in_codat
    # and in the SNS column, what SNS refused reaches subscribers once it is back, once
    if failure is SNS and relay is not None and not isinstance(row, OutboxRelay):
        outage = relay.pump.drain(max_invocations=3)
        assert (outage.failed_invocations, outage.discarded) == ((3 if events else 0), 0)
        assert relay.queue.receive() == []
        relay.sns.remaining.clear()
        received = relay.published()
        assert Counter(r.type for r in received) == events
        assert len({r.event["id"] for r in received}) == len(received)

    # When the failure clears and the request is sent again
    world.simulator.clear_faults()
    if relay is not None:
        relay.sns.remaining.clear()
    row.before_retry(world)
    retried = row.when(world, ctx)

    # Then it ends as the row's success, with nothing twice: not here, not in Codat, not in the outbox
    again = (row.again or row.success) if expected.stored is Stored.ONCE else row.success
    assert retried.status == again, retried.body
    items = world.items()
    row.done(world, ctx, retried, items)
    if expected.done_in_codat:
        row.found_in_codat(world, ctx)
    assert outbox_since(items, ledger_before) == events
    if failure is SNS and relay is not None and not isinstance(row, OutboxRelay):
        assert relay.published() == []


def test_the_reliability_page_shows_the_fault_matrix_as_it_is() -> None:
    assert markdown_table(LINES) in RELIABILITY_DOC.read_text(encoding="utf-8"), (
        "docs/reliability.md's 'Fault matrix' table differs from tests/integration/fault_matrix/: paste the output of "
        "`.venv/bin/python tests/integration/test_fault_matrix.py`"
    )


def test_every_route_and_function_of_the_template_is_a_row() -> None:
    names = {row.name for row in ROWS}
    assert [route.route_key for route in routes() if route.route_key not in names] == []
    covered = {route.function for route in routes()} | {"OutboxRelayFunction", "ReconcileFunction", "LifecycleFunction"}
    assert [f.logical_id for f in functions() if f.logical_id not in covered] == []


if __name__ == "__main__":
    print(markdown_table(LINES))
