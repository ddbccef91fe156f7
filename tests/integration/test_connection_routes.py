"""The connection step over the API: integrations, connections with Codat's link, the Link SDK token,
"Manage connections" and the consent ledger."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from consent.domain.resources import ConnectionStatus
from consent_dev.codat_simulator import CodatSimulator, Fault
from consent_dev.codat_webhooks import connection_event, signed
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
BOB = "customer-bob"
QHND = {"platformKey": "qhnd"}  # Codat's sandbox bank
MQJO = {"platformKey": "mqjo"}  # Codat's sandbox accounting platform


def connect(api: LocalApi, company_id: str, body: dict[str, Any] = QHND, customer: str = ALICE) -> Any:
    return api.post(f"/companies/{company_id}/connections", customer=customer, json=body)


def test_integrations_list_enabled_ones_by_source_type_from_one_cached_codat_read(
    api: LocalApi, simulator: CodatSimulator
) -> None:
    every = api.get("/integrations", customer=ALICE)
    banking = api.get("/integrations", customer=ALICE, query={"sourceType": "banking"})
    for _ in range(10):
        api.get("/integrations", customer=ALICE, query={"sourceType": "accounting"})

    assert every.status == banking.status == 200
    keys = {i["platformKey"] for i in every.body["items"]}
    assert {"mqjo", "qhnd", "aiwb"} <= keys
    assert all(set(i) == {"platformKey", "name", "sourceType", "logoUrl"} for i in every.body["items"])
    assert {i["sourceType"] for i in banking.body["items"]} == {"banking"}
    disabled = {key for key, integration in simulator.integrations.items() if not integration.enabled}
    assert disabled
    assert not keys & disabled
    # twelve requests within the cache period cost one Codat call (the catalogue fits one page)
    assert len(simulator.calls("GET", "/integrations")) == 1


def test_an_unknown_source_type_is_422(api: LocalApi) -> None:
    response = api.get("/integrations", customer=ALICE, query={"sourceType": "payroll"})
    assert response.status == 422
    assert response.body["errors"][0]["field"] == "sourceType"


def test_creating_a_connection_returns_codats_link_and_records_it_pending(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    company_id = new_company()["companyId"]

    response = connect(api, company_id, {"platformKey": "qhnd", "consentVersion": "2026-01"})

    assert response.status == 201, response.text
    connection = response.body
    assert connection["status"] == "PendingAuth"
    assert connection["platformKey"] == "qhnd"
    assert connection["sourceType"] == "banking"
    assert connection["linkUrl"].startswith("http")
    [call] = simulator.calls("POST", "/companies/{companyId}/connections")
    assert call.headers["idempotency-key"]
    listed = api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]
    assert [c["connectionId"] for c in listed] == [connection["connectionId"]]
    assert "linkUrl" not in listed[0]  # never stored
    company = api.get(f"/companies/{company_id}", customer=ALICE).body
    assert company["journeys"][0]["status"] == "linking"
    ledger = api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"]
    created = [e for e in ledger if e["type"] == "connection.created"]
    assert created == [
        {
            "entryId": created[0]["entryId"],
            "at": created[0]["at"],
            "type": "connection.created",
            "actor": f"customer:{ALICE}",
            "connectionId": connection["connectionId"],
            "platformKey": "qhnd",
            "sourceType": "banking",
            "consentVersion": "2026-01",
        }
    ]


def test_asking_twice_for_the_same_platform_reuses_the_connection_with_a_fresh_link(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    company_id = new_company()["companyId"]

    first = connect(api, company_id)
    second = connect(api, company_id)

    assert first.status == 201
    assert second.status == 200
    assert second.body["connectionId"] == first.body["connectionId"]
    assert second.body["linkUrl"] != first.body["linkUrl"]  # one-time links: a new one each time
    assert len(simulator.calls("POST", "/companies/{companyId}/connections")) == 1
    assert len(api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]) == 1


def test_a_deauthorized_connection_is_reauthorized_by_reusing_it(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any], authorize: Callable[..., None]
) -> None:
    company_id = new_company()["companyId"]
    connection_id = connect(api, company_id).body["connectionId"]
    authorize(company_id, connection_id, ConnectionStatus.DEAUTHORIZED)

    again = connect(api, company_id)

    assert again.status == 200
    assert again.body["connectionId"] == connection_id
    assert again.body["status"] == "Deauthorized"
    assert again.body["linkUrl"]
    assert len(simulator.calls("POST", "/companies/{companyId}/connections")) == 1


def test_a_platform_whose_source_type_no_journey_allows_is_409_naming_the_allowed_types(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    company_id = new_company(journey="onboarding")["companyId"]  # banking required, accounting optional

    response = connect(api, company_id, {"platformKey": "aiwb"})  # commerce

    # Well formed, refused by the company's state (its journeys): a conflict, not a validation failure
    assert response.status == 409
    assert response.body["code"] == "source_type_not_in_journeys"
    assert response.body["detail"] == "This company's journeys allow these source types: accounting, banking."
    assert response.body["errors"][0]["field"] == "platformKey"
    assert simulator.calls("POST", "/companies/{companyId}/connections") == []


def test_an_unknown_or_disabled_platform_is_409(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    company_id = new_company()["companyId"]
    disabled = next(key for key, integration in simulator.integrations.items() if not integration.enabled)
    for key in ("zzzz", disabled):
        response = connect(api, company_id, {"platformKey": key})
        # Well formed; the bank has enabled no such integration (yet): a conflict with that state
        assert response.status == 409, key
        assert response.body["code"] == "integration_not_enabled"
        assert response.body["errors"][0]["field"] == "platformKey"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"platformKey": "QHND"},
        {"platformKey": "qhndx"},
        {"platformKey": "qhnd", "extra": True},
        {"platformKey": "qhnd", "consentVersion": ""},
        {"platformKey": "qhnd", "consentVersion": "v" * 65},
    ],
)
def test_an_invalid_connection_body_is_422(api: LocalApi, new_company: Callable[..., Any], body: Any) -> None:
    company_id = new_company()["companyId"]
    response = connect(api, company_id, body)
    assert response.status == 422
    assert response.body["code"] == "validation_failed"


def test_a_second_accounting_platform_while_one_is_linked_is_409(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any], authorize: Callable[..., None]
) -> None:
    simulator.add_integration(key="xero", name="Xero", source_type="Accounting")
    company_id = new_company()["companyId"]
    linked = connect(api, company_id, MQJO).body["connectionId"]
    authorize(company_id, linked)

    response = connect(api, company_id, {"platformKey": "xero"})

    assert response.status == 409
    assert response.body["code"] == "accounting_already_linked"
    same = connect(api, company_id, MQJO)
    assert same.status == 409
    assert same.body["code"] == "connection_already_linked"


def test_two_concurrent_requests_for_one_platform_make_one_codat_connection(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]
) -> None:
    company_id = new_company()["companyId"]
    simulator.inject(Fault(kind="slow", method="POST", path="/connections$", delay=0.2, times=1))
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(connect(api, company_id))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.status for r in results) == [200, 201]
    assert len({r.body["connectionId"] for r in results}) == 1
    assert len(simulator.companies[company_id].connections) == 1
    assert len(api.get(f"/companies/{company_id}/connections", customer=ALICE).body["items"]) == 1


def test_the_access_token_is_codats_and_never_cached(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any], table_items: Any
) -> None:
    company_id = new_company()["companyId"]

    response = api.get(f"/companies/{company_id}/access-token", customer=ALICE)

    assert response.status == 200, response.text
    assert set(response.body) == {"accessToken", "expiresIn"}
    assert response.body["expiresIn"] == 86400
    assert response.header("cache-control") == "no-store"
    assert response.body["accessToken"] not in str(table_items())


def test_the_ledger_pages_oldest_first(api: LocalApi, new_company: Callable[..., Any]) -> None:
    company_id = new_company()["companyId"]
    for _ in range(3):
        connect(api, company_id)  # a link request each time

    first = api.get(f"/companies/{company_id}/events", customer=ALICE, query={"limit": "2"})
    rest = api.get(
        f"/companies/{company_id}/events", customer=ALICE, query={"limit": "100", "cursor": first.body["nextCursor"]}
    )

    entries = first.body["items"] + rest.body["items"]
    assert [e["type"] for e in entries] == [
        "company.created",
        "journey.started",
        "connection.created",
        "connection.link_requested",
        "connection.link_requested",
    ]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert "nextCursor" not in rest.body


def test_connections_page_too(api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any]) -> None:
    company_id = new_company()["companyId"]
    connect(api, company_id, QHND)
    connect(api, company_id, MQJO)
    connect(api, company_id, {"platformKey": "aiwb"})

    first = api.get(f"/companies/{company_id}/connections", customer=ALICE, query={"limit": "2"})
    second = api.get(f"/companies/{company_id}/connections", customer=ALICE, query={"cursor": first.body["nextCursor"]})

    assert len(first.body["items"]) == 2
    assert len(second.body["items"]) == 1
    assert {c["platformKey"] for c in first.body["items"] + second.body["items"]} == {"qhnd", "mqjo", "aiwb"}


def _deliver_at_once(api: LocalApi, company_id: str, connection_id: str, message_id: str) -> None:
    """Codat's `connection.created` for the connection, delivered (and applied) now."""
    body = connection_event(
        "connection.created", company_id=company_id, connection_id=connection_id, status="PendingAuth"
    )
    raw, headers = signed(body, message_id=message_id)
    assert api.post("/webhooks/codat", body=raw, headers=headers).status == 204


def _consent_entries(api: LocalApi, company_id: str) -> list[tuple[str, str, str | None]]:
    ledger = api.get(f"/companies/{company_id}/events", customer=ALICE).body["items"]
    return [(e["type"], e["actor"], e.get("consentVersion")) for e in ledger if "connectionId" in e]


def test_codat_s_webhook_applied_before_the_request_writes_still_leaves_the_customer_s_consent(
    api: LocalApi,
    services: Any,
    new_company: Callable[..., Any],
    outbox: StreamPump,
    events_queue: EventsQueue,
) -> None:
    # Given Codat, which sends connection.created as soon as it creates the connection: applied before our request
    # has recorded it (forced: delivered inside the Codat call)
    company_id = new_company()["companyId"]
    create = services.codat.create_connection

    def create_then_deliver(*args: Any, **kwargs: Any) -> Any:
        created = create(*args, **kwargs)
        _deliver_at_once(api, company_id, created.id, "msg-at-once")
        return created

    services.codat.create_connection = create_then_deliver
    outbox.drain()
    events_queue.receive()

    # When the customer asks for the connection
    response = connect(api, company_id, {"platformKey": "qhnd", "consentVersion": "2026-01"})

    # Then this request created it (201), and the ledger holds her consent once, with its version, then Codat's
    # confirmation of it, as when her request writes first
    assert response.status == 201, response.text
    assert response.body["linkUrl"].startswith("http")
    assert _consent_entries(api, company_id) == [
        ("connection.created", f"customer:{ALICE}", "2026-01"),
        ("codat.connection.created", "codat", None),
    ]
    outbox.drain()
    customer_events = [
        m.event["data"] for m in events_queue.receive() if m.event["data"].get("actor") == f"customer:{ALICE}"
    ]
    assert [e.get("consentVersion") for e in customer_events if e.get("connectionId")] == ["2026-01"]


def test_a_retry_after_the_write_failed_records_the_consent_the_webhook_could_not(
    api: LocalApi, simulator: CodatSimulator, new_company: Callable[..., Any], dynamodb_faults: Any
) -> None:
    # Given a request whose Codat call succeeded but whose write failed (the table throttled every attempt) ...
    company_id = new_company()["companyId"]
    dynamodb_faults.fail("TransactWriteItems", "ThrottlingException", times=3)
    failed = connect(api, company_id, {"platformKey": "qhnd", "consentVersion": "2026-01"})
    assert failed.status == 503, failed.text
    [connection_id] = list(simulator.companies[company_id].connections)
    # ... and Codat's connection.created, applied meanwhile: the connection is known as made outside our API
    _deliver_at_once(api, company_id, connection_id, "msg-meanwhile")

    # When the customer retries
    retried = connect(api, company_id, {"platformKey": "qhnd", "consentVersion": "2026-01"})

    # Then she gets that connection (reused: no second one in Codat) with its link, and her consent is recorded once
    assert retried.status == 200, retried.text
    assert retried.body["connectionId"] == connection_id
    assert retried.body["linkUrl"].startswith("http")
    assert list(simulator.companies[company_id].connections) == [connection_id]
    assert _consent_entries(api, company_id) == [
        ("connection.created", f"customer:{ALICE}", "2026-01"),
        ("codat.connection.created", "codat", None),
    ]
