"""The local Codat simulator behaves like Codat: idempotency, filters, paging, unlink rules, faults, HTTP serving."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from consent_dev.codat_simulator import CodatSimulator, Fault, SimulatedConnectionDrop, serve
from consent_dev.codat_spec import CodatSpec, require_spec

pytestmark = pytest.mark.unit

ERROR_KEYS = {"statusCode", "service", "error", "correlationId", "canBeRetried", "detailedErrorCode"}


def create_company(http: httpx.Client, name: str = "Acme Bakery", **fields: Any) -> dict[str, Any]:
    response = http.post("/companies", json={"name": name, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def create_connection(http: httpx.Client, company_id: str, key: str = "mqjo") -> dict[str, Any]:
    response = http.post(f"/companies/{company_id}/connections", json={"platformKey": key})
    assert response.status_code == 200, response.text
    return response.json()


def assert_codat_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body.keys() >= ERROR_KEYS
    assert body["statusCode"] == status
    return body


# --- Codat's behaviour ------------------------------------------------------------------------------------------


def test_auth_is_basic_with_the_base64_api_key(sim: CodatSimulator) -> None:
    with sim.client(authorized=False) as anonymous:
        assert_codat_error(anonymous.get("/companies"), 401)
        wrong = anonymous.get("/companies", headers={"Authorization": "Basic d3Jvbmc="})
        assert_codat_error(wrong, 401)
        raw_key = anonymous.get("/companies", headers={"Authorization": f"Basic {sim.api_key}"})
        assert_codat_error(raw_key, 401)
        assert anonymous.get("/companies", headers={"Authorization": sim.authorization}).status_code == 200


def test_a_company_gets_a_uuid_codat_timestamps_and_its_name_stripped_of_forbidden_characters(
    sim_client: httpx.Client,
) -> None:
    company = create_company(sim_client, "Company (Codat[1])", tags={"uid": "c-1"})

    assert company["name"] == "Company Codat1"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", company["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", company["created"])
    assert company["tags"] == {"uid": "c-1"}
    assert company["dataConnections"] == []


@pytest.mark.parametrize(
    "tags",
    [
        {f"k{i}": "v" for i in range(11)},
        {"k" * 28: "v"},
        {"": "v"},
        {"k": "v" * 101},
    ],
    ids=["eleven-tags", "long-key", "empty-key", "long-value"],
)
def test_bad_tags_are_a_400_codat_error(sim: CodatSimulator, sim_client: httpx.Client, tags: dict[str, str]) -> None:
    assert_codat_error(sim_client.post("/companies", json={"name": "Acme", "tags": tags}), 400)
    assert sim.companies == {}


def test_unknown_ids_are_404_with_codats_error_body(sim_client: httpx.Client) -> None:
    missing = "9b2e6a3c-0f61-4d6e-9f43-5d8f1d6c2a10"
    body = assert_codat_error(sim_client.get(f"/companies/{missing}"), 404)
    assert missing in body["error"]
    company = create_company(sim_client)
    body = assert_codat_error(sim_client.get(f"/companies/{company['id']}/connections/{missing}"), 404)
    assert missing in body["error"]
    assert_codat_error(sim_client.delete(f"/companies/{missing}"), 404)
    assert_codat_error(sim_client.get(f"/companies/{missing}/accessToken"), 404)


def test_connections_start_pending_with_a_fresh_one_time_link_on_every_read(
    sim: CodatSimulator, sim_client: httpx.Client
) -> None:
    company = create_company(sim_client)
    created = create_connection(sim_client, company["id"])
    read = sim_client.get(f"/companies/{company['id']}/connections/{created['id']}").json()

    assert created["status"] == "PendingAuth"
    assert created["integrationKey"] == "mqjo"
    assert created["sourceType"] == "Accounting"
    prefix = f"{sim.base_url}/link/{company['id']}/{created['id']}?otp="
    assert created["linkUrl"].startswith(prefix)
    assert read["linkUrl"].startswith(prefix)
    assert read["linkUrl"] != created["linkUrl"]


def test_the_link_page_authorizes_the_connection_once(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    company = create_company(sim_client)
    connection = create_connection(sim_client, company["id"], "qhnd")

    page = sim_client.get(connection["linkUrl"])
    assert page.status_code == 200
    assert "Codat Banking Sandbox" in page.text
    assert 'name="action" value="authorize"' in page.text
    assert sim_client.post(connection["linkUrl"], data={"action": "authorize"}).status_code == 303
    assert sim.connection(company["id"], connection["id"]).status == "Linked"
    assert sim_client.post(connection["linkUrl"], data={"action": "authorize"}).status_code == 410  # the otp was used
    assert [e.event_type for e in sim.events][-1] == "connection.connected"


def test_unknown_or_disabled_platform_keys_are_refused(sim_client: httpx.Client) -> None:
    company = create_company(sim_client)
    assert_codat_error(sim_client.post(f"/companies/{company['id']}/connections", json={"platformKey": "zzzz"}), 404)
    assert_codat_error(sim_client.post(f"/companies/{company['id']}/connections", json={"platformKey": "vjms"}), 400)
    assert_codat_error(sim_client.post(f"/companies/{company['id']}/connections", json={}), 400)


def test_only_a_linked_connection_can_be_unlinked(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    company = create_company(sim_client)
    connection = create_connection(sim_client, company["id"])
    url = f"/companies/{company['id']}/connections/{connection['id']}"

    assert_codat_error(sim_client.patch(url, json={"status": "Unlinked"}), 400)  # PendingAuth

    sim.set_connection_status(company["id"], connection["id"], "Linked")
    unlinked = sim_client.patch(url, json={"status": "Unlinked"})
    assert unlinked.status_code == 200
    assert unlinked.json()["status"] == "Unlinked"
    assert "lastSync" in unlinked.json()  # data synced while linked stays readable

    assert_codat_error(sim_client.patch(url, json={"status": "Unlinked"}), 400)  # already Unlinked
    sim.set_connection_status(company["id"], connection["id"], "Deauthorized")
    assert_codat_error(sim_client.patch(url, json={"status": "Unlinked"}), 400)
    assert [e.event_type for e in sim.events if e.connection_id == connection["id"]] == [
        "connection.created",
        "connection.connected",
        "connection.disconnected",
        "connection.disconnected",
    ]


def test_deleting_connections_and_companies(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    company = create_company(sim_client)
    kept = create_connection(sim_client, company["id"])
    dropped = create_connection(sim_client, company["id"], "qhnd")

    assert sim_client.delete(f"/companies/{company['id']}/connections/{dropped['id']}").status_code == 200
    listed = sim_client.get(f"/companies/{company['id']}/connections").json()
    assert [c["id"] for c in listed["results"]] == [kept["id"]]

    assert sim_client.delete(f"/companies/{company['id']}").status_code == 204
    assert sim.companies == {}
    assert_codat_error(sim_client.get(f"/companies/{company['id']}/connections/{kept['id']}"), 404)


def test_access_token(sim_client: httpx.Client) -> None:
    company = create_company(sim_client)
    token = sim_client.get(f"/companies/{company['id']}/accessToken").json()
    assert token["expiresIn"] == 86400
    assert token["tokenType"] == "Bearer"
    assert token["accessToken"]


# --- idempotency ------------------------------------------------------------------------------------------------


def test_the_same_idempotency_key_and_body_replays_without_creating_again(
    sim: CodatSimulator, sim_client: httpx.Client
) -> None:
    headers = {"Idempotency-Key": "key-1"}
    first = sim_client.post("/companies", json={"name": "Acme", "tags": {"a": "1"}}, headers=headers)
    # Same JSON value, other key order and spacing: still the same request.
    again = sim_client.post(
        "/companies",
        content=b'{"tags": {"a": "1"},  "name": "Acme"}',
        headers={**headers, "Content-Type": "application/json"},
    )

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert len(sim.companies) == 1


def test_the_same_idempotency_key_with_another_body_is_422(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    headers = {"Idempotency-Key": "key-1"}
    assert sim_client.post("/companies", json={"name": "Acme"}, headers=headers).status_code == 200

    assert_codat_error(sim_client.post("/companies", json={"name": "Other"}, headers=headers), 422)
    assert len(sim.companies) == 1


def test_idempotency_keys_last_90_minutes(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    headers = {"Idempotency-Key": "key-1"}
    first = sim_client.post("/companies", json={"name": "Acme"}, headers=headers).json()
    sim.clock.advance(timedelta(minutes=89))
    assert sim_client.post("/companies", json={"name": "Acme"}, headers=headers).json()["id"] == first["id"]

    sim.clock.advance(timedelta(minutes=2))
    assert sim_client.post("/companies", json={"name": "Acme"}, headers=headers).json()["id"] != first["id"]
    assert len(sim.companies) == 2


def test_errors_are_not_kept_under_an_idempotency_key(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    headers = {"Idempotency-Key": "key-1"}
    sim.inject(Fault(kind="status", status=500, method="POST"))
    assert_codat_error(sim_client.post("/companies", json={"name": "Acme"}, headers=headers), 500)
    assert sim_client.post("/companies", json={"name": "Acme"}, headers=headers).status_code == 200
    assert len(sim.companies) == 1


# --- filters and paging -----------------------------------------------------------------------------------------


def test_companies_filter_by_tags(sim_client: httpx.Client) -> None:
    uk_a = create_company(sim_client, "A", tags={"region": "uk", "team": "lending"})["id"]
    uk_b = create_company(sim_client, "B", tags={"region": "uk", "team": "cards"})["id"]
    us = create_company(sim_client, "C", tags={"region": "us", "team": "lending"})["id"]
    create_company(sim_client, "D")

    def ids(tags: str) -> list[str]:
        response = sim_client.get("/companies", params={"tags": tags})
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["results"]]

    assert ids("region=uk") == [uk_a, uk_b]
    assert ids("region = uk && team = lending") == [uk_a]
    assert ids("region=uk&&team=lending") == [uk_a]
    assert ids("team=lending && region!=uk") == [us]
    assert ids("team~end") == [uk_a, us]
    assert ids("region=UK") == []  # tag values compare exactly
    assert ids("region=fr || team=cards") == [uk_b]
    assert_codat_error(sim_client.get("/companies", params={"tags": "region uk"}), 400)


def test_companies_are_paged(sim_client: httpx.Client) -> None:
    created = [create_company(sim_client, f"Company {i}")["id"] for i in range(7)]

    seen: list[str] = []
    pages = []
    for number in (1, 2, 3):
        page = sim_client.get("/companies", params={"page": number, "pageSize": 3}).json()
        pages.append(page)
        seen += [c["id"] for c in page["results"]]
    assert seen == created
    assert [len(p["results"]) for p in pages] == [3, 3, 1]
    assert {p["totalResults"] for p in pages} == {7}
    assert "next" in pages[0]["_links"]
    assert "previous" not in pages[0]["_links"]
    assert "next" not in pages[2]["_links"]
    assert pages[2]["_links"]["previous"]["href"] == "/companies?page=2&pageSize=3"
    beyond = sim_client.get("/companies", params={"page": 4, "pageSize": 3}).json()
    assert beyond["results"] == []
    assert_codat_error(sim_client.get("/companies", params={"page": 0}), 400)


def test_integrations_page_and_filter_by_source_type_and_enabled(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    everything: list[dict[str, Any]] = []
    page_number = 1
    while True:
        page = sim_client.get("/integrations", params={"page": page_number, "pageSize": 4}).json()
        everything += page["results"]
        if "next" not in page["_links"]:
            break
        page_number += 1
    assert len(everything) >= 12
    assert len(everything) == page["totalResults"] == len(sim.integrations)
    assert {"mqjo", "qhnd", "aiwb"} <= {i["key"] for i in everything}
    assert any(not i["enabled"] for i in everything)

    banking = sim_client.get("/integrations", params={"query": "sourceType=Banking&&enabled=true"}).json()
    assert banking["results"]
    assert all(i["sourceType"] == "Banking" and i["enabled"] for i in banking["results"])
    lower = sim_client.get("/integrations", params={"query": "sourceType=banking && enabled=true"}).json()
    assert lower["results"] == banking["results"]
    assert_codat_error(sim_client.get("/integrations", params={"query": "colour=blue"}), 400)

    sim.add_integration("xtra", "Extra Bank", "Banking")
    again = sim_client.get("/integrations", params={"query": "sourceType=Banking&&enabled=true"}).json()
    assert again["totalResults"] == banking["totalResults"] + 1


def test_webhook_consumers_are_created_listed_and_deleted_as_codat_does(
    sim: CodatSimulator, sim_client: httpx.Client
) -> None:
    # Given no consumer yet
    assert sim_client.get("/webhooks").json() == {"results": []}

    # When two are created, one of them disabled and filtered by company tags
    hook = "https://bank.example/webhooks/codat"
    first = sim_client.post("/webhooks", json={"url": hook, "eventTypes": ["read.completed"]})
    second = sim_client.post(
        "/webhooks",
        json={"url": hook, "eventTypes": [], "disabled": True, "companyTags": ["region:uk"]},
        headers={"Idempotency-Key": "second"},
    )
    replayed = sim_client.post(
        "/webhooks",
        json={"url": hook, "eventTypes": [], "disabled": True, "companyTags": ["region:uk"]},
        headers={"Idempotency-Key": "second"},
    )

    # Then Codat answers 201 with each, lists both (no paging: at most 50) and a replay creates nothing
    assert (first.status_code, second.status_code, replayed.status_code) == (201, 201, 201)
    assert first.json() == {"id": first.json()["id"], "url": hook, "eventTypes": ["read.completed"], "disabled": False}
    assert second.json()["companyTags"] == ["region:uk"]
    assert replayed.json() == second.json()
    listed = sim_client.get("/webhooks").json()["results"]
    assert listed == [first.json(), second.json()]
    assert [c.id for c in sim.webhook_consumers] == [first.json()["id"], second.json()["id"]]

    # And a delete answers 204, then 404 for the same id
    assert sim_client.delete(f"/webhooks/{first.json()['id']}").status_code == 204
    assert_codat_error(sim_client.delete(f"/webhooks/{first.json()['id']}"), 404)
    assert [c["id"] for c in sim_client.get("/webhooks").json()["results"]] == [second.json()["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"eventTypes": ["read.completed"]},
        {"url": "not a url", "eventTypes": ["read.completed"]},
        {"url": "https://bank.example/hook", "eventTypes": "read.completed"},
        {"url": "https://bank.example/hook", "companyTags": ["no-colon"]},
        {"url": "https://bank.example/hook", "companyTags": [f"k{i}:v" for i in range(11)]},
    ],
    ids=["no-url", "not-a-url", "event-types-not-a-list", "tag-without-value", "eleven-tags"],
)
def test_a_webhook_consumer_codat_would_refuse_is_refused(body: dict[str, Any]) -> None:
    # The simulator's own rules, as Codat's (without the spec validator, which refuses some of these too)
    with CodatSimulator(spec=None).client() as http:
        assert_codat_error(http.post("/webhooks", json=body), 400)
        assert http.get("/webhooks").json() == {"results": []}


def test_codat_keeps_at_most_fifty_webhook_consumers(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    for number in range(50):
        sim.add_webhook_consumer(f"https://bank.example/hook/{number}", ["read.completed"])

    refused = sim_client.post("/webhooks", json={"url": "https://bank.example/one-more", "eventTypes": []})

    assert "limited to 50" in assert_codat_error(refused, 400)["error"]
    assert len(sim.webhook_consumers) == 50


def test_webhook_consumers_are_configuration_and_survive_a_reset(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    kept = sim.add_webhook_consumer("https://bank.example/hook", ["read.completed"])
    create_company(sim_client)

    sim.reset()

    assert sim.companies == {}
    assert [c["id"] for c in sim_client.get("/webhooks").json()["results"]] == [kept.id]


# --- faults -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 429, 500, 502, 503])
def test_status_faults_answer_codats_error_without_doing_anything(
    sim: CodatSimulator, sim_client: httpx.Client, status: int
) -> None:
    sim.inject(Fault(kind="status", status=status, method="POST", path="^/companies$"))

    assert_codat_error(sim_client.post("/companies", json={"name": "Acme"}), status)
    assert sim.companies == {}
    assert sim_client.post("/companies", json={"name": "Acme"}).status_code == 200  # times=1 by default


def test_a_429_carries_retry_after(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    sim.inject(Fault(kind="status", status=429, retry_after=7))
    sim.inject(Fault(kind="status", status=429))

    assert sim_client.get("/integrations").headers["Retry-After"] == "7"
    assert sim_client.get("/integrations").headers["Retry-After"] == "1"


def test_fault_matching_skip_and_times(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    fault = sim.inject(Fault(kind="status", status=503, method="GET", path=r"^/integrations$", skip=1, times=2))

    statuses = [sim_client.get("/integrations").status_code for _ in range(4)]
    assert sim_client.post("/companies", json={"name": "Acme"}).status_code == 200

    assert statuses == [200, 503, 503, 200]
    assert fault.hits == 2
    assert [r.fault for r in sim.calls("GET", "/integrations")] == [None, "status", "status", None]


def test_drop_raises_and_does_nothing(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    sim.inject(Fault(kind="drop", path="^/companies$"))
    with pytest.raises(httpx.RemoteProtocolError):
        sim_client.post("/companies", json={"name": "Acme"})

    sim.inject(Fault(kind="drop", path="^/companies$", error="connect"))
    with pytest.raises(httpx.ConnectError):
        sim_client.post("/companies", json={"name": "Acme"})

    assert sim.companies == {}
    assert sim.count("POST", "/companies") == 2


def test_a_lost_response_still_performs_the_operation(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    sim.inject(Fault(kind="lose_response", method="POST"))
    with pytest.raises(httpx.ReadTimeout):
        sim_client.post("/companies", json={"name": "Acme"}, headers={"Idempotency-Key": "k"})
    assert len(sim.companies) == 1

    # a retry with the same key gets the lost answer, not a second company
    replay = sim_client.post("/companies", json={"name": "Acme"}, headers={"Idempotency-Key": "k"})
    assert replay.json()["id"] in sim.companies
    assert len(sim.companies) == 1

    sim.inject(Fault(kind="lose_response", method="POST", error="remote_protocol"))
    with pytest.raises(httpx.RemoteProtocolError):
        sim_client.post("/companies", json={"name": "Other"})
    assert len(sim.companies) == 2


def test_a_malformed_answer_is_not_json(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    sim.inject(Fault(kind="malformed", path="^/companies$"))
    response = sim_client.get("/companies")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_slow_answers_arrive_late_or_time_out_quickly(sim: CodatSimulator) -> None:
    sim.inject(Fault(kind="slow", delay=0.05, method="GET"))
    with sim.client(timeout=1.0) as patient:
        started = time.monotonic()
        assert patient.get("/integrations").status_code == 200
        assert time.monotonic() - started >= 0.05

    sim.inject(Fault(kind="slow", delay=30.0, method="POST"))
    with sim.client(timeout=httpx.Timeout(1.0, read=0.05)) as hasty:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            hasty.post("/companies", json={"name": "Acme"})
        assert time.monotonic() - started < 1.0
    assert len(sim.companies) == 1  # the slow server still did the work


def test_handle_raises_on_a_dropped_connection(sim: CodatSimulator) -> None:
    sim.inject(Fault(kind="lose_response", method="POST"))
    with pytest.raises(SimulatedConnectionDrop) as dropped:
        sim.handle("POST", "/companies", headers={"Authorization": sim.authorization}, body=b'{"name": "Acme"}')
    assert dropped.value.performed
    assert len(sim.companies) == 1


# --- concurrency, inspection, reset -----------------------------------------------------------------------------


def test_concurrent_requests_are_safe(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(10):
                create_company(sim_client, f"Company {worker} {i}", tags={"worker": str(worker)})
                sim_client.get("/companies", params={"tags": f"worker={worker}", "pageSize": 5})
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(sim.companies) == 80
    assert sim.count("POST", "/companies") == 80
    assert sim.count("GET", "/companies") == 80


def test_requests_are_recorded_and_reset_forgets_everything(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    company = create_company(sim_client, tags={"k": "v"})
    sim_client.get(f"/companies/{company['id']}")
    sim.inject(Fault(kind="status", status=500, times=None))

    [recorded] = sim.calls("POST", "/companies")
    assert recorded.json == {"name": "Acme Bakery", "tags": {"k": "v"}}
    assert recorded.headers["authorization"] == sim.authorization
    assert recorded.status == 200
    assert recorded.operation == "POST /companies"
    assert sim.calls("GET", "/companies/{companyId}")[0].path == f"/companies/{company['id']}"
    assert sim.get_company(company["id"])["tags"] == {"k": "v"}

    sim.reset()
    assert sim.companies == {}
    assert sim.requests == []
    assert sim.faults.active == []
    assert sim_client.get("/companies").json()["totalResults"] == 0


def test_seeding_state_directly(sim: CodatSimulator, sim_client: httpx.Client) -> None:
    company = sim.add_company("Seeded Ltd", tags={"uid": "u-1"})
    connection = sim.add_connection(company.id, "qhnd", status="Linked")

    read = sim_client.get(f"/companies/{company.id}/connections/{connection.id}").json()
    assert read["status"] == "Linked"
    assert sim.get_connection(company.id, connection.id)["sourceType"] == "Banking"
    assert sim.requests[-1].template == "/companies/{companyId}/connections/{connectionId}"


# --- HTTP serving -----------------------------------------------------------------------------------------------


def test_serving_over_real_http(sim: CodatSimulator) -> None:
    with (
        serve(sim, "127.0.0.1", 0) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": sim.authorization}, timeout=5.0) as http,
    ):
        company = http.post("/companies", json={"name": "Over HTTP"}).json()
        assert http.get(f"/companies/{company['id']}").json()["name"] == "Over HTTP"
        connection = http.post(f"/companies/{company['id']}/connections", json={"platformKey": "mqjo"}).json()
        assert connection["linkUrl"].startswith(f"{server.url}/link/")
        assert http.get(connection["linkUrl"]).status_code == 200

        sim.inject(Fault(kind="status", status=429, retry_after=3))
        limited = http.get("/companies")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "3"

        sim.inject(Fault(kind="drop"))
        with pytest.raises(httpx.RemoteProtocolError):
            http.get("/companies")
        assert http.get("/companies").status_code == 200  # the server survives a dropped connection


# --- the spec validator itself (no spec file needed) ------------------------------------------------------------


def test_nullable_is_rewritten_and_refs_through_it_still_resolve() -> None:
    document = {
        "openapi": "3.1.0",
        "paths": {},
        "components": {
            "schemas": {
                "Outer": {
                    "type": "object",
                    "nullable": True,
                    "properties": {"inner": {"type": "string", "enum": ["a"], "nullable": True}},
                },
                "UsesInner": {"$ref": "#/components/schemas/Outer/properties/inner"},
                "UsesOuter": {"$ref": "#/components/schemas/Outer", "nullable": False},
            }
        },
    }
    spec = CodatSpec(document)

    assert spec.validate_schema("Outer", None) == []
    assert spec.validate_schema("Outer", {"inner": None}) == []
    assert spec.validate_schema("Outer", {"inner": "b"}) != []
    assert spec.validate_schema("UsesInner", None) == []
    assert spec.validate_schema("UsesInner", "a") == []
    assert spec.validate_schema("UsesInner", "b") != []
    assert spec.validate_schema("UsesOuter", 3) != []
    assert document["components"]["schemas"]["Outer"]["nullable"] is True  # the caller's document is untouched


def test_require_spec_skips_locally_and_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODAT_SPEC_DIR", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="CODAT_SPEC_DIR"):
        require_spec()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CODAT_SPEC_DIR"):
        require_spec()


# Tests that send requests Codat's spec forbids, on purpose (bad tags, page=0).
PROVOKES_VIOLATIONS = {"test_bad_tags_are_a_400_codat_error", "test_companies_are_paged"}


@pytest.fixture(autouse=True)
def _contract_violations_only_where_provoked(sim: CodatSimulator, request: pytest.FixtureRequest) -> Any:
    yield
    if request.node.originalname in PROVOKES_VIOLATIONS and sim.validating:
        assert all(v.startswith("request: ") for v in sim.contract_violations)
        assert sim.contract_violations
    else:
        assert sim.contract_violations == []
