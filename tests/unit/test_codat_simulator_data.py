"""The Codat simulator's data side: reads queued per data type, completing on the simulator's clock with
`read.completed`, each data type's status (`GET .../dataStatus`), Codat's refusals, and the controls for tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.codat_simulator.data import (
    ACCOUNTING_FIRST_READ,
    BANKING_FIRST_READ,
    COMMERCE_FIRST_READ,
    DEFAULT_READ_DELAY,
    READ_IN_PROGRESS,
)
from consent_dev.codat_spec import require_spec

pytestmark = pytest.mark.unit

MISSING = "9b2e6a3c-0f61-4d6e-9f43-5d8f1d6c2a10"
CODAT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z")


@pytest.fixture
def sim() -> Iterator[CodatSimulator]:
    simulator = CodatSimulator()
    yield simulator
    assert simulator.contract_violations == []  # every request, answer and webhook body as Codat's spec says


@pytest.fixture
def http(sim: CodatSimulator) -> Iterator[httpx.Client]:
    with sim.client(timeout=2.0) as client:
        yield client


def linked(sim: CodatSimulator, platform_key: str = "mqjo", *, read: bool = True) -> tuple[str, str]:
    """A company with one Linked connection; its first read completed unless not ``read``."""
    company = sim.add_company("Acme Bakery")
    connection = sim.add_connection(company.id, platform_key, status="Linked")
    if read:
        sim.complete_reads()
    return company.id, connection.id


def queue(http: httpx.Client, company_id: str, data_type: str, **params: str) -> httpx.Response:
    return http.post(f"/companies/{company_id}/data/queue/{data_type}", params=params)


def data_status(http: httpx.Client, company_id: str) -> dict[str, Any]:
    response = http.get(f"/companies/{company_id}/dataStatus")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def refusal(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["statusCode"] == status
    return str(body["error"])


# --- queue, complete, report ------------------------------------------------------------------------------------


def test_a_queued_read_completes_after_the_delay_with_read_completed_and_its_status(
    sim: CodatSimulator, http: httpx.Client
) -> None:
    company_id, connection_id = linked(sim)
    first_sync = data_status(http, company_id)["invoices"]

    queued = queue(http, company_id, "invoices")
    during = data_status(http, company_id)["invoices"]
    sim.clock.advance(DEFAULT_READ_DELAY + 0.1)
    after = data_status(http, company_id)["invoices"]

    operation = queued.json()
    assert queued.status_code == 200
    assert (operation["dataType"], operation["status"], operation["connectionId"]) == (
        "invoices",
        "Queued",
        connection_id,
    )
    assert (operation["companyId"], operation["isCompleted"], operation["isErrored"]) == (company_id, False, False)
    assert CODAT_TIME.fullmatch(operation["requested"])
    # While it is read: Queued, the latest read is the new one, the latest success still the first read's
    assert during["currentStatus"] == "Queued"
    assert during["latestSyncId"] == operation["id"]
    assert during["latestSuccessfulSyncId"] == first_sync["latestSuccessfulSyncId"] != operation["id"]
    assert during["lastSuccessfulSync"] == first_sync["lastSuccessfulSync"]
    # Then Complete, as of its completion
    assert after["currentStatus"] == "Complete"
    assert after["latestSyncId"] == after["latestSuccessfulSyncId"] == operation["id"]
    assert after["lastSuccessfulSync"] > first_sync["lastSuccessfulSync"]
    assert CODAT_TIME.fullmatch(after["lastSuccessfulSync"])
    assert sim.get_connection(company_id, connection_id)["lastSync"] == after["lastSuccessfulSync"]

    event = sim.events[-1]
    assert (event.event_type, event.company_id, event.connection_id) == ("read.completed", company_id, connection_id)
    assert event.body["payload"]["dataTypes"] == [
        {
            "connectionId": connection_id,
            "dataType": "invoices",
            "recordsModified": True,
            "status": "Complete",
            "issues": [],
        }
    ]
    assert event.body["payload"]["referenceCompany"]["id"] == company_id


def test_a_read_is_not_complete_before_its_delay_on_the_simulators_clock(
    sim: CodatSimulator, http: httpx.Client
) -> None:
    sim.read_delay = 60
    company_id, _ = linked(sim)
    queue(http, company_id, "taxRates")

    sim.clock.advance(59)
    assert data_status(http, company_id)["taxRates"]["currentStatus"] == "Queued"
    assert sim.events[-1].event_type == "read.completed.initial"
    sim.clock.advance(2)
    assert data_status(http, company_id)["taxRates"]["currentStatus"] == "Complete"
    assert sim.events[-1].event_type == "read.completed"


@pytest.mark.parametrize(
    ("platform_key", "data_types"),
    [("mqjo", ACCOUNTING_FIRST_READ), ("qhnd", BANKING_FIRST_READ), ("aiwb", COMMERCE_FIRST_READ)],
    ids=["accounting", "banking", "commerce"],
)
def test_the_first_read_after_an_authorization_syncs_the_sources_data_types(
    sim: CodatSimulator, http: httpx.Client, platform_key: str, data_types: tuple[str, ...]
) -> None:
    company_id, connection_id = linked(sim, platform_key, read=False)
    queued = data_status(http, company_id)

    sim.complete_reads()
    synced = data_status(http, company_id)

    assert set(queued) == set(synced) == set(data_types)
    assert {s["currentStatus"] for s in queued.values()} == {"Queued"}
    assert {s["currentStatus"] for s in synced.values()} == {"Complete"}
    assert all(s["latestSyncId"] == s["latestSuccessfulSyncId"] for s in synced.values())
    initial = sim.events[-1]
    assert initial.event_type == "read.completed.initial"
    assert [(d["connectionId"], d["dataType"], d["status"]) for d in initial.body["payload"]["dataTypes"]] == [
        (connection_id, t, "Complete") for t in data_types
    ]


def test_refresh_all_reads_every_first_read_data_type_but_one_being_read(
    sim: CodatSimulator, http: httpx.Client
) -> None:
    company_id, connection_id = linked(sim, "qhnd")
    queue(http, company_id, "banking-accounts")

    answer = http.post(f"/companies/{company_id}/data/all")
    sim.complete_reads()

    assert answer.status_code == 204
    assert answer.content == b""
    reads = [e for e in sim.events if e.event_type == "read.completed"]
    assert [[d["dataType"] for d in e.body["payload"]["dataTypes"]] for e in reads] == [
        ["banking-accounts"],
        ["banking-accountBalances", "banking-transactions"],
    ]
    assert {e.connection_id for e in reads} == {connection_id}


def test_a_company_without_reads_has_an_empty_data_status(sim: CodatSimulator, http: httpx.Client) -> None:
    company = sim.add_company("Acme Bakery")

    assert data_status(http, company.id) == {}
    assert refusal(http.get(f"/companies/{MISSING}/dataStatus"), 404).endswith(MISSING)
    assert refusal(http.post(f"/companies/{MISSING}/data/all"), 404).endswith(MISSING)


# --- Codat's refusals -------------------------------------------------------------------------------------------


def test_a_data_type_being_read_is_refused_until_its_read_ends(sim: CodatSimulator, http: httpx.Client) -> None:
    company_id, _ = linked(sim, read=False)

    during_first_read = queue(http, company_id, "invoices")  # the first read is reading invoices
    other_type = queue(http, company_id, "taxRates")
    again = queue(http, company_id, "taxRates")
    sim.complete_reads()
    after = queue(http, company_id, "taxRates")

    assert refusal(during_first_read) == READ_IN_PROGRESS
    assert other_type.status_code == 200
    assert refusal(again) == READ_IN_PROGRESS
    assert after.status_code == 200
    assert [d["dataType"] for d in sim.datasets(company_id)].count("taxRates") == 2  # the refused ones made none


def test_an_unknown_data_type_is_refused_as_breaking_the_spec() -> None:
    # The spec's dataType path parameter is an enum: another name is a request Codat's spec does not allow
    sim = CodatSimulator(spec=require_spec(), validate=True)
    company_id, _ = linked(sim)
    with sim.client() as http:
        unknown = queue(http, company_id, "bananas")

    assert refusal(unknown) == "Error processing request - not valid."
    assert "'bananas' is not one of" in unknown.json()["validation"]["errors"][0]["message"]
    assert len(sim.contract_violations) == 1
    assert "'bananas' is not one of" in sim.contract_violations[0]
    assert [d["dataType"] for d in sim.datasets(company_id) if d["dataType"] == "bananas"] == []


def test_an_unknown_data_type_is_refused_without_the_spec_too() -> None:
    sim = CodatSimulator(spec=None)
    company_id, _ = linked(sim)
    with sim.client() as http:
        unknown = queue(http, company_id, "bananas")

    assert refusal(unknown) == "Error processing request - not valid."
    assert unknown.json()["validation"]["errors"][0]["message"] == "Unknown data type 'bananas'."


def test_a_read_needs_a_linked_connection_that_supplies_the_data_type(sim: CodatSimulator, http: httpx.Client) -> None:
    company = sim.add_company("Acme Bakery")
    assert refusal(queue(http, MISSING, "invoices"), 404) == f"No company was found with ID {MISSING}"
    assert "no Linked data connection" in refusal(queue(http, company.id, "invoices"))

    pending = sim.add_connection(company.id, "mqjo")
    assert "no Linked data connection" in refusal(queue(http, company.id, "invoices"))
    assert refusal(queue(http, company.id, "invoices", connectionId=pending.id)) == (
        f"Data connection {pending.id} is PendingAuth: only a Linked connection can be read."
    )
    assert refusal(queue(http, company.id, "invoices", connectionId=MISSING), 404) == (
        f"Data connection {MISSING} not found"
    )

    sim.set_connection_status(company.id, pending.id, "Linked")
    sim.complete_reads()
    assert refusal(queue(http, company.id, "banking-accounts")) == (
        "The data type banking-accounts is not supported by Codat Sandbox."
    )
    sim.set_connection_status(company.id, pending.id, "Unlinked")
    assert "no Linked data connection" in refusal(queue(http, company.id, "invoices"))


def test_a_connection_id_reads_that_connection_only(sim: CodatSimulator, http: httpx.Client) -> None:
    company_id, first = linked(sim)
    second = sim.add_connection(company_id, "gbol", status="Linked").id
    sim.complete_reads()

    only_second = queue(http, company_id, "journals", connectionId=second).json()
    sim.complete_reads()
    both = queue(http, company_id, "items").json()
    sim.complete_reads()

    assert only_second["connectionId"] == second
    reads = [e for e in sim.events if e.event_type == "read.completed"]
    assert [(e.connection_id, e.body["payload"]["dataTypes"][0]["dataType"]) for e in reads] == [
        (second, "journals"),
        (first, "items"),
        (second, "items"),
    ]
    assert both["connectionId"] == first


def test_a_queued_read_replays_under_its_idempotency_key(sim: CodatSimulator, http: httpx.Client) -> None:
    company_id, _ = linked(sim)
    path = f"/companies/{company_id}/data/queue/taxRates"

    first = http.post(path, headers={"Idempotency-Key": "keep-alive-1"})
    replayed = http.post(path, headers={"Idempotency-Key": "keep-alive-1"})

    assert first.status_code == replayed.status_code == 200
    assert replayed.json() == first.json()
    assert [d["dataType"] for d in sim.datasets(company_id)].count("taxRates") == 1


# --- failed reads -----------------------------------------------------------------------------------------------


def test_a_failed_read_is_reported_in_data_status_and_read_completed(sim: CodatSimulator, http: httpx.Client) -> None:
    company_id, connection_id = linked(sim)
    before = data_status(http, company_id)["invoices"]
    sim.fail_next_read(company_id, "invoices", "FetchError")

    failed = queue(http, company_id, "invoices").json()
    [ended] = sim.complete_reads()
    after_failure = data_status(http, company_id)["invoices"]
    queue(http, company_id, "invoices")
    sim.complete_reads()
    recovered = data_status(http, company_id)["invoices"]

    assert (ended["id"], ended["status"], ended["isErrored"], ended["isCompleted"]) == (
        failed["id"],
        "FetchError",
        True,
        False,
    )
    assert after_failure["currentStatus"] == "FetchError"
    assert after_failure["latestSyncId"] == failed["id"]
    # the data read before stays: the latest success is the first read's
    assert after_failure["latestSuccessfulSyncId"] == before["latestSuccessfulSyncId"]
    assert after_failure["lastSuccessfulSync"] == before["lastSuccessfulSync"]
    read = next(e for e in sim.events if e.event_type == "read.completed")
    assert read.body["payload"]["dataTypes"] == [
        {
            "connectionId": connection_id,
            "dataType": "invoices",
            "recordsModified": False,
            "status": "FetchError",
            "issues": [],
        }
    ]
    assert recovered["currentStatus"] == "Complete"  # only the next read failed


def test_a_failure_armed_before_the_first_read_shows_in_read_completed_initial(
    sim: CodatSimulator, http: httpx.Client
) -> None:
    company_id, _ = linked(sim, "qhnd", read=False)
    sim.fail_next_read(company_id, "banking-transactions", "AuthError")

    sim.complete_reads()

    statuses = {d["dataType"]: d["status"] for d in sim.events[-1].body["payload"]["dataTypes"]}
    assert statuses == {
        "banking-accounts": "Complete",
        "banking-accountBalances": "Complete",
        "banking-transactions": "AuthError",
    }
    status = data_status(http, company_id)["banking-transactions"]
    assert status["currentStatus"] == "AuthError"
    assert "lastSuccessfulSync" not in status
    assert "latestSuccessfulSyncId" not in status


def test_a_read_of_a_connection_revoked_meanwhile_ends_without_a_webhook(
    sim: CodatSimulator, http: httpx.Client
) -> None:
    company_id, connection_id = linked(sim)
    queue(http, company_id, "taxRates")
    sim.deauthorize(company_id, connection_id)

    sim.complete_reads()

    assert data_status(http, company_id)["taxRates"]["currentStatus"] == "AuthError"
    assert "read.completed" not in [e.event_type for e in sim.events]


@pytest.mark.parametrize(
    ("data_type", "status", "problem"),
    [("bananas", "FetchError", "data types"), ("invoices", "Queued", "status"), ("invoices", "Complete", "status")],
)
def test_a_read_can_be_made_to_fail_only_as_codat_reads_end(data_type: str, status: str, problem: str) -> None:
    sim = CodatSimulator(spec=None)
    company = sim.add_company("Acme")
    with pytest.raises(ValueError, match=problem):
        sim.fail_next_read(company.id, data_type, status)
    with pytest.raises(KeyError):
        sim.fail_next_read(MISSING, "invoices")


# --- controls for tests and make dev ----------------------------------------------------------------------------


def test_queue_requests_are_counted_per_company_refused_and_faulted_ones_included(
    sim: CodatSimulator, http: httpx.Client
) -> None:
    company_id, _ = linked(sim)
    other_id, _ = linked(sim, "qhnd")
    sim.inject(Fault(kind="status", status=503, path="/data/queue/", times=1))

    queue(http, company_id, "taxRates")  # 503: not performed
    queue(http, company_id, "taxRates")
    queue(http, company_id, "taxRates")  # refused: being read
    queue(http, other_id, "banking-transactionCategories")

    assert sim.queue_requests(company_id) == 3
    assert sim.queue_requests(company_id, "taxRates") == 3
    assert sim.queue_requests(company_id, "invoices") == 0
    assert sim.queue_requests(other_id) == 1
    assert sim.queue_requests(MISSING) == 0


def test_the_control_routes_fail_a_read_complete_reads_and_show_a_companys_data(
    sim: CodatSimulator, http: httpx.Client
) -> None:
    sim.read_delay = 600
    company_id, connection_id = linked(sim)
    fail = f"/_simulator/companies/{company_id}/data/taxRates/fail"
    requests_before = len(sim.requests)

    with sim.client(authorized=False) as anonymous:  # not Codat's API: no key
        armed = anonymous.post(fail, json={"status": "RateLimitError", "times": 2})
        default = anonymous.post(f"/_simulator/companies/{company_id}/data/bills/fail")
        assert anonymous.post(fail, json={"status": "Complete"}).status_code == 400
        assert anonymous.post(fail, json={"status": "FetchError", "times": 0}).status_code == 400
        assert anonymous.post(fail, json=["FetchError"]).status_code == 400
        assert anonymous.post(fail.replace(company_id, MISSING)).status_code == 404
        assert anonymous.get(fail).status_code == 405
        queued = queue(http, company_id, "taxRates").json()
        summary = anonymous.get(f"/_simulator/companies/{company_id}/data").json()
        completed = anonymous.post("/_simulator/reads/complete")
        disarm = anonymous.delete(f"/_simulator/companies/{company_id}/data/bills/fail")
        after = anonymous.get(f"/_simulator/companies/{company_id}/data").json()
        assert anonymous.get(f"/_simulator/companies/{MISSING}/data").status_code == 404
        assert anonymous.get("/_simulator/reads/complete").status_code == 405

    assert armed.status_code == 201
    assert armed.json() == {"companyId": company_id, "dataType": "taxRates", "status": "RateLimitError", "times": 2}
    assert default.json()["status"] == "FetchError"
    assert summary["queueRequests"] == {"total": 1, "byDataType": {"taxRates": 1}}
    assert summary["pendingReads"] == 1
    assert summary["dataStatus"]["taxRates"]["currentStatus"] == "Queued"
    assert summary["failNext"] == {"taxRates": ["RateLimitError", "RateLimitError"], "bills": ["FetchError"]}
    assert [d["id"] for d in summary["datasets"]][-1] == queued["id"]
    assert completed.status_code == 200
    assert [(d["id"], d["status"], d["connectionId"]) for d in completed.json()["completed"]] == [
        (queued["id"], "RateLimitError", connection_id)
    ]
    assert disarm.status_code == 204
    assert after["failNext"] == {"taxRates": ["RateLimitError"]}
    assert after["pendingReads"] == 0
    assert after["dataStatus"]["taxRates"]["currentStatus"] == "RateLimitError"
    # only the one queue request was Codat's API; the control routes are neither recorded nor counted
    assert [r.operation for r in sim.requests[requests_before:]] == [
        "POST /companies/{companyId}/data/queue/{dataType}"
    ]


def test_the_webhook_flush_completes_queued_reads_too(sim: CodatSimulator, http: httpx.Client) -> None:
    sim.read_delay = 600
    company_id, _ = linked(sim)
    queue(http, company_id, "taxRates")

    sim.deliver_now()

    assert sim.events[-1].event_type == "read.completed"
    assert sim.flush_deliveries(0.5)


def test_reset_forgets_reads(sim: CodatSimulator, http: httpx.Client) -> None:
    company_id, _ = linked(sim)
    queue(http, company_id, "taxRates")

    sim.reset()

    assert sim.state.pending_reads == []
    assert sim.queue_requests(company_id) == 0
