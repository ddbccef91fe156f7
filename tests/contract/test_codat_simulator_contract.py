"""The Codat simulator speaks Codat's published OpenAPI spec, and the spec validator really catches violations."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from consent_dev.codat_simulator import CODAT_EVENT_TYPES, CodatSimulator, Fault
from consent_dev.codat_spec import CodatSpec, ResponseChecker

pytestmark = pytest.mark.contract


def ok(response: httpx.Response) -> Any:
    assert response.is_success, response.text
    return response.json() if response.content else None


def test_every_simulated_operation_answers_as_the_spec_documents(
    sim: CodatSimulator, http: httpx.Client, spec_check: ResponseChecker
) -> None:
    plain = ok(http.post("/companies", json={"name": "Technicalium"}))
    company = ok(
        http.post(
            "/companies",
            json={"name": "Toft stores (UK)", "description": "Retail", "tags": {"region": "uk", "uid": "c-1"}},
            headers={"Idempotency-Key": "create-1"},
        )
    )
    cid = company["id"]
    ok(http.get("/companies"))
    ok(http.get("/companies", params={"page": 1, "pageSize": 1}))
    ok(http.get("/companies", params={"tags": "region=uk && uid=c-1"}))
    ok(http.get("/companies", params={"query": "name=Technicalium"}))
    retagged = ok(http.patch(f"/companies/{cid}", json={"tags": {"region": "eu", "uid": "c-1"}}))
    assert retagged["tags"] == {"region": "eu", "uid": "c-1"}
    assert retagged["name"] == company["name"]
    ok(http.get(f"/companies/{plain['id']}"))
    ok(http.get(f"/companies/{cid}/accessToken"))

    pending = ok(http.post(f"/companies/{cid}/connections", json={"platformKey": "mqjo"}))
    linked = ok(http.post(f"/companies/{cid}/connections", json={"platformKey": "qhnd"}))
    sim.set_connection_status(cid, linked["id"], "Linked")
    ok(http.post(f"/companies/{cid}/data/queue/banking-transactionCategories", params={"connectionId": linked["id"]}))
    ok(http.post(f"/companies/{cid}/data/all"))
    ok(http.get(f"/companies/{cid}/dataStatus"))
    ok(http.get(f"/companies/{cid}"))  # with dataConnections, one synced
    ok(http.get(f"/companies/{cid}/connections", params={"pageSize": 1}))
    ok(http.get(f"/companies/{cid}/connections", params={"query": "status=Linked"}))
    ok(http.get(f"/companies/{cid}/connections/{pending['id']}"))
    ok(http.patch(f"/companies/{cid}/connections/{linked['id']}", json={"status": "Unlinked"}))
    ok(http.delete(f"/companies/{cid}/connections/{pending['id']}"))

    ok(http.get("/integrations"))
    ok(http.get("/integrations", params={"page": 2, "pageSize": 5, "query": "sourceType=Accounting&&enabled=true"}))
    ok(http.get("/integrations/qhnd"))
    ok(http.delete(f"/companies/{cid}"))

    consumer = ok(http.post("/webhooks", json={"url": "https://bank.example/webhooks/codat", "eventTypes": ["a.b"]}))
    assert consumer["disabled"] is False
    filtered = {"url": "https://bank.example/in", "eventTypes": [], "disabled": None, "companyTags": ["region:uk"]}
    ok(http.post("/webhooks", json=filtered, headers={"Idempotency-Key": "consumer-1"}))
    assert len(ok(http.get("/webhooks"))["results"]) == 2
    ok(http.delete(f"/webhooks/{consumer['id']}"))

    assert spec_check.violations == []
    assert sim.contract_violations == []
    exercised = {f"{method} {template}" for method, template, _ in spec_check.exchanges}
    assert exercised == set(sim.operations)


def test_error_answers_use_codats_error_schema(
    sim: CodatSimulator, http: httpx.Client, spec_check: ResponseChecker
) -> None:
    missing = "9b2e6a3c-0f61-4d6e-9f43-5d8f1d6c2a10"
    company = ok(http.post("/companies", json={"name": "Acme"}, headers={"Idempotency-Key": "k"}))
    connection = ok(http.post(f"/companies/{company['id']}/connections", json={"platformKey": "mqjo"}))

    statuses = [
        http.get(f"/companies/{missing}").status_code,
        http.get(f"/companies/{company['id']}/connections/{missing}").status_code,
        http.patch(
            f"/companies/{company['id']}/connections/{connection['id']}", json={"status": "Unlinked"}
        ).status_code,
        http.post("/companies", json={"name": "Other"}, headers={"Idempotency-Key": "k"}).status_code,
        http.post(f"/companies/{company['id']}/connections", json={"platformKey": "zzzz"}).status_code,
        http.get("/companies", params={"tags": "no operator"}).status_code,
        http.get("/integrations", params={"query": "colour=blue"}).status_code,
        http.delete(f"/webhooks/{missing}").status_code,
        http.post("/webhooks", json={"eventTypes": ["connection.connected"]}).status_code,
    ]
    with sim.client(authorized=False, event_hooks={"response": [spec_check]}) as anonymous:
        statuses.append(anonymous.get("/companies").status_code)
    for status in (403, 429, 500, 502, 503):
        sim.inject(Fault(kind="status", status=status))
        statuses.append(http.get(f"/companies/{company['id']}").status_code)

    assert statuses == [404, 404, 400, 422, 404, 400, 400, 404, 400, 401, 403, 429, 500, 502, 503]
    assert spec_check.violations == []
    assert sim.contract_violations == []


def test_a_request_that_breaks_the_spec_is_recorded_and_refused(sim: CodatSimulator, http: httpx.Client) -> None:
    bad_name = http.post("/companies", json={"name": 123})
    company = ok(http.post("/companies", json={"name": "Acme"}))
    bad_status = http.patch(f"/companies/{company['id']}/connections/{company['id']}", json={"status": "Paused"})
    bad_param = http.get("/companies", params={"pagesize": 5})
    bad_id = http.get("/companies/not-a-uuid")

    assert [r.status_code for r in (bad_name, bad_status, bad_param, bad_id)] == [400, 400, 400, 400]
    assert bad_name.json()["validation"]["errors"]
    assert len(sim.contract_violations) == 4
    assert "$.name: 123 is not of type 'string'" in sim.contract_violations[0]
    assert "$.status" in sim.contract_violations[1]
    assert "'pagesize' is not defined" in sim.contract_violations[2]
    assert "is not a 'uuid'" in sim.contract_violations[3]
    assert len(sim.companies) == 1


def test_forbidden_name_characters_are_not_a_violation_because_codat_strips_them(
    sim: CodatSimulator, http: httpx.Client
) -> None:
    company = ok(http.post("/companies", json={"name": "Company (Codat[1])"}))

    assert company["name"] == "Company Codat1"
    assert sim.contract_violations == []


def test_the_validator_rejects_responses_that_break_the_spec(codat_spec: CodatSpec) -> None:
    [example] = codat_spec.response_examples("GET", "/companies/{companyId}/connections/{connectionId}").values()
    path = f"/companies/{example['id']}/connections/{example['id']}"

    assert codat_spec.validate_response("GET", path, 200, example) == []
    assert codat_spec.validate_response("GET", path, 200, {**example, "lastSync": None}) == []  # nullable
    assert codat_spec.validate_response("GET", path, 200, {**example, "status": "Paused"})
    assert codat_spec.validate_response("GET", path, 200, {**example, "status": None})  # not nullable
    assert codat_spec.validate_response("GET", path, 200, {**example, "surprise": 1})  # additionalProperties
    assert codat_spec.validate_response("GET", path, 200, {k: v for k, v in example.items() if k != "id"})
    assert codat_spec.validate_response("GET", path, 201, example)  # undocumented success status
    assert codat_spec.validate_response("DELETE", "/companies/" + example["id"], 204, {"id": 1})  # 204 has no body
    assert codat_spec.validate_response("GET", path, 404, {"statusCode": "404"})
    assert codat_spec.validate_response("GET", "/nowhere", 200, {})


@pytest.mark.parametrize("schema", ["Company", "Connection", "Companies", "Connections", "CompanyAccessToken"])
def test_the_specs_own_examples_pass_the_validator(codat_spec: CodatSpec, schema: str) -> None:
    examples = codat_spec.example_bodies(schema)

    assert examples
    assert {name: codat_spec.validate_schema(schema, body) for name, body in examples.items()} == {
        name: [] for name in examples
    }


def test_example_lookups_for_client_model_tests(codat_spec: CodatSpec) -> None:
    created = codat_spec.response_examples("POST", "/companies")
    connection = codat_spec.response_examples("GET", "/companies/{companyId}/connections/{connectionId}")

    assert set(created) == {"With no description", "With a description", "With a tag"}
    assert created["With a tag"]["tags"] == {"region": "us"}
    assert connection["Connection"]["status"] == "Linked"


def test_simulated_resources_carry_the_fields_codats_examples_show(sim: CodatSimulator, codat_spec: CodatSpec) -> None:
    company = sim.add_company("Technicalium", tags={"region": "us"})
    connection = sim.add_connection(company.id, "qhnd", status="Linked")

    company_example = codat_spec.response_examples("POST", "/companies")["With a tag"]
    connection_example = codat_spec.response_examples("POST", "/companies/{companyId}/connections")["Connection"]
    assert company_example.keys() <= sim.get_company(company.id).keys()
    assert connection_example.keys() <= sim.get_connection(company.id, connection.id).keys()


def test_every_simulated_operation_exists_in_the_spec(sim: CodatSimulator, codat_spec: CodatSpec) -> None:
    for operation in sim.operations:
        method, template = operation.split(" ")
        assert method.lower() in codat_spec.raw["paths"][template], operation


def test_a_configured_consumer_subscribes_to_every_event_type_of_the_spec(codat_spec: CodatSpec) -> None:
    assert set(CODAT_EVENT_TYPES) == set(codat_spec.raw["webhooks"])


def test_the_specs_webhook_consumer_examples_pass_the_validator(codat_spec: CodatSpec) -> None:
    listed = codat_spec.response_examples("GET", "/webhooks")
    created = codat_spec.response_examples("POST", "/webhooks", 201)

    assert listed
    assert created
    for example in listed.values():
        assert codat_spec.validate_response("GET", "/webhooks", 200, example) == []
    for example in created.values():
        assert codat_spec.validate_response("POST", "/webhooks", 201, example) == []
