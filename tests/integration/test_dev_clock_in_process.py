"""`make dev`'s clock in-process (the `dev_clock` fixture): the product on it and the Codat simulator read one moved
time, what the simulator has due by then happens when it moves (first reads, webhook retries), and a scheduled
function runs on the event its schedule sends, in the moved time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from consent.codat.client import CodatClient
from consent.services import Services
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.clock import ClockError, DevClock
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import DEV_WEBHOOK_SECRET
from consent_dev.lambda_runtime import LambdaContext, load_handler, scheduled_event
from consent_dev.local_api import LocalApi
from consent_dev.template import functions, schedules

ALICE = "customer-alice"
WAIT_SECONDS = 10.0


@pytest.fixture
def services(settings: Settings, store: DynamoDBConsentStore, codat: CodatClient, dev_clock: DevClock) -> Services:
    # The product on the dev clock (conftest's `services`, on the moved time).
    return Services(settings, store=store, codat=codat, clock=dev_clock)


@pytest.fixture
def api(services: Services) -> LocalApi:
    return LocalApi(services)


def instant(text: str) -> datetime:
    head, _, fraction = text.removesuffix("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]:0<6}+00:00")


def test_the_product_on_the_dev_clock_and_codat_read_one_moved_time(
    api: LocalApi, simulator: CodatSimulator, dev_clock: DevClock
) -> None:
    # When the clock moves on ninety days (an open banking consent's lifetime)
    dev_clock.advance(timedelta(days=90))

    # Then both read it: one offset
    assert dev_clock.offset == simulator.clock.offset == timedelta(days=90)
    # And a company created now is created ninety days on, by us and by Codat
    start = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
    created = api.post("/companies", customer=ALICE, json={"name": "Acme Bakery Ltd", "journey": "onboarding"})
    end = datetime.now(UTC) + timedelta(days=90)
    assert created.status == 201, created.text
    assert start <= instant(created.body["createdAt"]) <= end
    assert start <= instant(simulator.get_company(created.body["companyId"])["created"]) <= end


def test_the_clock_never_moves_back(dev_clock: DevClock) -> None:
    dev_clock.advance(timedelta(hours=1))
    with pytest.raises(ClockError, match="only moves forward"):
        dev_clock.advance(timedelta(seconds=-1))
    with pytest.raises(ClockError, match="ahead"):
        dev_clock.advance(timedelta(days=36500))
    assert dev_clock.offset == timedelta(hours=1)


def test_a_first_read_completes_when_the_clock_reaches_it(simulator: CodatSimulator, dev_clock: DevClock) -> None:
    # Given a connection Codat has just linked, its first read due in an hour
    simulator.initial_read_delay = 3600
    company = simulator.add_company("Acme Bakery Ltd")
    connection = simulator.add_connection(company.id, "qhnd", status="Linked")

    def reads() -> list[str]:
        return [e.body["generatedDate"] for e in simulator.state.events if e.event_type == "read.completed.initial"]

    # When the clock moves on 59 minutes: not yet
    dev_clock.advance(timedelta(minutes=59))
    assert (reads(), [r.connection_id for r in simulator.state.pending_reads]) == ([], [connection.id])

    # When it moves on the last minute: done by the time the move returns, stamped in the moved time
    dev_clock.advance(timedelta(minutes=1))
    [read] = reads()
    assert simulator.state.pending_reads == []
    assert abs(instant(read) - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=WAIT_SECONDS)


def test_a_webhook_retry_comes_when_the_clock_reaches_it(simulator: CodatSimulator, dev_clock: DevClock) -> None:
    # Given the bank's receiver fails Codat's first attempt, and the retry waits five minutes
    answers = iter([503])
    received: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request.headers["webhook-id"])
        return httpx.Response(next(answers, 204))

    url = "https://bank.example/webhooks/codat"
    transport = httpx.MockTransport(receiver)
    simulator.configure_webhooks(url, DEV_WEBHOOK_SECRET, schedule=[0, 300], transport=transport)
    try:
        simulator.add_company("Acme Bakery Ltd")
        first_attempt_recorded(simulator)
        [message] = simulator.webhook_messages
        assert message.status == "pending"
        assert message.next_attempt - time.monotonic() > 290

        # When the clock moves on four minutes: the retry still waits (a minute)
        dev_clock.advance(timedelta(minutes=4))
        [message] = simulator.webhook_messages
        assert (message.status, message.attempts) == ("pending", 1)
        assert message.next_attempt - time.monotonic() > 50

        # When it moves on the fifth: the retry is due, and delivered
        dev_clock.advance(timedelta(minutes=1))
        assert simulator.flush_deliveries(WAIT_SECONDS)
    finally:
        simulator.stop_deliveries()
    [message] = simulator.webhook_messages
    assert (message.status, message.attempts) == ("delivered", 2)
    assert received == [message.message_id, message.message_id]


def first_attempt_recorded(simulator: CodatSimulator) -> None:
    """Until the delivery worker has recorded its first attempt (and so set the wait before the next)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not simulator.deliveries:
        assert time.monotonic() < deadline, "the first attempt was never made"
        time.sleep(0.005)


def test_a_scheduled_function_runs_on_its_schedule_s_event_in_the_moved_time(
    api: LocalApi, services: Services, simulator: CodatSimulator, dev_clock: DevClock
) -> None:
    # Given a connection whose link was never opened
    created = api.post("/companies", customer=ALICE, json={"name": "Acme Bakery Ltd", "journey": "onboarding"})
    company_id = created.body["companyId"]
    connection = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
    assert connection.status == 201, connection.text

    # When the clock moves past the age a link may wait, and reconciliation's schedule fires
    dev_clock.advance(timedelta(hours=services.settings.pending_auth_max_age_hours + 1))
    [schedule] = [s for s in schedules() if s.function == "ReconcileFunction"]
    [function] = [f for f in functions() if f.logical_id == schedule.function]
    event = scheduled_event(schedule, dev_clock())
    handler = load_handler(function.code_uri, function.handler)
    report = handler(event, LambdaContext(function.logical_id, timeout_seconds=300), services=services)

    # Then EventBridge's event said when, in the moved time; and the run expired the forgotten link
    assert (event["source"], event["detail-type"]) == ("aws.events", "Scheduled Event")
    assert abs(instant(event["time"]) - dev_clock()) < timedelta(seconds=WAIT_SECONDS)
    assert (report["stopped"], report["expired"]) == ("pass_complete", 1)
    assert connection.body["connectionId"] not in simulator.companies[company_id].connections
