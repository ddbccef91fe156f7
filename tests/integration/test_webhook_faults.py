"""Webhooks when AWS fails: before the answer, a 5xx (Codat retries) and the retry applies the change
exactly once; after a 2xx, the change and its events are durable and reach subscribers whatever dies when.
(Throttling, races, conflicts and SNS failing are cells of tests/integration/test_fault_matrix.py.)"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from consent_dev.codat_webhooks import connection_event, signed
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
CONNECTION = "5f7c0d1e-2a3b-4c5d-8e9f-0a1b2c3d4e5f"


def connected(company_id: str) -> tuple[bytes, dict[str, str]]:
    body = connection_event("connection.connected", company_id=company_id, connection_id=CONNECTION, status="Linked")
    return signed(body, message_id=f"msg-connected-{company_id}")


def linked_entries(api: LocalApi, company_id: str) -> list[dict[str, Any]]:
    entries = api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"]
    return [e for e in entries if e["type"] == "connection.linked"]


@pytest.mark.parametrize(
    ("operation", "code", "times"),
    [
        ("GetItem", "ProvisionedThroughputExceededException", 3),  # the redelivery check
        ("Query", "ThrottlingException", 3),  # reading the company
        # (the change itself throttled: a cell of tests/integration/test_fault_matrix.py)
        ("TransactWriteItems", "InternalServerError", 3),
    ],
)
def test_dynamodb_failing_answers_5xx_and_the_retry_applies_exactly_once(
    api: LocalApi,
    new_company: Callable[..., Any],
    dynamodb_faults: Any,
    table_items: Any,
    operation: str,
    code: str,
    times: int,
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]
    raw, headers = connected(company_id)
    before = table_items()
    dynamodb_faults.fail(operation, code, times=times)

    failed = api.post("/webhooks/codat", body=raw, headers=headers)

    assert failed.status == 503, failed.text
    assert failed.body["code"] == "store_unavailable"
    assert failed.header("retry-after") == "5"
    assert table_items() == before  # nothing half-written

    retried = api.post("/webhooks/codat", body=raw, headers=headers)
    again = api.post("/webhooks/codat", body=raw, headers=headers)

    assert retried.status == again.status == 204
    assert len(linked_entries(api, company_id)) == 1
    [connection] = api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]
    assert connection["status"] == "Linked"


def test_a_change_the_table_refuses_as_invalid_is_a_500_with_nothing_stored_and_a_redelivery_applies_it(
    api: LocalApi, new_company: Callable[..., Any], dynamodb_faults: Any, table_items: Any
) -> None:
    # Given DynamoDB refusing the webhook's change as invalid (a limit of ours, not an outage)
    company_id = new_company(journey="onboarding")["companyId"]
    raw, headers = connected(company_id)
    before = table_items()
    dynamodb_faults.fail("TransactWriteItems", "ValidationException")

    failed = api.post("/webhooks/codat", body=raw, headers=headers)

    # Then the delivery fails (Codat keeps it as failed, reconciliation heals), and nothing is stored
    assert failed.status == 500, failed.text
    assert failed.body["code"] == "internal_error"
    assert table_items() == before
    # and Codat's redelivery, once the table takes it, applies it once
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204
    assert len(linked_entries(api, company_id)) == 1


def test_the_process_dying_between_write_and_publish_loses_nothing(
    api: LocalApi, new_company: Callable[..., Any], outbox: StreamPump, events_queue: EventsQueue
) -> None:
    # The webhook function never publishes: once its transaction committed (and it answered 2xx), the
    # ledger entries are in the table's stream, and the relay publishes them whatever became of the function.
    company_id = new_company(journey="onboarding")["companyId"]
    raw, headers = connected(company_id)
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204
    # (the function's process is gone here; only the stream remains)

    outbox.drain()

    types = [m.type for m in events_queue.receive()]
    assert {"consent.company.created", "consent.connection.linked", "consent.journey.linked"} <= set(types)


def test_twenty_parallel_deliveries_of_one_webhook_make_one_state_change(
    api: LocalApi, new_company: Callable[..., Any], table_items: Any
) -> None:
    # Given Codat (through Svix) delivers the same message twenty times at once
    company_id = new_company(journey="onboarding")["companyId"]
    raw, headers = connected(company_id)
    answers: list[int] = []
    lock = threading.Lock()

    def deliver() -> None:
        status = api.post("/webhooks/codat", body=raw, headers=headers).status
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every delivery is acknowledged and the change happened exactly once
    assert answers == [204] * 20
    assert len(linked_entries(api, company_id)) == 1
    [connection] = api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]
    assert connection["status"] == "Linked"
    remembered = [i for i in table_items() if i["kind"]["S"] == "webhook"]
    assert len(remembered) == 1
