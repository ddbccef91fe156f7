"""Webhooks about more connections than one DynamoDB transaction can hold (100 items) — `company.deleted`, a read
of them all: written in parts, the company last, and a retry after a failure half-way finishes with nothing twice."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.services import Services
from consent.store import Change
from consent_dev.codat_webhooks import connection_event, read_event, signed
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
CONNECTIONS = 90  # 180 items with their ledger entries: two transactions, the company in the second
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def test_a_company_with_ninety_connections_deleted_in_codat_is_applied_in_parts_and_resumed(
    api: LocalApi,
    services: Services,
    new_company: Callable[..., Any],
    dynamodb_faults: Any,
    table_items: Any,
) -> None:
    # Given an onboarding company with 90 bank connections linked, the first read (journey complete)
    company_id, connection_ids = linked_company(api, services, new_company, read=True)
    assert journey(api, company_id) == "complete"
    deleted = {
        "id": "evt-company-deleted",
        "eventType": "company.deleted",
        "generatedDate": (T0 + timedelta(seconds=2)).isoformat(),
        "payload": {"id": company_id},
    }
    raw, headers = signed(deleted, message_id="msg_company_deleted")

    # When Codat says the company was deleted, and DynamoDB fails the second part of the change
    dynamodb_faults.fail("TransactWriteItems", "InternalServerError", times=3, after=1)
    failed = api.post("/webhooks/codat", body=raw, headers=headers)

    # Then Codat is told to retry, and what was written is the first part only: the company is untouched
    assert failed.status == 503, failed.text
    written = len(deleted_entries(api, company_id))
    assert 0 < written < CONNECTIONS
    assert len(listed(api, company_id)) == CONNECTIONS - written
    assert journey(api, company_id) == "complete"
    assert not [i for i in table_items() if i["kind"]["S"] == "webhook" and "company_deleted" in i["PK"]["S"]]

    # When Codat retries
    retried = api.post("/webhooks/codat", body=raw, headers=headers)

    # Then every connection is deleted with one ledger entry each, and the journey needs action, once
    assert retried.status == 204, retried.text
    assert listed(api, company_id) == []
    entries = deleted_entries(api, company_id)
    assert len(entries) == CONNECTIONS
    assert {e["connectionId"] for e in entries} == set(connection_ids)
    assert journey(api, company_id) == "action_required"
    assert ledger_types(api, company_id).count("journey.action_required") == 1

    # and a redelivery changes nothing
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204
    assert len(deleted_entries(api, company_id)) == CONNECTIONS


def linked_company(
    api: LocalApi, services: Services, new_company: Callable[..., Any], *, read: bool
) -> tuple[str, list[str]]:
    """An onboarding company with CONNECTIONS bank connections linked: the first through Codat's webhooks (read
    too when `read`), the others copied from it straight into the store (90 webhooks would only be slow)."""
    company_id = new_company(journey="onboarding")["companyId"]
    connection_ids = [str(uuid.uuid4()) for _ in range(CONNECTIONS)]
    first = connection_event(
        "connection.connected", company_id=company_id, connection_id=connection_ids[0], status="Linked", generated=T0
    )
    assert post(api, first).status == 204
    if read:
        first_read = read_event(company_id=company_id, connection_ids=connection_ids[:1], initial=True, generated=T0)
        assert post(api, first_read).status == 204
    view = services.store.get_company_by_id(company_id)
    [template] = view.connections
    for start in range(1, CONNECTIONS, 40):
        more = [
            template.model_copy(update={"connection_id": connection_id, "version": 1})
            for connection_id in connection_ids[start : start + 40]
        ]
        services.store.commit(Change(added=more))
    assert len(listed(api, company_id)) == CONNECTIONS
    return company_id, connection_ids


def post(api: LocalApi, body: dict[str, Any]) -> Any:
    raw, headers = signed(body)
    return api.post("/webhooks/codat", body=raw, headers=headers)


def journey(api: LocalApi, company_id: str) -> str:
    return str(api.get(f"/companies/{company_id}", customer=ALICE).body["journeys"][0]["status"])


def listed(api: LocalApi, company_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query: dict[str, str] = {}
    while True:
        page = api.get(f"/companies/{company_id}/connections", customer=ALICE, query=query).body
        items.extend(page["items"])
        if not page.get("nextCursor"):
            return items
        query = {"cursor": page["nextCursor"]}


def ledger(api: LocalApi, company_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query: dict[str, str] = {"limit": "100"}
    while True:
        page = api.get(f"/companies/{company_id}/events", customer=ALICE, query=query).body
        items.extend(page["items"])
        if not page.get("nextCursor"):
            return items
        query = {"limit": "100", "cursor": page["nextCursor"]}


def ledger_types(api: LocalApi, company_id: str) -> list[str]:
    return [e["type"] for e in ledger(api, company_id)]


def deleted_entries(api: LocalApi, company_id: str) -> list[dict[str, Any]]:
    return [e for e in ledger(api, company_id) if e["type"] == "connection.deleted"]


def test_a_first_read_of_ninety_connections_is_applied_in_parts_and_resumed(
    api: LocalApi,
    services: Services,
    new_company: Callable[..., Any],
    dynamodb_faults: Any,
) -> None:
    # Given an onboarding company with 90 bank connections linked, none read yet (journey linked)
    company_id, connection_ids = linked_company(api, services, new_company, read=False)
    assert journey(api, company_id) == "linked"
    read = read_event(
        company_id=company_id, connection_ids=connection_ids, initial=True, generated=T0 + timedelta(seconds=1)
    )
    raw, headers = signed(read, message_id="msg_first_read_of_all")

    # When Codat says the first read of all of them completed, and DynamoDB fails the second part of the change
    dynamodb_faults.fail("TransactWriteItems", "InternalServerError", times=3, after=1)
    failed = api.post("/webhooks/codat", body=raw, headers=headers)

    # Then Codat is told to retry, and only a first part is written: the journey has not moved
    assert failed.status == 503, failed.text
    written = len(synced_entries(api, company_id))
    assert 0 < written < CONNECTIONS
    assert journey(api, company_id) == "linked"

    # When Codat retries, then every connection has its read recorded once, and the journey is complete, once
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204
    entries = synced_entries(api, company_id)
    assert sorted(e["connectionId"] for e in entries) == sorted(connection_ids)
    assert journey(api, company_id) == "complete"
    assert ledger_types(api, company_id).count("journey.completed") == 1

    # and a redelivery changes nothing
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204
    assert len(synced_entries(api, company_id)) == CONNECTIONS


def synced_entries(api: LocalApi, company_id: str) -> list[dict[str, Any]]:
    return [e for e in ledger(api, company_id) if e["type"] == "sync.completed"]
