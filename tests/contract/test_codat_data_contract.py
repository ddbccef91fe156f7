"""The client's data calls (queue a read of one data type, each data type's status) against the simulator and Codat's
spec: what it sends is documented, what it reads is what the spec promises, Codat's refusals arrive typed, and
retries stay within the client's budget without queueing a read twice."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.codat.errors import CodatNotFound, CodatRateLimited, CodatRejected, CodatSyncInProgress, CodatUnavailable
from consent.codat.models import PULL_COMPLETE, PULL_IN_PROGRESS_STATUSES, DataStatus, DataStatuses, PullOperation
from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.codat_simulator.data import DATA_TYPES, FAILURE_STATUSES, IN_PROGRESS_STATUSES, PULL_STATUSES
from consent_dev.codat_spec import CodatSpec, ResponseChecker, pointer

pytestmark = pytest.mark.contract

KEY = "contract-test-key"
QUEUE = "/companies/{companyId}/data/queue/{dataType}"
MISSING = "9b2e6a3c-0f61-4d6e-9f43-5d8f1d6c2a10"


class Sleeps:
    """Monotonic time that moves only when the client sleeps: retry budgets without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Checked:
    """A validating simulator, a client on it whose every answer is checked against the spec, and its sleeps."""

    def __init__(self, spec: CodatSpec, **client_options: Any) -> None:
        self.sim = CodatSimulator(api_key=KEY, spec=spec, validate=True)
        self.checker = ResponseChecker(spec)
        self.time = Sleeps()
        options: dict[str, Any] = {
            "base_url": "https://api.codat.io",
            "api_key": lambda: base64.b64encode(KEY.encode()).decode(),
            "transport": self.sim.transport(),
            "sleep": self.time.sleep,
            "clock": self.time.clock,
            "connect_timeout": 0.5,
            "read_timeout": 0.5,
            **client_options,
        }
        self.client = CodatClient(**options)
        self.client._http.event_hooks["response"].append(self.checker)

    def linked(self, platform_key: str = "mqjo") -> tuple[str, str]:
        """A company with a Linked connection whose first read has completed."""
        company = self.sim.add_company("Acme Bakery")
        connection = self.sim.add_connection(company.id, platform_key, status="Linked")
        self.sim.complete_reads()
        return company.id, connection.id

    def queue_calls(self) -> list[Any]:
        return self.sim.calls("POST", QUEUE)


@pytest.fixture
def make_checked(codat_spec: CodatSpec) -> Iterator[Callable[..., Checked]]:
    made: list[Checked] = []

    def make(**client_options: Any) -> Checked:
        made.append(Checked(codat_spec, **client_options))
        return made[-1]

    yield make
    for checked in made:
        checked.client.close()


@pytest.fixture
def checked(make_checked: Callable[..., Checked]) -> Iterator[Checked]:
    checked = make_checked()
    yield checked
    assert checked.sim.contract_violations == []  # requests, answers and webhook bodies all as the spec says
    assert checked.checker.violations == []


def test_queue_then_complete_reads_back_through_data_status_as_the_spec_documents(checked: Checked) -> None:
    company_id, connection_id = checked.linked()
    before = checked.client.data_status(company_id)

    operation = checked.client.queue_data(company_id, "invoices", connection_id=connection_id)
    during = checked.client.data_status(company_id)["invoices"]
    checked.sim.complete_reads()
    after = checked.client.data_status(company_id)

    assert isinstance(operation, PullOperation)
    assert (operation.data_type, operation.status, operation.in_progress) == ("invoices", "Queued", True)
    assert (operation.company_id, operation.connection_id) == (company_id, connection_id)
    assert operation.requested is not None
    assert operation.requested.tzinfo == UTC
    assert (operation.is_completed, operation.is_errored) == (False, False)
    # what the client sent: the spec's operation, the connection as a query parameter, an Idempotency-Key
    [call] = checked.queue_calls()
    assert call.query == {"connectionId": connection_id}
    assert call.headers["idempotency-key"]
    assert call.body == b""

    assert set(after) == set(before)  # invoices were read first on linking too
    assert (during.current_status, during.in_progress, during.latest_sync_id) == ("Queued", True, operation.id)
    assert during.last_successful_sync == before["invoices"].last_successful_sync
    invoices = after["invoices"]
    assert isinstance(invoices, DataStatus)
    assert (invoices.current_status, invoices.in_progress, invoices.latest_failed) == (PULL_COMPLETE, False, False)
    assert invoices.latest_sync_id == invoices.latest_successful_sync_id == operation.id
    assert invoices.last_successful_sync is not None
    assert invoices.last_successful_sync.tzinfo == UTC
    assert before["invoices"].last_successful_sync is not None
    assert invoices.last_successful_sync > before["invoices"].last_successful_sync

    # and Codat's webhook: read.completed listing the data type read, from that connection, and how it ended
    read = checked.sim.events[-1]
    assert read.event_type == "read.completed"
    assert [(d["connectionId"], d["dataType"], d["status"]) for d in read.body["payload"]["dataTypes"]] == [
        (connection_id, "invoices", "Complete")
    ]
    assert [f"{m} {t}" for m, t, _ in checked.checker.exchanges] == [
        "GET /companies/{companyId}/dataStatus",
        f"POST {QUEUE}",
        "GET /companies/{companyId}/dataStatus",
        "GET /companies/{companyId}/dataStatus",
    ]


def test_the_read_completed_bodies_validate_against_the_specs_webhook_schema(
    checked: Checked, codat_spec: CodatSpec
) -> None:
    company_id, _ = checked.linked("aiwb")
    checked.client.queue_data(company_id, "commerce-disputes")
    checked.sim.fail_next_read(company_id, "commerce-disputes", "PermissionsError")
    checked.sim.complete_reads()

    reads = [e for e in checked.sim.events if e.event_type.startswith("read.completed")]
    assert [e.event_type for e in reads] == ["read.completed.initial", "read.completed"]
    for event in reads:
        where = pointer("webhooks", event.event_type, "post", "requestBody", "content", "application/json", "schema")
        assert codat_spec.validate(event.body, where) == []
    assert [d["status"] for d in reads[1].body["payload"]["dataTypes"]] == ["PermissionsError"]


def test_queueing_a_data_type_being_read_is_refused_typed_and_not_retried(checked: Checked) -> None:
    company_id, _ = checked.linked()
    checked.client.queue_data(company_id, "taxRates")

    with pytest.raises(CodatSyncInProgress) as refused:
        checked.client.queue_data(company_id, "taxRates")

    assert isinstance(refused.value, CodatRejected)  # a caller that knows only CodatRejected still sees a refusal
    assert refused.value.status == 400
    assert refused.value.correlation_id
    assert "in progress" in (refused.value.error or "")
    assert len(checked.queue_calls()) == 2
    assert checked.time.sleeps == []


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("no company", CodatNotFound),
        ("no linked connection", CodatRejected),
        ("type the source does not supply", CodatRejected),
        ("unknown connection", CodatNotFound),
    ],
)
def test_other_refusals_are_not_taken_for_a_read_in_progress(
    checked: Checked, setup: str, error: type[Exception]
) -> None:
    company = checked.sim.add_company("Acme Bakery")
    checked.sim.add_connection(company.id, "qhnd", status="Linked" if "type" in setup else "PendingAuth")
    company_id = MISSING if setup == "no company" else company.id
    connection_id = MISSING if setup == "unknown connection" else None
    data_type = "invoices" if "type" in setup else "banking-accounts"

    with pytest.raises(error) as refused:
        checked.client.queue_data(company_id, data_type, connection_id=connection_id)

    assert not isinstance(refused.value, CodatSyncInProgress)
    assert [d for d in checked.sim.datasets(company.id) if d["dataType"] == data_type] == []
    assert len(checked.queue_calls()) == 1


def test_an_unknown_data_type_is_refused_by_codat_as_the_spec_says(make_checked: Callable[..., Checked]) -> None:
    checked = make_checked()
    company_id, _ = checked.linked()

    with pytest.raises(CodatRejected) as refused:
        checked.client.queue_data(company_id, "bananas")

    assert not isinstance(refused.value, CodatSyncInProgress)
    assert refused.value.status == 400
    # the dataType path parameter is an enum in Codat's spec: the simulator records the request as breaking it
    assert ["bananas" in v for v in checked.sim.contract_violations] == [True]
    assert checked.checker.violations == []
    assert len(checked.queue_calls()) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_a_429_or_503_on_queue_is_retried_within_budget_and_queues_one_read(checked: Checked, status: int) -> None:
    company_id, _ = checked.linked()
    checked.sim.inject(Fault(kind="status", status=status, retry_after=2, method="POST", path="/data/queue/", times=2))

    operation = checked.client.queue_data(company_id, "taxRates")

    calls = checked.queue_calls()
    assert [c.status for c in calls] == [status, status, 200]
    assert len({c.headers["idempotency-key"] for c in calls}) == 1  # one key across the attempts
    assert len(checked.time.sleeps) == 2
    if status == 429:
        assert all(s >= 2 for s in checked.time.sleeps)  # Codat's Retry-After honoured
    assert sum(checked.time.sleeps) < 20.0  # within the client's retry budget
    assert [d["id"] for d in checked.sim.datasets(company_id) if d["dataType"] == "taxRates"] == [operation.id]


def test_persistent_503s_on_queue_give_up_after_the_attempts_marked_maybe_applied(checked: Checked) -> None:
    company_id, _ = checked.linked()
    checked.sim.inject(Fault(kind="status", status=503, path="/data/queue/", times=None))

    with pytest.raises(CodatUnavailable) as raised:
        checked.client.queue_data(company_id, "taxRates")

    assert raised.value.status == 503
    assert raised.value.maybe_applied
    assert len(checked.queue_calls()) == 4
    assert len(checked.time.sleeps) == 3


def test_a_429_with_retry_after_beyond_the_budget_gives_up_at_once(make_checked: Callable[..., Checked]) -> None:
    checked = make_checked(retry_budget=5.0)
    company_id, _ = checked.linked()
    checked.sim.inject(Fault(kind="status", status=429, retry_after=60, path="/data/queue/", times=None))

    with pytest.raises(CodatRateLimited) as raised:
        checked.client.queue_data(company_id, "taxRates")

    assert raised.value.retry_after == 60
    assert checked.time.sleeps == []
    assert len(checked.queue_calls()) == 1


def test_a_lost_answer_to_a_queue_is_retried_and_replayed_not_queued_twice(checked: Checked) -> None:
    company_id, _ = checked.linked()
    checked.sim.inject(Fault(kind="lose_response", method="POST", path="/data/queue/", times=1))

    operation = checked.client.queue_data(company_id, "taxRates")

    assert len(checked.queue_calls()) == 2
    assert [d["id"] for d in checked.sim.datasets(company_id) if d["dataType"] == "taxRates"] == [operation.id]


def test_the_callers_idempotency_key_replays_a_queue_across_calls(checked: Checked) -> None:
    company_id, _ = checked.linked()

    first = checked.client.queue_data(company_id, "taxRates", idempotency_key="keep-alive:2026-03-01")
    again = checked.client.queue_data(company_id, "taxRates", idempotency_key="keep-alive:2026-03-01")

    assert again == first
    assert [c.headers["idempotency-key"] for c in checked.queue_calls()] == ["keep-alive:2026-03-01"] * 2


def test_a_failed_read_is_reported_by_data_status(checked: Checked) -> None:
    company_id, _ = checked.linked("qhnd")
    before = checked.client.data_status(company_id)["banking-transactions"]
    checked.sim.fail_next_read(company_id, "banking-transactions", "FetchError")

    operation = checked.client.queue_data(company_id, "banking-transactions")
    checked.sim.complete_reads()
    failed = checked.client.data_status(company_id)["banking-transactions"]

    assert (failed.current_status, failed.latest_failed, failed.in_progress) == ("FetchError", True, False)
    assert failed.latest_sync_id == operation.id
    # what was read before is still Codat's latest success
    assert failed.latest_successful_sync_id == before.latest_successful_sync_id != operation.id
    assert failed.last_successful_sync == before.last_successful_sync


def test_data_status_of_an_unknown_company_is_not_found(checked: Checked) -> None:
    with pytest.raises(CodatNotFound):
        checked.client.data_status(MISSING)


# --- the client's models read the spec's own examples, and Codat's timestamps ----------------------------------


def test_the_specs_examples_parse_into_the_clients_models(codat_spec: CodatSpec) -> None:
    [operation] = codat_spec.example_bodies("PullOperation").values()
    [statuses] = codat_spec.response_examples("GET", "/companies/{companyId}/dataStatus").values()
    [status] = codat_spec.example_bodies("DataStatus").values()

    parsed = PullOperation.model_validate(operation)
    assert (parsed.data_type, parsed.status, parsed.in_progress, parsed.progress) == ("invoices", "Initial", True, 10)
    assert parsed.requested == datetime(2022, 11, 14, 11, 18, 37, 279835, tzinfo=UTC)
    every = DataStatuses.model_validate(statuses).root
    assert set(every) == set(DATA_TYPES)
    assert all(s is not None and s.current_status == PULL_COMPLETE for s in every.values())
    assert DataStatus.model_validate(status).current_status == "string"  # a tolerant reader: any status text


@pytest.mark.parametrize(
    "stamp",
    ["2022-10-27T10:22:43Z", "2022-10-27T10:22:43.6Z", "2022-10-27T10:22:43.6464237Z", "2022-10-27T10:22:43"],
)
def test_codats_timestamps_with_zero_to_seven_fractional_digits_are_read_as_utc(stamp: str) -> None:
    status = DataStatus.model_validate(
        {"dataType": "invoices", "currentStatus": "Complete", "lastSuccessfulSync": stamp, "newField": 1}
    )
    operation = PullOperation.model_validate(
        {"id": "o", "dataType": "invoices", "status": "Queued", "requested": stamp, "isCompleted": None}
    )

    assert status.last_successful_sync is not None
    assert status.last_successful_sync.tzinfo == UTC
    assert status.last_successful_sync.replace(microsecond=0) == datetime(2022, 10, 27, 10, 22, 43, tzinfo=UTC)
    assert operation.requested == status.last_successful_sync
    assert operation.is_completed is False


def test_null_entries_of_data_status_are_dropped(make_checked: Callable[..., Checked]) -> None:
    checked = make_checked()
    body = b'{"invoices": null, "bills": {"dataType": "bills", "currentStatus": "Fetching"}}'
    checked.sim.inject(Fault(kind="malformed", status=200, body=body, method="GET", path="/dataStatus$"))

    statuses = checked.client.data_status(MISSING)

    assert list(statuses) == ["bills"]
    assert statuses["bills"].in_progress


def test_the_simulators_data_types_and_statuses_are_the_specs(codat_spec: CodatSpec) -> None:
    schemas = codat_spec.raw["components"]["schemas"]
    assert set(DATA_TYPES) == set(schemas["DataStatus"]["properties"]["dataType"]["enum"])
    assert set(DATA_TYPES) == set(schemas["DataStatuses"]["properties"])
    assert tuple(schemas["PullOperation"]["properties"]["status"]["enum"]) == PULL_STATUSES
    assert IN_PROGRESS_STATUSES == PULL_IN_PROGRESS_STATUSES
    assert set(FAILURE_STATUSES) == set(PULL_STATUSES) - IN_PROGRESS_STATUSES - {PULL_COMPLETE}
