"""The call budget: how many AWS and Codat calls each route and each Codat webhook costs, with the requests
that rehearse it. One source of truth for `tests/integration/test_call_budget.py`, `make bench` and the
"Performance budget" table of docs/performance.md (`markdown_table()`).

Counts are for one request in a warm container (secrets and Codat's integration list already cached), in
the state each case sets up through the API itself. AWS calls are counted by botocore's `before-call` event
(one per logical call: botocore's own retries are not extra calls); Codat calls from the simulator's log."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import botocore.session

from consent.services import Services
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import (
    DEV_WEBHOOK_SECRET,
    company_event,
    connection_event,
    envelope,
    read_event,
    reference_company,
    signed,
)
from consent_dev.local_api import ApiResponse, LocalApi
from consent_dev.template import Route

WEBHOOK_PATH = "/webhooks/codat"

# -- the budget ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """The calls of one request: AWS by `service.Operation`, Codat by `METHOD /path/template`."""

    aws: Mapping[str, int] = field(default_factory=dict)
    codat: Mapping[str, int] = field(default_factory=dict)
    note: str = ""


_READ_COMPANY = {"dynamodb.Query": 1}
_OWNER_THEN_PAGE = {"dynamodb.GetItem": 1, "dynamodb.Query": 1}
_READ_THEN_WRITE = {"dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1}
# A route that may call Codat first counts one of the customer's requests (one UpdateItem: `usecases.quotas`).
_COUNTED = {"dynamodb.UpdateItem": 1}
# A webhook: already seen? (GetItem) → the company with its connections (Query) → one transaction with the
# change, its ledger entries and the webhook id.
_WEBHOOK_APPLIED = {"dynamodb.GetItem": 1, "dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1}

BUDGET: dict[str, Budget] = {
    "POST /companies": Budget(
        {"dynamodb.UpdateItem": 2, "dynamodb.GetItem": 1, "dynamodb.TransactWriteItems": 1},
        {"POST /companies": 1},
        "counted; with Idempotency-Key: claim the key, check the company cap, create in Codat, one transaction",
    ),
    "POST /companies (same Idempotency-Key again)": Budget(
        {"dynamodb.UpdateItem": 2, "dynamodb.GetItem": 1}, {}, "counted; the first answer, replayed"
    ),
    "POST /companies/{companyId}/journeys": Budget(_READ_THEN_WRITE),
    "GET /companies": Budget({"dynamodb.Query": 1}, {}, "one GSI1 page"),
    "GET /companies/{companyId}": Budget(_READ_COMPANY, {}, "no Codat call"),
    "GET /companies/{companyId} (another customer's)": Budget(_READ_COMPANY, {}, "404, same cost as found"),
    "GET /companies/{companyId}/connections": Budget(_OWNER_THEN_PAGE, {}, "per page"),
    "GET /companies/{companyId}/events": Budget(_OWNER_THEN_PAGE, {}, "per page"),
    "GET /journeys": Budget({}, {}, "from the journeys file"),
    "GET /integrations": Budget(_COUNTED, {}, "counted; cached in memory (INTEGRATIONS_CACHE_SECONDS)"),
    "GET /integrations (new container or cache expired)": Budget(
        _COUNTED, {"GET /integrations": 1}, "counted; up to 500 per page"
    ),
    "POST /companies/{companyId}/connections": Budget(
        {**_COUNTED, **_READ_THEN_WRITE}, {"POST /companies/{companyId}/connections": 1}, "counted; new connection"
    ),
    "POST /companies/{companyId}/connections (reused)": Budget(
        {**_COUNTED, **_READ_THEN_WRITE},
        {"GET /companies/{companyId}/connections/{connectionId}": 1},
        "counted; fresh linkUrl",
    ),
    "GET /companies/{companyId}/access-token": Budget(
        {**_COUNTED, "dynamodb.GetItem": 1}, {"GET /companies/{companyId}/accessToken": 1}, "counted"
    ),
    "POST /companies/{companyId}/sdk-sessions": Budget(
        {**_COUNTED, **_READ_THEN_WRITE},
        {"GET /companies/{companyId}/accessToken": 1},
        "counted; the session on the company",
    ),
    "DELETE /companies/{companyId}/connections/{connectionId}": Budget(
        _READ_THEN_WRITE, {"PATCH /companies/{companyId}/connections/{connectionId}": 1}, "unlink a Linked one"
    ),
    "DELETE /companies/{companyId}/connections/{connectionId} (not Linked)": Budget(
        _READ_COMPANY, {}, "idempotent no-op"
    ),
    "DELETE /companies/{companyId}/connections/{connectionId} (PendingAuth)": Budget(
        _READ_THEN_WRITE,
        {
            "PATCH /companies/{companyId}/connections/{connectionId}": 1,
            "GET /companies/{companyId}/connections/{connectionId}": 1,
            "DELETE /companies/{companyId}/connections/{connectionId}": 1,
        },
        "Codat refuses to unlink; still PendingAuth there, so deleted (its link dies)",
    ),
    "DELETE /companies/{companyId}": Budget(
        {"dynamodb.Query": 2, "dynamodb.GetItem": 1, "dynamodb.BatchWriteItem": 1, "dynamodb.TransactWriteItems": 1},
        {"DELETE /companies/{companyId}": 1},
        "never counted (a customer can always withdraw); one company fewer in the cap; BatchWriteItem per 25 items",
    ),
    "webhook connection.created": Budget(_WEBHOOK_APPLIED, {}, "confirms one our API made"),
    "webhook connection.created (made outside our API)": Budget(_WEBHOOK_APPLIED, {}, "adopted"),
    "webhook connection.connected": Budget(_WEBHOOK_APPLIED),
    "webhook connection.reconnected": Budget(_WEBHOOK_APPLIED),
    "webhook connection.failed": Budget(_WEBHOOK_APPLIED),
    "webhook connection.disconnected": Budget(_WEBHOOK_APPLIED),
    "webhook connection.deleted": Budget(_WEBHOOK_APPLIED),
    "webhook read.completed.initial": Budget(_WEBHOOK_APPLIED),
    "webhook read.completed": Budget(_WEBHOOK_APPLIED),
    "webhook company.created": Budget({"dynamodb.GetItem": 1, "dynamodb.TransactWriteItems": 1}, {}, "noted"),
    "webhook company.deleted": Budget(_WEBHOOK_APPLIED),
    "webhook client.rateLimit.reached": Budget({"dynamodb.GetItem": 1, "dynamodb.TransactWriteItems": 1}, {}, "noted"),
    "webhook of another type (parked)": Budget(
        {"dynamodb.GetItem": 2, "dynamodb.TransactWriteItems": 1}, {}, "parked under its company"
    ),
    "webhook about an unknown company (parked)": Budget(_WEBHOOK_APPLIED, {}, "parked"),
    "webhook redelivered": Budget({"dynamodb.GetItem": 1}, {}, "204, nothing changes"),
    "webhook with a bad signature": Budget({}, {}, "401 before any call"),
}


def markdown_table() -> str:
    """The budget table of docs/performance.md, generated from BUDGET (a test keeps the page in step)."""
    lines = ["| request | AWS calls | Codat calls | notes |", "| --- | --- | --- | --- |"]
    for name, budget in BUDGET.items():
        lines.append(f"| {_request(name)} | {_calls(budget.aws)} | {_calls(budget.codat)} | {budget.note} |")
    return "\n".join(lines)


def _request(name: str) -> str:
    what, _, condition = name.partition(" (")
    kind, _, subject = what.partition(" ") if what.startswith("webhook ") else ("", "", what)
    return f"{kind} `{subject}`".strip() + (f" ({condition}" if condition else "")


def _calls(calls: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {operation}" for operation, count in sorted(calls.items())) or "none"


# -- counting --------------------------------------------------------------------------------------------------


@dataclass
class Counted:
    aws: Counter[str] = field(default_factory=Counter)
    codat: Counter[str] = field(default_factory=Counter)

    def matches(self, budget: Budget) -> bool:
        return dict(self.aws) == dict(budget.aws) and dict(self.codat) == dict(budget.codat)


class CallCounter:
    """Counts the AWS calls of watched boto3 clients and the Codat calls the simulator received."""

    def __init__(self, simulator: CodatSimulator) -> None:
        self._simulator = simulator
        self._aws: Counter[str] = Counter()

    def watch(self, client: Any) -> Any:
        """Count `client`'s calls (a boto3 client created before counting began, e.g. a test's)."""
        client.meta.events.register("before-call.*.*", self._before_call, unique_id=f"call-budget-{id(self)}")
        return client

    def _before_call(self, model: Any, **_: Any) -> None:
        self._aws[f"{model.service_model.service_name}.{model.name}"] += 1

    @contextmanager
    def watching_new_clients(self) -> Iterator[None]:
        """Watch every boto3 client created meanwhile: the product's own (`consent.services.aws_client`) and
        Powertools' Secrets Manager client alike, so an added call is counted wherever it comes from."""
        original = botocore.session.Session.create_client

        def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            return self.watch(original(session, *args, **kwargs))

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            botocore.session.Session.create_client = original  # type: ignore[method-assign]

    @contextmanager
    def measure(self) -> Iterator[Counted]:
        """The calls made inside the block."""
        self._aws.clear()
        seen = len(self._simulator.requests)
        counted = Counted()
        try:
            yield counted
        finally:
            counted.aws.update(self._aws)
            counted.codat.update(r.operation or f"{r.method} {r.path}" for r in self._simulator.requests[seen:])


# -- the requests that rehearse each case ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One API request as the bank's app (or Codat) sends it."""

    method: str
    path: str
    customer: str | None = None
    json: Any = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] | None = None

    def send(self, api: LocalApi) -> ApiResponse:
        return api.request(
            self.method,
            self.path,
            customer=self.customer,
            json=self.json,
            body=self.body,
            headers=self.headers,
            query=self.query,
        )

    def to_event(self, api: LocalApi) -> tuple[Route, dict[str, Any]]:
        """The template's route and the API Gateway event `send` would invoke it with."""
        return api.event(
            self.method,
            self.path,
            customer=self.customer,
            json=self.json,
            body=self.body,
            headers=self.headers,
            query=self.query,
        )


class CodatSide(Protocol):
    """What the cases need of Codat besides its API: its catalogue, and the customer's side of linking.
    The simulator has both; so may an in-memory fake."""

    @property
    def integrations(self) -> Mapping[str, Any]: ...  # platform key → an integration with `name`, `source_type`

    def set_connection_status(self, company_id: str, connection_id: str, status: Any) -> Any: ...


@dataclass
class World:
    """What the cases act on: the API (a warm container), Codat (the simulator, or a fake) and a customer."""

    api: LocalApi
    simulator: CodatSide
    # A new container's services (nothing cached yet), for the cases that need one.
    new_services: Callable[[], Services]
    customer: str = field(default_factory=lambda: f"customer-{uuid.uuid4().hex[:8]}")
    webhook_secret: str = DEV_WEBHOOK_SECRET

    def company(self, journey: str = "loan_application", *, customer: str | None = None) -> str:
        response = self.api.post(
            "/companies",
            customer=customer or self.customer,
            json={"name": "Acme Bakery Ltd", "journey": journey},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status == 201, response.text
        return str(response.body["companyId"])

    def connection(self, company_id: str, platform_key: str = "qhnd") -> str:
        response = self.api.post(
            f"/companies/{company_id}/connections", customer=self.customer, json={"platformKey": platform_key}
        )
        assert response.status in (200, 201), response.text
        return str(response.body["connectionId"])

    def linked_connection(self, company_id: str, platform_key: str = "qhnd", *, first_read: bool = True) -> str:
        """A connection the customer authorized in Codat, with its first read done (as Codat's webhooks tell)."""
        connection_id = self.connection(company_id, platform_key)
        self.simulator.set_connection_status(company_id, connection_id, "Linked")
        bodies = [self.connection_webhook("connection.connected", company_id, connection_id, "Linked", platform_key)]
        if first_read:
            bodies.append(read_event(company_id=company_id, connection_ids=[connection_id], initial=True))
        for body in bodies:
            response = self.webhook(body).send(self.api)
            assert response.status == 204, response.text
        return connection_id

    def connection_webhook(
        self, event_type: str, company_id: str, connection_id: str, status: str, platform_key: str = "qhnd"
    ) -> dict[str, Any]:
        integration = self.simulator.integrations[platform_key]
        return connection_event(
            event_type,
            company_id=company_id,
            connection_id=connection_id,
            status=status,
            integration_key=platform_key,
            source_type=integration.source_type,
            platform_name=integration.name,
        )

    def webhook(self, body: Mapping[str, Any], *, message_id: str | None = None, secret: str | None = None) -> Request:
        raw, headers = signed(body, secret or self.webhook_secret, message_id=message_id)
        return Request("POST", WEBHOOK_PATH, body=raw, headers=headers)


# A case prepares the state it needs, then returns a factory of requests: each call may do more (untimed)
# set-up and returns one request whose sending makes exactly the case's budgeted calls.
RequestFactory = Callable[[], Request]


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    prepare: Callable[[World], RequestFactory]
    # Runs on a new container's services (nothing cached) rather than the warm one.
    new_container: bool = False

    @property
    def budget(self) -> Budget:
        return BUDGET[self.name]


def _new_company(world: World) -> RequestFactory:
    body = {"name": "Acme Bakery Ltd", "journey": "onboarding"}
    return lambda: Request("POST", "/companies", world.customer, body, headers={"Idempotency-Key": str(uuid.uuid4())})


def _replayed_company(world: World) -> RequestFactory:
    request = Request(
        "POST", "/companies", world.customer, {"name": "Acme Bakery Ltd", "journey": "onboarding"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )  # fmt: skip
    assert request.send(world.api).status == 201
    return lambda: request


def _start_journey(world: World) -> RequestFactory:
    def request() -> Request:
        company_id = world.company("onboarding")
        return Request("POST", f"/companies/{company_id}/journeys", world.customer, {"journey": "loan_application"})

    return request


def _list_companies(world: World) -> RequestFactory:
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        world.company(customer=customer)
    return lambda: Request("GET", "/companies", customer)


def _company_read(suffix: str, *, other_customer: bool = False) -> Callable[[World], RequestFactory]:
    def prepare(world: World) -> RequestFactory:
        company_id = world.company()
        world.linked_connection(company_id)
        customer = f"customer-{uuid.uuid4().hex[:8]}" if other_customer else world.customer
        return lambda: Request("GET", f"/companies/{company_id}{suffix}", customer)

    return prepare


def _journeys(world: World) -> RequestFactory:
    return lambda: Request("GET", "/journeys", world.customer)


def _integrations(world: World) -> RequestFactory:
    request = Request("GET", "/integrations", world.customer)
    assert request.send(world.api).status == 200  # now cached
    return lambda: request


def _integrations_uncached(world: World) -> RequestFactory:
    return lambda: Request("GET", "/integrations", world.customer)


def _new_connection(world: World) -> RequestFactory:
    _integrations(world)

    def request() -> Request:
        company_id = world.company()
        return Request("POST", f"/companies/{company_id}/connections", world.customer, {"platformKey": "gbol"})

    return request


def _reused_connection(world: World) -> RequestFactory:
    company_id = world.company()
    world.connection(company_id, "gbol")
    return lambda: Request("POST", f"/companies/{company_id}/connections", world.customer, {"platformKey": "gbol"})


def _access_token(world: World) -> RequestFactory:
    company_id = world.company()
    return lambda: Request("GET", f"/companies/{company_id}/access-token", world.customer)


def _sdk_session(world: World) -> RequestFactory:
    company_id = world.company()
    body = {"component": "link", "consentVersion": "2026-10"}
    return lambda: Request("POST", f"/companies/{company_id}/sdk-sessions", world.customer, body)


def _revoke(world: World) -> RequestFactory:
    def request() -> Request:
        company_id = world.company()
        connection_id = world.linked_connection(company_id, first_read=False)
        return Request("DELETE", f"/companies/{company_id}/connections/{connection_id}", world.customer)

    return request


def _revoke_pending(world: World) -> RequestFactory:
    def request() -> Request:
        company_id = world.company()
        connection_id = world.connection(company_id)
        return Request("DELETE", f"/companies/{company_id}/connections/{connection_id}", world.customer)

    return request


def _revoke_again(world: World) -> RequestFactory:
    request = _revoke(world)()
    assert request.send(world.api).status == 200
    return lambda: request


def _erase(world: World) -> RequestFactory:
    def request() -> Request:
        company_id = world.company()
        world.connection(company_id)
        return Request("DELETE", f"/companies/{company_id}", world.customer)

    return request


def _connection_webhook(event_type: str, status: str, *, linked: bool = False) -> Callable[[World], RequestFactory]:
    def prepare(world: World) -> RequestFactory:
        company_id = world.company()
        connection_id = (world.linked_connection if linked else world.connection)(company_id)
        return lambda: world.webhook(world.connection_webhook(event_type, company_id, connection_id, status))

    return prepare


def _adopted_connection_webhook(world: World) -> RequestFactory:
    company_id = world.company()

    def request() -> Request:
        connection_id = str(uuid.uuid4())  # made with Codat's hosted link: we have not seen it yet
        return world.webhook(world.connection_webhook("connection.created", company_id, connection_id, "PendingAuth"))

    return request


def _read_webhook(*, initial: bool) -> Callable[[World], RequestFactory]:
    def prepare(world: World) -> RequestFactory:
        company_id = world.company()
        connection_id = world.linked_connection(company_id)
        return lambda: world.webhook(read_event(company_id=company_id, connection_ids=[connection_id], initial=initial))

    return prepare


def _company_webhook(event_type: str) -> Callable[[World], RequestFactory]:
    def prepare(world: World) -> RequestFactory:
        company_id = world.company()
        world.connection(company_id)
        return lambda: world.webhook(company_event(event_type, reference_company(company_id)))

    return prepare


def _notice_webhook(world: World) -> RequestFactory:
    return lambda: world.webhook(envelope("client.rateLimit.reached", {"dailyQuota": 1000, "quotaRemaining": 0}))


def _other_type_webhook(world: World) -> RequestFactory:
    company_id = world.company()
    payload = {"referenceCompany": reference_company(company_id), "dataType": "invoices"}
    return lambda: world.webhook(envelope("invoices.written", payload))


def _unknown_company_webhook(world: World) -> RequestFactory:
    return lambda: world.webhook(
        world.connection_webhook("connection.connected", str(uuid.uuid4()), str(uuid.uuid4()), "Linked")
    )


def _redelivered_webhook(world: World) -> RequestFactory:
    company_id = world.company()
    connection_id = world.connection(company_id)
    body = world.connection_webhook("connection.failed", company_id, connection_id, "PendingAuth")
    message_id = f"msg_{uuid.uuid4().hex}"
    assert world.webhook(body, message_id=message_id).send(world.api).status == 204
    return lambda: world.webhook(body, message_id=message_id)


def _badly_signed_webhook(world: World) -> RequestFactory:
    other = "whsec_" + "bm90LXRoZS1zZWNyZXQtY29kYXQtc2lnbnMtd2l0aA=="  # not the secret Codat signs with
    body = envelope("company.created", reference_company(str(uuid.uuid4())))
    return lambda: world.webhook(body, secret=other)


CASES: tuple[Case, ...] = (
    Case("POST /companies", 201, _new_company),
    Case("POST /companies (same Idempotency-Key again)", 201, _replayed_company),
    Case("POST /companies/{companyId}/journeys", 200, _start_journey),
    Case("GET /companies", 200, _list_companies),
    Case("GET /companies/{companyId}", 200, _company_read("")),
    Case("GET /companies/{companyId} (another customer's)", 404, _company_read("", other_customer=True)),
    Case("GET /companies/{companyId}/connections", 200, _company_read("/connections")),
    Case("GET /companies/{companyId}/events", 200, _company_read("/events")),
    Case("GET /journeys", 200, _journeys),
    Case("GET /integrations", 200, _integrations),
    Case("GET /integrations (new container or cache expired)", 200, _integrations_uncached, new_container=True),
    Case("POST /companies/{companyId}/connections", 201, _new_connection),
    Case("POST /companies/{companyId}/connections (reused)", 200, _reused_connection),
    Case("GET /companies/{companyId}/access-token", 200, _access_token),
    Case("POST /companies/{companyId}/sdk-sessions", 201, _sdk_session),
    Case("DELETE /companies/{companyId}/connections/{connectionId}", 200, _revoke),
    Case("DELETE /companies/{companyId}/connections/{connectionId} (not Linked)", 200, _revoke_again),
    Case("DELETE /companies/{companyId}/connections/{connectionId} (PendingAuth)", 200, _revoke_pending),
    Case("DELETE /companies/{companyId}", 204, _erase),
    Case("webhook connection.created", 204, _connection_webhook("connection.created", "PendingAuth")),
    Case("webhook connection.created (made outside our API)", 204, _adopted_connection_webhook),
    Case("webhook connection.connected", 204, _connection_webhook("connection.connected", "Linked")),
    Case("webhook connection.reconnected", 204, _connection_webhook("connection.reconnected", "Linked", linked=True)),
    Case("webhook connection.failed", 204, _connection_webhook("connection.failed", "PendingAuth")),
    Case(
        "webhook connection.disconnected",
        204,
        _connection_webhook("connection.disconnected", "Deauthorized", linked=True),
    ),
    Case("webhook connection.deleted", 204, _connection_webhook("connection.deleted", "Unlinked", linked=True)),
    Case("webhook read.completed.initial", 204, _read_webhook(initial=True)),
    Case("webhook read.completed", 204, _read_webhook(initial=False)),
    Case("webhook company.created", 204, _company_webhook("company.created")),
    Case("webhook company.deleted", 204, _company_webhook("company.deleted")),
    Case("webhook client.rateLimit.reached", 204, _notice_webhook),
    Case("webhook of another type (parked)", 204, _other_type_webhook),
    Case("webhook about an unknown company (parked)", 204, _unknown_company_webhook),
    Case("webhook redelivered", 204, _redelivered_webhook),
    Case("webhook with a bad signature", 401, _badly_signed_webhook),
)
assert [case.name for case in CASES] == list(BUDGET), "every budgeted request has exactly one case, in order"


def rehearse(case: Case, world: World, counter: CallCounter) -> Counted:
    """Set up `case` and count the calls of its one request."""
    api = LocalApi(world.new_services()) if case.new_container else world.api
    request = case.prepare(world)()
    with counter.watching_new_clients(), counter.measure() as counted:
        response = request.send(api)
    if response.status != case.status:
        raise AssertionError(f"{case.name}: expected {case.status}, got {response.status}: {response.text[:300]}")
    return counted
