"""Keep-alive: an accounting connection idle for 30 days gets a refresh of one light data type queued in Codat
(`company`), once, then again a day later if no sync followed; a sync moves its next refresh a month on. Within a
daily budget of Codat requests, oldest due first; what does not fit, or meets Codat failing, waits for the next run
and is reported; our API key refused fails the run loudly. The lifecycle function runs as its schedule would, on a
clock the test moves with Codat's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.codat.errors import CodatAuthFailed
from consent.services import Services
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.clock import DevClock
from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.codat_webhooks import connection_event, read_event, signed
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.local_api import LocalApi
from consent_dev.template import functions

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
DAY = timedelta(days=1)
LIFECYCLE = next(f for f in functions() if f.logical_id == "LifecycleFunction")
QUEUE = "/companies/{companyId}/data/queue/{dataType}"


@pytest.fixture
def make_services(
    settings: Settings, store: DynamoDBConsentStore, codat: CodatClient, dev_clock: DevClock
) -> Callable[..., Services]:
    return lambda **changes: Services(settings.model_copy(update=changes), store=store, codat=codat, clock=dev_clock)


@pytest.fixture
def services(make_services: Callable[..., Services]) -> Services:
    return make_services()


@pytest.fixture
def run(services: Services) -> Callable[..., dict[str, Any]]:
    def invoke(via: Services = services) -> dict[str, Any]:
        handler = load_handler(LIFECYCLE.code_uri, LIFECYCLE.handler)
        report: dict[str, Any] = handler({}, LambdaContext(LIFECYCLE.logical_id, timeout_seconds=300), services=via)
        return report

    return invoke


class Books:
    """A customer's accounting connections, Linked in Codat, whose webhooks the test delivers itself."""

    def __init__(self, api: LocalApi, simulator: CodatSimulator, clock: DevClock) -> None:
        self.api, self.simulator, self.clock = api, simulator, clock
        self.sent = 0

    def linked(self) -> tuple[str, str]:
        company = self.api.post("/companies", customer=ALICE, json={"name": "Acme", "journey": "loan_application"})
        assert company.status == 201, company.text
        company_id = str(company.body["companyId"])
        created = self.api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "gbol"})
        assert created.status == 201, created.text
        connection_id = str(created.body["connectionId"])
        self.simulator.set_connection_status(company_id, connection_id, "Linked")
        self.simulator.complete_reads()  # its first read is done: nothing is being read when keep-alive asks
        self.deliver(
            connection_event(
                "connection.connected",
                company_id=company_id,
                connection_id=connection_id,
                status="Linked",
                generated=self.clock(),
            )
        )
        return company_id, connection_id

    def synced(self, company_id: str, connection_id: str) -> None:
        self.deliver(
            read_event(company_id=company_id, connection_ids=[connection_id], initial=False, generated=self.clock())
        )

    def deliver(self, body: dict[str, Any]) -> None:
        self.sent += 1
        raw, headers = signed(body, message_id=f"msg-keep-alive-{self.sent}-{body['id']}")
        response = self.api.post("/webhooks/codat", body=raw, headers=headers)
        assert response.status == 204, response.text

    def refreshes(self, company_id: str) -> list[str]:
        """The keep-alive requests Codat received for the company: their data type and connection."""
        return [
            f"{call.path.rsplit('/', 1)[-1]}:{call.query.get('connectionId')}"
            for call in self.simulator.calls("POST", QUEUE)
            if call.path.split("/")[2] == company_id
        ]


@pytest.fixture
def books(api: LocalApi, simulator: CodatSimulator, dev_clock: DevClock) -> Books:
    return Books(api, simulator, dev_clock)


def test_an_idle_accounting_connection_is_refreshed_once_then_again_only_if_no_sync_followed(
    books: Books, dev_clock: DevClock, run: Callable[..., dict[str, Any]]
) -> None:
    company_id, connection_id = books.linked()

    # Not idle long enough: nothing
    dev_clock.advance(29 * DAY)
    assert run()["refreshed"] == 0
    assert books.refreshes(company_id) == []

    # 30 days without a sync: one light data type is queued in Codat, for that connection; once
    dev_clock.advance(DAY + timedelta(minutes=1))
    assert run()["refreshed"] == 1
    run()
    assert books.refreshes(company_id) == [f"company:{connection_id}"]

    # A day later and still no sync: asked again, once
    dev_clock.advance(DAY)
    run()
    run()
    assert len(books.refreshes(company_id)) == 2

    # The sync comes (Codat's read.completed): the next refresh is a month away
    books.synced(company_id, connection_id)
    dev_clock.advance(29 * DAY)
    run()
    assert len(books.refreshes(company_id)) == 2
    dev_clock.advance(DAY + timedelta(minutes=1))
    run()
    assert len(books.refreshes(company_id)) == 3


def test_the_daily_budget_goes_to_the_oldest_due_and_the_rest_waits_for_the_next_day(
    books: Books, dev_clock: DevClock, make_services: Callable[..., Services], run: Callable[..., dict[str, Any]]
) -> None:
    oldest = books.linked()
    dev_clock.advance(timedelta(hours=1))
    middle = books.linked()
    dev_clock.advance(timedelta(hours=1))
    newest = books.linked()
    dev_clock.advance(31 * DAY)
    tight = make_services(keep_alive_daily_codat_budget=2)

    first = run(tight)
    assert (first["refreshed"], first["deferred"]) == (2, 1)
    assert [len(books.refreshes(c)) for c, _ in (oldest, middle, newest)] == [1, 1, 0]
    # The same day: the budget is spent, whatever runs come
    again = run(tight)
    assert (again["refreshed"], again["deferred"]) == (0, 1)
    assert len(books.refreshes(newest[0])) == 0

    # The next UTC day, what waited goes (the two refreshed are not due again before 24 hours have passed)
    now = dev_clock()
    dev_clock.advance(now.replace(hour=0, minute=1, second=0, microsecond=0) + DAY - now)
    assert run(tight)["refreshed"] == 1
    assert len(books.refreshes(newest[0])) == 1


def test_codat_failing_defers_the_refresh_and_a_refused_api_key_fails_the_run(
    books: Books,
    dev_clock: DevClock,
    simulator: CodatSimulator,
    run: Callable[..., dict[str, Any]],
) -> None:
    company_id, connection_id = books.linked()
    dev_clock.advance(31 * DAY)

    # Codat unavailable beyond the client's retries: the refresh waits, the run still ends well
    simulator.inject(Fault("status", method="POST", path="/data/queue/", status=503, times=None))
    report = run()
    assert (report["refreshed"], report["deferred"]) == (0, 1)
    simulator.clear_faults()

    # Back: the next run asks, once
    assert run()["refreshed"] == 1
    assert books.refreshes(company_id)[-1] == f"company:{connection_id}"

    # Our API key refused: the run fails (LifecycleErrorsAlarm), nothing is recorded as asked
    dev_clock.advance(2 * DAY)
    simulator.inject(Fault("status", method="POST", path="/data/queue/", status=401, times=None))
    with pytest.raises(CodatAuthFailed):
        run()
    simulator.clear_faults()
    assert run()["refreshed"] == 1


def test_a_read_already_under_way_counts_as_the_refresh(
    books: Books,
    dev_clock: DevClock,
    simulator: CodatSimulator,
    codat: CodatClient,
    run: Callable[..., dict[str, Any]],
) -> None:
    company_id, connection_id = books.linked()
    dev_clock.advance(31 * DAY)
    # Someone (the bank's own job) is reading the same data type right now
    simulator.read_delay = 3600
    codat.queue_data(company_id, "company", connection_id=connection_id)

    # Codat refuses a second read of it: that read is what keeps the connection alive, so it counts
    report = run()
    assert (report["refreshed"], report["deferred"]) == (1, 0)
    assert len(books.refreshes(company_id)) == 2
    run()
    assert len(books.refreshes(company_id)) == 2  # and it is not asked again before the retry time
