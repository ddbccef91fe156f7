"""The Codat simulator as the customer and the bank meet it: signed webhook deliveries with Codat's retries, the Link
pages over real HTTP, the control route that rehearses re-consent, and the whole journey into the product."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from consent.webhooks.signature import decode_secret, verify
from consent_dev.codat_simulator import CODAT_EVENT_TYPES, CodatSimulator, SimServer, serve
from consent_dev.codat_webhooks import DEV_WEBHOOK_SECRET
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.unit

SECRET = DEV_WEBHOOK_SECRET
FAST = 0.001  # Codat's retry waits, a thousand times shorter
QUICK_READ = 0.05  # read.completed.initial this long after an authorization
ALICE = "customer-alice"

Answer = int | Callable[[], int]


# --- a webhook endpoint on 127.0.0.1 ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def event_type(self) -> str:
        return str(self.event["eventType"])

    def verifies(self, secret: str = SECRET) -> bool:
        verify(self.headers, self.body, [decode_secret(secret)])  # raises SignatureError otherwise
        return True


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class Receiver:
    """Records every request; answers the scripted statuses in turn (a callable answers after doing something, e.g.
    sleeping), then ``default`` (a status, or a callable of the request)."""

    def __init__(self, *answers: Answer, default: int | Callable[[Received], int] = 204) -> None:
        self.requests: list[Received] = []
        self._answers = list(answers)
        self._default = default
        self._lock = threading.Lock()
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        # A short poll interval: shutting down waits for it.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/webhooks/codat"

    def types(self) -> list[str]:
        return [r.event_type for r in self.requests]

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        received = Received({k.lower(): v for k, v in request.headers.items()}, request.get_data())
        with self._lock:
            self.requests.append(received)
            answer = self._answers.pop(0) if self._answers else None
        if answer is None:
            status = self._default(received) if callable(self._default) else self._default
        else:
            status = answer() if callable(answer) else answer
        return Response(status=status)(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def slow(seconds: float, status: int = 204) -> Callable[[], int]:
    def answer() -> int:
        time.sleep(seconds)
        return status

    return answer


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    opened: list[Receiver] = []

    def open_(*answers: Answer, default: int | Callable[[Received], int] = 204) -> Receiver:
        opened.append(Receiver(*answers, default=default))
        return opened[-1]

    yield open_
    for receiver in opened:
        receiver.close()


@pytest.fixture
def codat_sim() -> Iterator[CodatSimulator]:
    """A simulator whose first reads complete in 50 ms; its delivery worker is stopped afterwards."""
    sim = CodatSimulator(initial_read_delay=QUICK_READ)
    yield sim
    sim.stop_deliveries()
    assert sim.contract_violations == []  # every request, response and webhook body as Codat's spec says


@pytest.fixture
def server(codat_sim: CodatSimulator) -> Iterator[SimServer]:
    with serve(codat_sim) as running:
        yield running


@pytest.fixture
def http(server: SimServer, codat_sim: CodatSimulator) -> Iterator[httpx.Client]:
    # A browser-like client on the simulator's port: it does not follow redirects unless asked.
    with httpx.Client(base_url=server.url, headers={"Authorization": codat_sim.authorization}, timeout=5.0) as client:
        yield client


def new_connection(http: httpx.Client, platform_key: str = "qhnd", name: str = "Acme Bakery") -> dict[str, Any]:
    company = http.post("/companies", json={"name": name}).json()
    connection = http.post(f"/companies/{company['id']}/connections", json={"platformKey": platform_key}).json()
    return {"companyId": company["id"], **connection}


def link_form(page: httpx.Response) -> str:
    """The Authorize/Cancel form's target, resolved against the page's URL as a browser does."""
    found = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert found is not None, page.text
    return str(page.url.join(html.unescape(found.group(1))))


# --- webhook deliveries -----------------------------------------------------------------------------------------


def test_every_event_is_delivered_signed_once_and_in_order(
    codat_sim: CodatSimulator, http: httpx.Client, receivers: Callable[..., Receiver]
) -> None:
    # Given a webhook endpoint
    endpoint = receivers()
    codat_sim.configure_webhooks(endpoint.url, SECRET)

    # When a company and connection are made, authorized on the link page, unlinked and deleted
    connection = new_connection(http)
    company_id, connection_id = connection["companyId"], connection["id"]
    http.post(link_form(http.get(connection["linkUrl"])), data={"action": "authorize"})
    assert codat_sim.flush_deliveries(5.0)
    http.patch(f"/companies/{company_id}/connections/{connection_id}", json={"status": "Unlinked"})
    http.delete(f"/companies/{company_id}/connections/{connection_id}")
    http.delete(f"/companies/{company_id}")
    assert codat_sim.flush_deliveries(5.0)

    # Then every event arrived once, in order, signed with the secret, under its own webhook-id
    assert endpoint.types() == [
        "company.created",
        "connection.created",
        "connection.connected",
        "read.completed.initial",
        "connection.disconnected",
        "connection.deleted",
        "company.deleted",
    ]
    assert all(r.verifies() for r in endpoint.requests)
    assert len({r.headers["webhook-id"] for r in endpoint.requests}) == len(endpoint.requests)
    assert [r.event["id"] for r in endpoint.requests] == [e.id for e in codat_sim.events]
    statuses = [
        (r.event_type, r.event["payload"]["connection"]["status"])
        for r in endpoint.requests
        if r.event_type.startswith("connection.")
    ]
    assert statuses == [
        ("connection.created", "PendingAuth"),
        ("connection.connected", "Linked"),
        ("connection.disconnected", "Unlinked"),
        ("connection.deleted", "Unlinked"),
    ]
    connected = endpoint.requests[2].event["payload"]
    assert connected["referenceCompany"]["name"] == "Acme Bakery"
    assert connected["connection"]["integrationKey"] == "qhnd"
    assert connected["connection"]["sourceType"] == "Banking"
    read = endpoint.requests[3].event["payload"]
    assert {d["connectionId"] for d in read["dataTypes"]} == {connection_id}
    assert [(m.status, m.attempts) for m in codat_sim.webhook_messages] == [("delivered", 1)] * 7


def test_a_failed_attempt_is_retried_with_the_same_webhook_id_and_a_fresh_signature(
    codat_sim: CodatSimulator, receivers: Callable[..., Receiver]
) -> None:
    # Given an endpoint that fails once; the retry waits just over a second so the timestamp must change
    endpoint = receivers(500)
    codat_sim.configure_webhooks(endpoint.url, SECRET, schedule=[0, 1.05])

    codat_sim.add_company("Acme Bakery")
    assert codat_sim.flush_deliveries(5.0)

    first, second = endpoint.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    assert first.verifies()
    assert second.verifies()
    assert [(d.attempt, d.status, d.succeeded) for d in codat_sim.deliveries] == [(1, 500, False), (2, 204, True)]
    assert codat_sim.webhook_messages[0].status == "delivered"


@pytest.mark.parametrize(
    ("first_answer", "failure"),
    [(302, "302"), (slow(0.6), "timeout"), (404, "404")],
    ids=["a-redirect", "a-timeout", "a-4xx"],
)
def test_anything_but_a_2xx_in_time_is_a_failed_attempt(
    codat_sim: CodatSimulator, receivers: Callable[..., Receiver], first_answer: Answer, failure: str
) -> None:
    endpoint = receivers(first_answer)
    codat_sim.configure_webhooks(endpoint.url, SECRET, schedule=[0, 0.01], timeout=0.3)

    codat_sim.add_company("Acme Bakery")
    assert codat_sim.flush_deliveries(5.0)

    first, second = codat_sim.deliveries
    assert failure in f"{first.status} {first.error}"
    assert not first.succeeded
    assert second.succeeded
    assert len({r.headers["webhook-id"] for r in endpoint.requests}) == 1


def test_a_message_is_marked_failed_after_codats_eight_attempts(
    codat_sim: CodatSimulator, receivers: Callable[..., Receiver]
) -> None:
    # Codat's schedule (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) a million times shorter: about 0.1 s
    endpoint = receivers(default=503)
    codat_sim.configure_webhooks(endpoint.url, SECRET, time_scale=1e-6)

    codat_sim.add_company("Acme Bakery")
    assert codat_sim.flush_deliveries(5.0)

    [message] = codat_sim.webhook_messages
    assert (message.status, message.attempts) == ("failed", 8)
    assert [(d.attempt, d.status) for d in codat_sim.deliveries] == [(n, 503) for n in range(1, 9)]
    assert len(endpoint.requests) == 8


def test_a_failing_message_does_not_hold_back_the_others_and_an_unreachable_endpoint_is_retried(
    codat_sim: CodatSimulator, receivers: Callable[..., Receiver]
) -> None:
    # Given an endpoint that refuses the first company's event until its third attempt
    def answer(request: Received) -> int:
        refused = (
            request.event["payload"]["name"] == "First"
            and sum(1 for r in endpoint.requests if r.event["payload"]["name"] == "First") < 3
        )
        return 500 if refused else 204

    endpoint = receivers(default=answer)
    codat_sim.configure_webhooks(endpoint.url, SECRET, schedule=[0, 0.1, 0.1])

    codat_sim.add_company("First")
    codat_sim.add_company("Second")
    assert codat_sim.flush_deliveries(5.0)

    names = [r.event["payload"]["name"] for r in endpoint.requests]
    assert names == ["First", "Second", "First", "First"]  # Second went while First waited for its retry
    assert [m.status for m in codat_sim.webhook_messages] == ["delivered", "delivered"]

    # And nothing listening at all: connection errors, retried, then failed
    endpoint.close()
    codat_sim.configure_webhooks(endpoint.url, SECRET, schedule=[0, 0.01])
    codat_sim.add_company("Third")
    assert codat_sim.flush_deliveries(5.0)
    assert [d.error is not None and "Connect" in d.error for d in codat_sim.deliveries[-2:]] == [True, True]
    assert codat_sim.webhook_messages[-1].status == "failed"


def test_without_an_endpoint_events_are_only_recorded_and_the_first_read_still_completes(
    codat_sim: CodatSimulator,
) -> None:
    company = codat_sim.add_company("Acme Bakery")
    connection = codat_sim.add_connection(company.id, "qhnd")
    codat_sim.set_connection_status(company.id, connection.id, "Linked")

    assert codat_sim.flush_deliveries(2.0)
    assert [e.event_type for e in codat_sim.events] == [
        "company.created",
        "connection.created",
        "connection.connected",
        "read.completed.initial",
    ]
    assert codat_sim.deliveries == []
    assert codat_sim.events[-1].body["payload"]["dataTypes"][0]["connectionId"] == connection.id


def test_a_read_is_not_announced_for_a_connection_disconnected_before_it_completed(codat_sim: CodatSimulator) -> None:
    codat_sim.initial_read_delay = 60
    company = codat_sim.add_company("Acme Bakery")
    connection = codat_sim.add_connection(company.id, "qhnd", status="Linked")
    codat_sim.deauthorize(company.id, connection.id)
    codat_sim.deliver_now()

    assert "read.completed.initial" not in [e.event_type for e in codat_sim.events]
    assert codat_sim.flush_deliveries(0.5)


# --- webhook consumers: who gets what ---------------------------------------------------------------------------


def test_each_event_goes_to_every_enabled_consumer_whose_event_types_include_it(
    codat_sim: CodatSimulator, http: httpx.Client, receivers: Callable[..., Receiver]
) -> None:
    # Given four consumers made through Codat's API: two subscribed to some types, one disabled, one to no type
    everything = ["company.created", "connection.created", "connection.connected", "read.completed.initial"]
    bank, reads, disabled, empty = receivers(), receivers(), receivers(), receivers()
    for endpoint, body in (
        (bank, {"url": bank.url, "eventTypes": everything[:3]}),
        (reads, {"url": reads.url, "eventTypes": ["company.created", "read.completed.initial"]}),
        (disabled, {"url": disabled.url, "eventTypes": everything, "disabled": True}),
        (empty, {"url": empty.url, "eventTypes": []}),
    ):
        assert http.post("/webhooks", json=body).status_code == 201, endpoint.url
    codat_sim.configure_deliveries(SECRET)

    # When a company is made and its connection authorized (first read included)
    connection = new_connection(http)
    codat_sim.set_connection_status(connection["companyId"], connection["id"], "Linked")
    assert codat_sim.flush_deliveries(5.0)

    # Then each enabled consumer got exactly its types, signed; the disabled one and the one of no type nothing
    assert bank.types() == everything[:3]
    assert reads.types() == ["company.created", "read.completed.initial"]
    assert (disabled.requests, empty.requests) == ([], [])
    assert all(r.verifies() for r in bank.requests + reads.requests)
    # and one event is one message id (`webhook-id`) to every consumer, as Svix's
    assert bank.requests[0].headers["webhook-id"] == reads.requests[0].headers["webhook-id"]
    assert {(m.consumer_id, m.status) for m in codat_sim.webhook_messages} == {
        (c.id, "delivered") for c in codat_sim.webhook_consumers if c.url in (bank.url, reads.url)
    }


def test_a_consumer_with_company_tags_gets_only_the_events_of_companies_carrying_every_one(
    codat_sim: CodatSimulator, receivers: Callable[..., Receiver]
) -> None:
    uk, gold_uk = receivers(), receivers()
    codat_sim.add_webhook_consumer(uk.url, ["company.created"], company_tags=["region:uk"])
    codat_sim.add_webhook_consumer(gold_uk.url, ["company.created"], company_tags=["region:uk", "tier:gold"])
    codat_sim.configure_deliveries(SECRET)

    codat_sim.add_company("Untagged")
    codat_sim.add_company("British", tags={"region": "uk"})
    codat_sim.add_company("British Gold", tags={"region": "uk", "tier": "gold"})
    codat_sim.add_company("Case Differs", tags={"region": "UK", "tier": "gold"})
    assert codat_sim.flush_deliveries(5.0)

    assert [r.event["payload"]["name"] for r in uk.requests] == ["British", "British Gold"]
    assert [r.event["payload"]["name"] for r in gold_uk.requests] == ["British Gold"]


def test_configure_webhooks_is_one_consumer_of_every_event_type_which_configuring_again_moves(
    codat_sim: CodatSimulator, http: httpx.Client, receivers: Callable[..., Receiver]
) -> None:
    first, second = receivers(), receivers()
    codat_sim.configure_webhooks(first.url, SECRET)
    [consumer] = http.get("/webhooks").json()["results"]
    assert consumer["url"] == first.url
    assert set(consumer["eventTypes"]) == set(CODAT_EVENT_TYPES)

    codat_sim.configure_webhooks(second.url, SECRET)
    codat_sim.add_company("Acme Bakery")
    assert codat_sim.flush_deliveries(5.0)

    assert [(c["id"], c["url"]) for c in http.get("/webhooks").json()["results"]] == [(consumer["id"], second.url)]
    assert (first.types(), second.types()) == ([], ["company.created"])
    assert codat_sim.webhook_url == second.url


def test_the_disable_route_stops_deliveries_to_that_consumer_as_codat_does_after_days_of_failures(
    codat_sim: CodatSimulator, http: httpx.Client, server: SimServer, receivers: Callable[..., Receiver]
) -> None:
    # Given a consumer whose endpoint failed once, its retry five minutes away, and a healthy one beside it
    failing, healthy = receivers(500), receivers()
    doomed = codat_sim.add_webhook_consumer(failing.url, ["company.created"])
    codat_sim.add_webhook_consumer(healthy.url, ["company.created"])
    codat_sim.configure_deliveries(SECRET, schedule=[0, 300])
    codat_sim.add_company("First")
    deadline = time.monotonic() + 5.0
    while len(codat_sim.deliveries) < 2 and time.monotonic() < deadline:  # each consumer's first attempt
        time.sleep(0.01)
    assert sorted(d.status or 0 for d in codat_sim.deliveries) == [204, 500]

    # When Codat disables it (the simulator's control route: no API key, not Codat's API)
    route = f"{server.url}/_simulator/webhooks/{doomed.id}/disable"
    with httpx.Client(timeout=5.0) as anonymous:
        disabled = anonymous.post(route)
        unknown = anonymous.post(route.replace(doomed.id, "7b1f5a8e-0c0a-4a55-9d61-2f4d3b8e6c01"))
        wrong_method = anonymous.get(route)
    codat_sim.add_company("Second")

    # Then its pending message ends unsent and nothing more goes to it; the other consumer gets everything
    assert codat_sim.flush_deliveries(5.0)
    assert (disabled.status_code, disabled.json()["disabled"]) == (200, True)
    assert (unknown.status_code, wrong_method.status_code) == (404, 405)
    assert [r.event["payload"]["name"] for r in failing.requests] == ["First"]
    assert [r.event["payload"]["name"] for r in healthy.requests] == ["First", "Second"]
    assert [(m.status, m.attempts) for m in codat_sim.webhook_messages if m.consumer_id == doomed.id] == [("failed", 1)]
    # and Codat's API shows it disabled
    assert [c["disabled"] for c in http.get("/webhooks").json()["results"]] == [True, False]


# --- the Link pages, over real HTTP -----------------------------------------------------------------------------


def test_the_link_page_names_the_integration_and_company_and_offers_authorize_and_cancel(
    http: httpx.Client, server: SimServer
) -> None:
    connection = new_connection(http, name="Acme Bakery")
    assert connection["linkUrl"].startswith(f"{server.url}/link/{connection['companyId']}/{connection['id']}?otp=")

    page = http.get(connection["linkUrl"])

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "Codat Banking Sandbox" in page.text
    assert "Acme Bakery" in page.text
    assert '<html lang="en">' in page.text
    assert re.search(r'<button type="submit" name="action" value="authorize"[^>]*>Authorize</button>', page.text)
    assert re.search(r'<button type="submit" name="action" value="cancel"[^>]*>Cancel</button>', page.text)
    assert link_form(page) == connection["linkUrl"]  # the same URL, otp included
    assert not re.search(r"<script|<link |src=|https?://", page.text)  # self-contained
    assert http.get(connection["linkUrl"]).status_code == 200  # looking does not use the link up


def test_authorizing_links_the_connection_redirects_like_codat_and_sends_the_webhooks(
    codat_sim: CodatSimulator, http: httpx.Client, server: SimServer, receivers: Callable[..., Receiver]
) -> None:
    endpoint = receivers()
    codat_sim.configure_webhooks(endpoint.url, SECRET)
    connection = new_connection(http)
    target = link_form(http.get(connection["linkUrl"]))

    answer = http.post(target, data={"action": "authorize"})

    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{server.url}/link/finished"
    assert parse_qs(location.query) == {
        "companyId": [connection["companyId"]],
        "connectionId": [connection["id"]],
        "statusCode": ["200"],
    }
    finished = http.get(answer.headers["location"])
    assert finished.status_code == 200
    assert "You can close this window" in finished.text
    assert codat_sim.connection(connection["companyId"], connection["id"]).status == "Linked"
    assert codat_sim.flush_deliveries(5.0)
    assert endpoint.types()[-2:] == ["connection.connected", "read.completed.initial"]
    assert all(r.verifies() for r in endpoint.requests)


def test_a_link_works_once_only_for_its_connection_and_for_a_day(codat_sim: CodatSimulator, http: httpx.Client) -> None:
    connection = new_connection(http)
    target = link_form(http.get(connection["linkUrl"]))
    assert http.post(target, data={"action": "authorize"}).status_code == 303

    used = http.post(target, data={"action": "authorize"})
    assert used.status_code == 410
    assert "already been used" in used.text
    assert http.get(connection["linkUrl"]).status_code == 410

    other = new_connection(http, "mqjo")
    wrong_connection = (
        other["linkUrl"].replace(other["id"], connection["id"]).replace(other["companyId"], connection["companyId"])
    )
    assert http.get(wrong_connection).status_code == 403
    assert http.get(f"/link/{other['companyId']}/{other['id']}?otp=guessed").status_code == 403
    assert http.get(f"/link/{other['companyId']}/{other['id']}").status_code == 403

    codat_sim.clock.advance(timedelta(days=1, seconds=1))
    expired = http.get(other["linkUrl"])
    assert expired.status_code == 410
    assert "expired" in expired.text
    assert codat_sim.connection(other["companyId"], other["id"]).status == "PendingAuth"


def test_cancelling_keeps_the_status_records_the_error_and_redirects_to_the_configured_url(
    codat_sim: CodatSimulator, http: httpx.Client, receivers: Callable[..., Receiver]
) -> None:
    codat_sim.redirect_url = "https://bank.example/consent/done?flow=onboarding"
    endpoint = receivers()
    codat_sim.configure_webhooks(endpoint.url, SECRET)
    connection = new_connection(http)

    answer = http.post(link_form(http.get(connection["linkUrl"])), data={"action": "cancel"})

    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert location.netloc == "bank.example"
    assert parse_qs(location.query) == {
        "flow": ["onboarding"],
        "companyId": [connection["companyId"]],
        "connectionId": [connection["id"]],
        "statusCode": ["403"],
        "errorMessage": ["User cancelled"],
    }
    shown = http.get(f"/companies/{connection['companyId']}/connections/{connection['id']}").json()
    assert shown["status"] == "PendingAuth"
    assert shown["dataConnectionErrors"][0]["errorMessage"] == "User cancelled"
    assert codat_sim.flush_deliveries(5.0)
    failed = endpoint.requests[-1]
    assert failed.event_type == "connection.failed"
    assert failed.event["payload"]["connection"]["status"] == "PendingAuth"
    assert failed.event["payload"]["connection"]["dataConnectionErrors"][0]["statusCode"] == "403"
    assert failed.verifies()


def test_codats_reserved_redirect_parameters_are_filled_in(codat_sim: CodatSimulator, http: httpx.Client) -> None:
    codat_sim.redirect_url = "https://bank.example/{sourceType}/done?status={statusCode}&company={companyId}"
    connection = new_connection(http)

    answer = http.post(link_form(http.get(connection["linkUrl"])), data={"action": "authorize"})

    assert answer.headers["location"] == (
        f"https://bank.example/banking/done?status=200&company={connection['companyId']}"
    )


def test_a_link_post_without_a_valid_action_changes_nothing(codat_sim: CodatSimulator, http: httpx.Client) -> None:
    connection = new_connection(http)
    target = link_form(http.get(connection["linkUrl"]))

    assert http.post(target, data={"action": "approve"}).status_code == 400
    assert http.put(target).status_code == 405
    assert http.post(target, data={"action": "authorize"}).status_code == 303  # the otp was not used up


# --- the control route: rehearsing re-consent -------------------------------------------------------------------


def test_the_deauthorize_route_revokes_and_a_fresh_link_reconnects(
    codat_sim: CodatSimulator, http: httpx.Client, server: SimServer, receivers: Callable[..., Receiver]
) -> None:
    endpoint = receivers()
    codat_sim.configure_webhooks(endpoint.url, SECRET)
    connection = new_connection(http)
    company_id, connection_id = connection["companyId"], connection["id"]
    route = f"{server.url}/_simulator/companies/{company_id}/connections/{connection_id}/deauthorize"
    requests_before = len(codat_sim.requests)

    with httpx.Client(timeout=5.0) as anonymous:  # no API key: not Codat's API
        assert anonymous.post(route).status_code == 409  # PendingAuth: nothing to revoke
        http.post(link_form(http.get(connection["linkUrl"])), data={"action": "authorize"})
        assert codat_sim.flush_deliveries(5.0)  # the first read completes before access is revoked
        revoked = anonymous.post(route)
        assert anonymous.post(route).status_code == 200  # already Deauthorized: no change
        unknown = anonymous.post(route.replace(connection_id, "7b1f5a8e-0c0a-4a55-9d61-2f4d3b8e6c01"))
        assert anonymous.get(route).status_code == 405

    assert revoked.status_code == 200
    assert revoked.json()["status"] == "Deauthorized"
    assert unknown.status_code == 404
    assert not [r for r in codat_sim.requests[requests_before:] if r.path.startswith("/_simulator")]

    # And a fresh link (Codat's linkUrl on the next read) re-authorizes it
    fresh = http.get(f"/companies/{company_id}/connections/{connection_id}").json()["linkUrl"]
    http.post(link_form(http.get(fresh)), data={"action": "authorize"})
    assert codat_sim.flush_deliveries(5.0)
    assert endpoint.types()[2:] == [
        "connection.connected",
        "read.completed.initial",
        "connection.disconnected",
        "connection.reconnected",
        "read.completed.initial",
    ]
    disconnected = endpoint.requests[4].event["payload"]["connection"]
    assert disconnected["status"] == "Deauthorized"
    assert disconnected["dataConnectionErrors"][0]["statusCode"] == "401"


def test_the_flush_route_completes_pending_reads_and_retries_now(
    codat_sim: CodatSimulator, server: SimServer, receivers: Callable[..., Receiver]
) -> None:
    # Given a read due in a minute and an endpoint that failed once, whose retry waits five minutes
    codat_sim.initial_read_delay = 60
    endpoint = receivers(500)
    codat_sim.configure_webhooks(endpoint.url, SECRET, schedule=[0, 300])
    company = codat_sim.add_company("Acme Bakery")
    codat_sim.add_connection(company.id, "qhnd", status="Linked")

    with httpx.Client(timeout=10.0) as anonymous:
        flushed = anonymous.post(f"{server.url}/_simulator/webhooks/flush", params={"timeout": 5})
        summary = anonymous.get(f"{server.url}/_simulator/webhooks").json()

    assert flushed.status_code == 200
    assert flushed.json()["drained"] is True
    assert [m["eventType"] for m in summary["messages"]] == [
        "company.created",
        "connection.created",
        "connection.connected",
        "read.completed.initial",
    ]
    assert {m["status"] for m in summary["messages"]} == {"delivered"}
    assert [a["status"] for a in summary["messages"][0]["attempts"]] == [500, 204]
    assert summary["url"] == endpoint.url


# --- the whole journey, into the product's own webhook handler --------------------------------------------------


def test_authorizing_on_the_link_page_completes_the_journey_in_the_product(
    api: LocalApi, simulator: CodatSimulator, receivers: Callable[..., Receiver]
) -> None:
    # Given the product's webhook route behind a local HTTP endpoint, and the simulator serving its link pages
    def product(request: Received) -> int:
        return api.post("/webhooks/codat", body=request.body, headers=request.headers).status

    endpoint = receivers(default=product)
    simulator.initial_read_delay = QUICK_READ
    simulator.configure_webhooks(endpoint.url, SECRET)
    try:
        with serve(simulator) as server, httpx.Client(timeout=5.0) as browser:
            created = api.post("/companies", customer=ALICE, json={"name": "Acme Bakery Ltd", "journey": "onboarding"})
            company_id = created.body["companyId"]
            connected = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
            link_url = connected.body["linkUrl"]
            assert link_url.startswith(f"{server.url}/link/")

            # When the customer authorizes on Codat's link page
            answer = browser.post(link_form(browser.get(link_url)), data={"action": "authorize"})
            assert answer.status_code == 303
            assert simulator.flush_deliveries(10.0)
    finally:
        simulator.stop_deliveries()

    # Then every webhook was accepted and the onboarding journey is complete
    assert [d.status for d in simulator.deliveries] == [204] * len(endpoint.requests)
    assert endpoint.types() == [
        "company.created",
        "connection.created",
        "connection.connected",
        "read.completed.initial",
    ]
    company = api.get(f"/companies/{company_id}", customer=ALICE).body
    assert company["journeys"][0]["journey"] == "onboarding"
    assert company["journeys"][0]["status"] == "complete"
    [connection] = company["connections"]
    assert connection["status"] == "Linked"
    assert connection["connectionId"] == connected.body["connectionId"]
