"""Reconciliation heals a missed `read.completed`: for a company whose journey needs data, one `GET …/dataStatus`, and
each needed type Codat read more recently than the company's connections know is recorded on the one Linked
connection of its source type, the company settled in the same write (its data ready, `journey.data_ready` in the
ledger and published). Several Linked connections of that source type: the type is left, never guessed. A company
whose journeys need no data costs no extra request. dataStatus failing ends as the connections listing failing does.

The simulator delivers no webhooks here: its reads complete (`complete_reads`) and its dataStatus says so, and only
reconciliation can tell the product. Reconciliation runs as its schedule would, on a clock the test moves with
Codat's."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.codat.errors import CodatAuthFailed
from consent.domain.records import ConnectionRecord
from consent.observability import logger
from consent.services import Services
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.clock import DevClock
from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.codat_webhooks import read_event, signed
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue
from consent_dev.template import functions

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
COMPANY_NAME = "Acme Bakery Ltd"
RECONCILE = next(f for f in functions() if f.logical_id == "ReconcileFunction")
DATA_STATUS = "/companies/{companyId}/dataStatus"
LOAN_TYPES = ("balanceSheet", "profitAndLoss", "banking-accounts", "banking-transactions")
READY_ID = "journey:loan_application:data_ready:1"


@pytest.fixture
def make_services(
    settings: Settings, store: DynamoDBConsentStore, codat: CodatClient, dev_clock: DevClock
) -> Callable[..., Services]:
    return lambda **changes: Services(settings.model_copy(update=changes), store=store, codat=codat, clock=dev_clock)


@pytest.fixture
def services(make_services: Callable[..., Services], simulator: CodatSimulator) -> Services:
    """The services of the API, of `authorize` and of reconciliation, on the clock shared with Codat's."""
    simulator.initial_read_delay = 3600  # first reads complete when a test says so
    return make_services()


@pytest.fixture
def run(services: Services) -> Callable[..., dict[str, Any]]:
    def invoke(via: Services = services) -> dict[str, Any]:
        handler = load_handler(RECONCILE.code_uri, RECONCILE.handler)
        report: dict[str, Any] = handler({}, LambdaContext(RECONCILE.logical_id, timeout_seconds=300), services=via)
        return report

    return invoke


class Company:
    """A customer's company, its connections authorized in Codat and recorded Linked (the webhooks about the links
    arrived: `authorize`); none about its reads does."""

    def __init__(self, api: LocalApi, authorize: Callable[..., None], journey: str = "loan_application") -> None:
        self.api, self.authorize = api, authorize
        created = api.post("/companies", customer=ALICE, json={"name": COMPANY_NAME, "journey": journey})
        assert created.status == 201, created.text
        self.id = str(created.body["companyId"])

    def connect(self, platform_key: str, *, link: bool = True) -> str:
        created = self.api.post(f"/companies/{self.id}/connections", customer=ALICE, json={"platformKey": platform_key})
        assert created.status == 201, created.text
        connection_id = str(created.body["connectionId"])
        if link:
            self.authorize(self.id, connection_id)
        return connection_id

    def data(self) -> dict[str, Any]:
        body = self.api.get(f"/companies/{self.id}", customer=ALICE).body
        [journey] = [j for j in body["journeys"] if j["journey"] == "loan_application"]
        return dict(journey["data"])

    def last_reads(self) -> dict[str, str | None]:
        return {t["dataType"]: t.get("lastReadAt") for t in self.data()["types"]}

    def ledger(self) -> list[dict[str, Any]]:
        page = self.api.get(f"/companies/{self.id}/events", customer=ALICE, query={"limit": "100"}).body
        return list(page["items"])

    def data_entries(self) -> list[tuple[str, str]]:
        return [(e["type"], e["entryId"]) for e in self.ledger() if e["type"].startswith("journey.data_")]

    def deliver(self, body: dict[str, Any]) -> None:
        raw, headers = signed(body)
        response = self.api.post("/webhooks/codat", body=raw, headers=headers)
        assert response.status == 204, response.text


def stored(services: Services, company_id: str) -> dict[str, ConnectionRecord]:
    view = services.store.get_company_by_id(company_id)
    assert view is not None
    return {c.connection_id: c for c in view.connections}


def codat_reads(simulator: CodatSimulator, company_id: str) -> dict[str, str]:
    """When each loan type last completed a read in Codat (its dataStatus), to the second."""
    status = simulator.data_status(company_id)
    return {t: status[t]["lastSuccessfulSync"][:19] for t in LOAN_TYPES}


def at_second(moment: str | None) -> str | None:
    return moment[:19] if moment is not None else None


def test_a_missed_read_completed_is_healed_once_and_the_journeys_data_becomes_ready(
    api: LocalApi,
    services: Services,
    simulator: CodatSimulator,
    dev_clock: DevClock,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
    outbox: StreamPump,
    events_queue: EventsQueue,
    table_items: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given a loan application whose books and bank are Linked, and Codat then completing their reads, every
    # `read.completed` lost
    loan = Company(api, authorize)
    books, bank = loan.connect("mqjo"), loan.connect("qhnd")
    dev_clock.advance(timedelta(minutes=15))
    simulator.complete_reads()
    assert loan.data()["status"] == "stale"
    outbox.drain()
    events_queue.receive()

    # When reconciliation runs
    report = run()

    # Then each type is recorded as read when Codat says, on the connection that read it, from one dataStatus
    assert (report["data_reads_healed"], report["data_reads_ambiguous"], report["companies_healed"]) == (4, 0, 1)
    assert simulator.count("GET", DATA_STATUS) == 1
    assert {t: at_second(at) for t, at in loan.last_reads().items()} == codat_reads(simulator, loan.id)
    connections = stored(services, loan.id)
    assert set(connections[books].data_reads) == {"balanceSheet", "profitAndLoss"}
    assert set(connections[bank].data_reads) == {"banking-accounts", "banking-transactions"}
    # and the journey's data is ready, announced once, as the webhooks would have
    assert loan.data()["status"] == "ready"
    assert loan.data_entries() == [("journey.data_ready", READY_ID)]
    outbox.drain()
    assert [m.type for m in events_queue.receive()] == ["consent.journey.data_ready"]

    # When it runs again, seeing the same reads
    table = table_items()
    again = run()

    # Then nothing is written, and nothing is announced again
    assert (again["data_reads_healed"], again["companies_healed"], again["ledger_entries"]) == (0, 0, 0)
    assert table_items() == table
    assert loan.data_entries() == [("journey.data_ready", READY_ID)]
    outbox.drain()
    assert events_queue.receive() == []


def test_reads_whose_webhook_arrived_are_not_recorded_again(
    api: LocalApi,
    simulator: CodatSimulator,
    dev_clock: DevClock,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
    table_items: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given reads completed in Codat whose webhooks did arrive (generated as Codat finished them)
    loan = Company(api, authorize)
    books, bank = loan.connect("mqjo"), loan.connect("qhnd")
    dev_clock.advance(timedelta(minutes=15))
    simulator.complete_reads()
    for connection_id, types in ((books, LOAN_TYPES[:2]), (bank, LOAN_TYPES[2:])):
        event = read_event(
            company_id=loan.id, connection_ids=[connection_id], initial=False, generated=dev_clock(), data_types=types
        )
        loan.deliver(event)
    assert loan.data()["status"] == "ready"
    run()  # Codat's lastSync moves each connection's lastSyncAt once
    table = table_items()

    # When reconciliation runs
    report = run()

    # Then it asks Codat, finds nothing newer, and writes nothing
    assert simulator.count("GET", DATA_STATUS) == 2
    assert (report["data_reads_healed"], report["companies_healed"]) == (0, 0)
    assert table_items() == table


def test_a_type_several_linked_connections_could_have_read_is_left_not_guessed(
    api: LocalApi,
    services: Services,
    simulator: CodatSimulator,
    dev_clock: DevClock,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
    table_items: Callable[[], list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a loan application with its books and two banks Linked (Codat's sandbox bank and Plaid), every read's
    # webhook lost
    loan = Company(api, authorize)
    books, first_bank, second_bank = loan.connect("mqjo"), loan.connect("qhnd"), loan.connect("ugxp")
    dev_clock.advance(timedelta(minutes=15))
    simulator.complete_reads()
    caplog.set_level(logging.INFO, logger=logger.name)

    # When reconciliation runs
    report = run()

    # Then the books' types are recorded; the bank types (Codat cannot say which bank read them) are left, counted
    assert (report["data_reads_healed"], report["data_reads_ambiguous"]) == (2, 2)
    connections = stored(services, loan.id)
    assert set(connections[books].data_reads) == {"balanceSheet", "profitAndLoss"}
    assert connections[first_bank].data_reads == connections[second_bank].data_reads == {}
    reads = loan.last_reads()
    assert (reads["banking-accounts"], reads["banking-transactions"]) == (None, None)
    assert loan.data()["status"] == "stale"
    assert loan.data_entries() == []
    # and logged at info, by company and data type only
    lines = [r for r in caplog.records if r.getMessage().startswith("data read not attributed")]
    assert sorted((r.levelname, r.company_id, r.data_type, r.connections) for r in lines) == [  # type: ignore[attr-defined]
        ("INFO", loan.id, "banking-accounts", 2),
        ("INFO", loan.id, "banking-transactions", 2),
    ]
    assert not any(ALICE in json.dumps(r.__dict__, default=str) for r in lines)
    assert not any(COMPANY_NAME in json.dumps(r.__dict__, default=str) for r in lines)

    # and a second run leaves them the same way, writing nothing
    table = table_items()
    again = run()
    assert (again["data_reads_healed"], again["data_reads_ambiguous"], again["companies_healed"]) == (0, 2, 0)
    assert table_items() == table


def test_a_read_made_before_the_only_linked_connection_existed_is_not_given_to_it(
    api: LocalApi,
    services: Services,
    simulator: CodatSimulator,
    dev_clock: DevClock,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
) -> None:
    # Given a bank connection that read and was then deleted in Codat (the webhooks about both lost), and another
    # bank Linked since, not read yet
    loan = Company(api, authorize)
    old_bank = loan.connect("qhnd")
    dev_clock.advance(timedelta(minutes=15))
    simulator.complete_reads()
    simulator.state.delete_connection(simulator.connection(loan.id, old_bank))
    dev_clock.advance(timedelta(minutes=15))
    new_bank = loan.connect("ugxp")

    # When reconciliation runs
    report = run()

    # Then the deletion is recorded, and the old read is not the new connection's
    assert report["data_reads_healed"] == 0
    assert stored(services, loan.id)[old_bank].deleted
    assert stored(services, loan.id)[new_bank].data_reads == {}
    assert loan.last_reads()["banking-accounts"] is None


def test_companies_whose_journeys_need_no_data_or_that_nothing_linked_could_have_read_cost_no_request(
    api: LocalApi,
    simulator: CodatSimulator,
    dev_clock: DevClock,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
) -> None:
    # Given an onboarding (no data declared) whose bank is Linked and read, and a loan application not linked yet
    onboarding = Company(api, authorize, journey="onboarding")
    onboarding.connect("qhnd")
    waiting = Company(api, authorize)
    waiting.connect("mqjo", link=False)
    dev_clock.advance(timedelta(minutes=15))
    simulator.complete_reads()

    # When reconciliation runs
    report = run()

    # Then neither costs a dataStatus request
    assert report["companies_checked"] == 2
    assert simulator.count("GET", DATA_STATUS) == 0
    assert report["codat_requests"] == 2  # each company's connections, listed


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ({"kind": "status", "status": 503}, "codat_unavailable"),
        ({"kind": "status", "status": 429, "retry_after": 600}, "rate_limited"),
        ({"kind": "drop"}, "codat_unavailable"),
        ({"kind": "malformed"}, "reads left"),
        ({"kind": "status", "status": 400}, "reads left"),
        ({"kind": "status", "status": 401}, "run fails"),
    ],
    ids=["5xx", "429", "reset", "malformed", "400", "401"],
)
def test_data_status_failing_stops_as_the_listing_does_or_leaves_only_the_reads_for_later(
    api: LocalApi,
    services: Services,
    simulator: CodatSimulator,
    dev_clock: DevClock,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
    fault: dict[str, Any],
    outcome: str,
) -> None:
    # Given a loan application whose reads' webhooks were lost, and its bank's deauthorization's too
    loan = Company(api, authorize)
    loan.connect("mqjo")
    lapsed = loan.connect("qhnd")
    dev_clock.advance(timedelta(minutes=15))
    simulator.complete_reads()
    simulator.set_connection_status(loan.id, lapsed, "Deauthorized")
    before = stored(services, loan.id)
    # and Codat failing on dataStatus only, every attempt
    simulator.inject(Fault(**fault, method="GET", path="/dataStatus$", times=None))

    # When reconciliation runs
    try:
        report = run()
    except CodatAuthFailed:
        report = {"stopped": "run fails"}

    # Then, as when listing the connections fails, Codat down stops the run (the company first next run) and our API
    # key refused fails it, nothing about the company written; an answer about this company Codat will not give
    # (refused, malformed) still heals what the listing found, and leaves its reads for a later run
    if outcome == "run fails":
        assert report["stopped"] == outcome
    elif outcome == "reads left":
        assert (report["stopped"], report["companies_checked"], report["data_reads_healed"]) == ("pass_complete", 1, 0)
    else:
        assert (report["stopped"], report["companies_checked"]) == (outcome, 0)
    if outcome == "reads left":
        assert stored(services, loan.id)[lapsed].status == "Deauthorized"
    else:
        assert stored(services, loan.id) == before
    assert loan.data_entries() == []

    # When Codat answers again, the next run heals all of it
    simulator.clear_faults()
    healed = run()
    assert (healed["stopped"], healed["data_reads_healed"]) == ("pass_complete", 2)
    after = stored(services, loan.id)
    assert after[lapsed].status == "Deauthorized"
    assert set(loan.last_reads().values()) != {None}


def test_data_status_answering_404_means_the_company_was_deleted_in_codat(
    api: LocalApi,
    simulator: CodatSimulator,
    dev_clock: DevClock,
    authorize: Callable[..., None],
    run: Callable[..., dict[str, Any]],
) -> None:
    # Given a loan application whose connections Codat listed, and then answered 404 for its data: deleted meanwhile
    loan = Company(api, authorize)
    books, bank = loan.connect("mqjo"), loan.connect("qhnd")
    dev_clock.advance(timedelta(minutes=15))
    simulator.complete_reads()
    simulator.inject(Fault(kind="status", status=404, method="GET", path="/dataStatus$"))

    # When reconciliation runs
    report = run()

    # Then its connections are recorded deleted, as when the listing answers 404
    assert (report["stopped"], report["companies_healed"], report["data_reads_healed"]) == ("pass_complete", 1, 0)
    assert api.get(f"/companies/{loan.id}/connections", customer=ALICE).body["items"] == []
    deleted = [e for e in loan.ledger() if e["type"] == "connection.deleted"]
    assert sorted(e["connectionId"] for e in deleted) == sorted([books, bank])
    assert {e["detail"] for e in deleted} == {"the company was deleted in Codat"}


def test_the_budget_running_out_at_dataStatus_stops_the_run_and_the_next_one_resumes_at_that_company(
    api: LocalApi,
    simulator: CodatSimulator,
    dev_clock: DevClock,
    authorize: Callable[..., None],
    make_services: Callable[..., Services],
    run: Callable[..., dict[str, Any]],
) -> None:
    # Given two loan applications whose reads' webhooks were lost
    loans = [Company(api, authorize) for _ in range(2)]
    for loan in loans:
        loan.connect("mqjo")
        loan.connect("qhnd")
    dev_clock.advance(timedelta(minutes=15))
    simulator.complete_reads()
    budgeted = make_services(reconcile_codat_budget=3)

    # When a run may send three requests: one company's two, and the next one's listing
    first = run(budgeted)

    # Then it stops there, that company untouched, and the next run starts at it and completes the pass
    assert (first["stopped"], first["codat_requests"], first["data_reads_healed"]) == ("budget_spent", 3, 4)
    states = sorted(loan.data()["status"] for loan in loans)
    assert states == ["ready", "stale"]
    [waiting] = [loan for loan in loans if loan.data()["status"] == "stale"]
    start = len(simulator.calls())
    second = run(budgeted)
    assert (second["stopped"], second["data_reads_healed"]) == ("pass_complete", 4)
    assert simulator.calls()[start].path == f"/companies/{waiting.id}/connections"
    assert {loan.data()["status"] for loan in loans} == {"ready"}
