"""`make dev`'s clock and schedules, over HTTP: moving the stack's time forward (`/_dev/clock`) moves the product's
and Codat's together, and what became due happens; the template's scheduled functions run on request
(`/_dev/schedules`), as EventBridge would run them. Neither route exists in the deployed product."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from consent_dev.codat_simulator import CodatSimulator, serve
from consent_dev.devserver import DevStack
from consent_dev.jwt_auth import LocalIssuer
from consent_dev.template import deployed_with, load_template, parameter_defaults, routes, schedules

pytestmark = pytest.mark.e2e

ISSUER = LocalIssuer(url="https://issuer.consent.test")
ALICE = {"Authorization": f"Bearer {ISSUER.token('customer-alice')}"}
DELIVERY_WAIT_SECONDS = 20.0


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with DevStack(port=0, codat_port=0, environ={}, issuer=ISSUER) as running:
        yield running


@pytest.fixture
def http(stack: DevStack) -> Iterator[httpx.Client]:
    stack.reset()  # each test meets an empty deployment (the clock stays where it is: it never goes back)
    with httpx.Client(base_url=stack.api_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def simulator(stack: DevStack) -> CodatSimulator:
    assert stack.simulator is not None
    return stack.simulator


def offset(http: httpx.Client) -> timedelta:
    answer = http.get("/_dev/clock")
    assert answer.status_code == 200, answer.text
    return timedelta(seconds=answer.json()["offsetSeconds"])


def advance(http: httpx.Client, duration: str) -> dict[str, Any]:
    answer = http.post("/_dev/clock", json={"advance": duration})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def instant(text: str) -> datetime:
    """Our timestamps and Codat's (7 fractional digits) alike."""
    head, _, fraction = text.removesuffix("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]:0<6}+00:00")


class Window:
    """Between two readings of the wall clock, moved by the stack's offset: when something happened in moved time.
    Codat stamps to the second in some places, so the window starts at the second."""

    def __init__(self, moved_by: timedelta) -> None:
        self.moved_by = moved_by
        self.start = (datetime.now(UTC) + moved_by).replace(microsecond=0)
        self.end: datetime | None = None

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *_: object) -> None:
        self.end = datetime.now(UTC) + self.moved_by

    def holds(self, text: str) -> bool:
        assert self.end is not None
        return self.start <= instant(text) <= self.end


def new_company(http: httpx.Client) -> str:
    created = http.post("/companies", json={"name": "Acme Bakery Ltd", "journey": "onboarding"}, headers=ALICE)
    assert created.status_code == 201, created.text
    return str(created.json()["companyId"])


def new_connection(http: httpx.Client, company_id: str) -> dict[str, Any]:
    created = http.post(f"/companies/{company_id}/connections", json={"platformKey": "qhnd"}, headers=ALICE)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def authorize_on_link_page(link_url: str) -> None:
    with httpx.Client(timeout=10.0) as browser:
        answer = browser.post(link_url, data={"action": "authorize"})
        assert answer.status_code in (200, 302, 303), answer.text


def ledger(http: httpx.Client, company_id: str) -> list[dict[str, Any]]:
    answer = http.get(f"/companies/{company_id}/events", params={"limit": "100"}, headers=ALICE)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


# -- the clock ---------------------------------------------------------------------------------------------------


def test_moving_the_clock_moves_the_product_s_time_and_codat_s_together(
    http: httpx.Client, stack: DevStack, simulator: CodatSimulator
) -> None:
    # Given the stack's clock, wherever earlier moves left it
    before = offset(http)

    # When it moves on fourteen days
    moved = advance(http, "P14D")

    # Then it reads fourteen days later, by the product's clock and Codat's alike
    assert timedelta(seconds=moved["offsetSeconds"]) == before + timedelta(days=14)
    assert abs(instant(moved["now"]) - (datetime.now(UTC) + before + timedelta(days=14))) < timedelta(minutes=1)
    assert offset(http) == before + timedelta(days=14)

    # And a company created now is created in the moved time, here and in Codat
    with Window(before + timedelta(days=14)) as window:
        company_id = new_company(http)
    company = http.get(f"/companies/{company_id}", headers=ALICE).json()
    assert window.holds(company["createdAt"]), (company["createdAt"], window.start)
    assert window.holds(simulator.get_company(company_id)["created"])

    # And Codat's webhooks for a connection authorized now carry the moved time, as do our records of them
    with Window(before + timedelta(days=14)) as window:
        connection = new_connection(http, company_id)
        authorize_on_link_page(connection["linkUrl"])
        assert simulator.flush_deliveries(DELIVERY_WAIT_SECONDS, hurry=True)
    connected = [
        event.body
        for event in simulator.events
        if event.connection_id == connection["connectionId"] and event.event_type == "connection.connected"
    ]
    assert connected
    assert all(window.holds(body["generatedDate"]) for body in connected), connected
    entries = [e for e in ledger(http, company_id) if e.get("connectionId") == connection["connectionId"]]
    assert {"connection.created", "connection.linked", "sync.completed"} <= {entry["type"] for entry in entries}
    assert all(window.holds(entry["at"]) for entry in entries), entries


def test_first_reads_due_by_the_new_time_complete_when_the_clock_moves(
    http: httpx.Client, simulator: CodatSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Codat takes an hour over each first read
    monkeypatch.setattr(simulator, "initial_read_delay", 3600)
    company_id = new_company(http)
    connection = new_connection(http, company_id)
    authorize_on_link_page(connection["linkUrl"])
    assert [read.connection_id for read in simulator.state.pending_reads] == [connection["connectionId"]]

    # When the clock moves on an hour
    advance(http, "PT1H")

    # Then the read has completed by the time the clock answers, and its webhook completes the journey
    assert simulator.state.pending_reads == []
    assert simulator.flush_deliveries(DELIVERY_WAIT_SECONDS)
    company = http.get(f"/companies/{company_id}", headers=ALICE).json()
    assert company["journeys"][0]["status"] == "complete", company


@pytest.mark.parametrize(
    "body",
    [
        {"advance": "P1W"},  # weeks, years, months and seconds are not days, hours and minutes
        {"advance": "P1Y"},
        {"advance": "PT30S"},
        {"advance": "P1.5D"},
        {"advance": "-P1D"},  # never back
        {"advance": "p14d"},
        {"advance": "P"},
        {"advance": "PT"},
        {"advance": "P1DT"},
        {"advance": "14 days"},
        {"advance": "P99999D"},  # beyond how far it may run ahead
        {"advance": 14},
        {"advance": "P1D", "and": "more"},
        {},
        ["P1D"],
        "P1D",
    ],
)
def test_anything_but_a_forward_duration_of_days_hours_and_minutes_is_refused(http: httpx.Client, body: Any) -> None:
    before = offset(http)
    answer = http.post("/_dev/clock", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "invalid_duration"
    assert offset(http) == before


def test_a_body_that_is_not_json_is_refused_and_the_clock_takes_get_and_post_only(http: httpx.Client) -> None:
    answer = http.post("/_dev/clock", content=b"advance=P1D", headers={"Content-Type": "text/plain"})
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_duration")
    wrong = http.delete("/_dev/clock")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, POST")
    assert wrong.headers["content-type"] == "application/problem+json"


# -- the schedules -----------------------------------------------------------------------------------------------


def test_the_template_s_scheduled_functions_are_listed(http: httpx.Client) -> None:
    answer = http.get("/_dev/schedules")
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    resources, parameters = load_template()["Resources"], parameter_defaults()
    deployed = [s.function for s in schedules() if deployed_with(resources[s.function], parameters)]
    assert [item["function"] for item in items] == list(dict.fromkeys(deployed))
    [reconcile] = [item for item in items if item["function"] == "ReconcileFunction"]
    assert reconcile == {
        "function": "ReconcileFunction",
        "event": "ReconcileSchedule",
        "type": "Schedule",
        "schedule": parameter_defaults()["ReconcileSchedule"],
        "enabled": True,
        "description": reconcile["description"],
        "run": "POST /_dev/schedules/ReconcileFunction",
    }


def test_reconciliation_run_now_expires_a_link_left_unauthorized_past_its_age_in_moved_time(
    http: httpx.Client, simulator: CodatSimulator
) -> None:
    # Given a connection whose link the customer never opened
    company_id = new_company(http)
    connection_id = new_connection(http, company_id)["connectionId"]
    max_age = timedelta(hours=int(parameter_defaults()["PendingAuthMaxAgeHours"]))

    # When reconciliation runs before it is too old: nothing to expire
    first = http.post("/_dev/schedules/ReconcileFunction")
    assert first.status_code == 200, first.text
    assert (first.json()["stopped"], first.json()["expired"]) == ("pass_complete", 0)

    # And again once the clock has moved an hour past its age
    advance(http, f"PT{max_age // timedelta(hours=1) + 1}H")
    with Window(offset(http)) as window:
        report = http.post("/_dev/schedules/ReconcileFunction")

    # Then the handler's report says so (its webhook consumer is the local route's, healthy)
    assert report.status_code == 200, report.text
    assert report.json()["expired"] == 1
    assert report.json()["webhook_consumer"] == "healthy"
    # And the connection is deleted in Codat and recorded expired, by reconciliation, in the moved time
    assert connection_id not in simulator.companies[company_id].connections
    [expired] = [entry for entry in ledger(http, company_id) if entry["type"] == "connection.expired"]
    assert expired["actor"] == "reconcile"
    assert window.holds(expired["at"]), (expired["at"], window.start)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/_dev/schedules/CreateCompanyFunction", 404),  # a function, but not a scheduled one
        ("POST", "/_dev/schedules/NoSuchFunction", 404),
        ("POST", "/_dev/elsewhere", 404),
        ("GET", "/_dev/schedules/ReconcileFunction", 405),
        ("DELETE", "/_dev/schedules", 405),
    ],
)
def test_what_is_not_a_scheduled_function_is_refused(http: httpx.Client, method: str, path: str, status: int) -> None:
    answer = http.request(method, path)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


# -- development only ------------------------------------------------------------------------------------------


def test_the_dev_routes_are_not_the_product_s(http: httpx.Client) -> None:
    assert not [route for route in routes() if route.path.startswith("/_dev")]
    assert not [path for path in http.get("/openapi.json").json()["paths"] if path.startswith("/_dev")]


def test_against_a_real_codat_the_clock_does_not_move() -> None:
    codat = CodatSimulator(api_key="not-the-dev-key")
    with serve(codat) as served:
        environ = {"CODAT_BASE_URL": served.url, "CODAT_API_KEY": "not-the-dev-key"}
        with DevStack(environ=environ, issuer=ISSUER) as stack, httpx.Client(base_url=stack.api_url) as http:
            refused = http.post("/_dev/clock", json={"advance": "P1D"})
            clock = http.get("/_dev/clock").json()
    assert (refused.status_code, refused.json()["code"]) == (409, "clock_not_movable")
    assert clock["offsetSeconds"] == 0
