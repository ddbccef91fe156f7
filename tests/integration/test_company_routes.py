"""The company step over the API: POST /companies, POST …/journeys, GET /companies, GET /companies/{id}."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from types import SimpleNamespace
from typing import Any

import pytest

from consent.store import Change
from consent_dev.local_api import LocalApi

pytestmark = pytest.mark.integration

ALICE = "customer-alice"
BOB = "customer-bob"


def create(api: LocalApi, customer: str = ALICE, **body: Any) -> Any:
    payload = {"name": "Acme Bakery Ltd", "journey": "onboarding", **body}
    return api.post("/companies", customer=customer, json=payload)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, response.text
    assert response.header("content-type") == "application/problem+json"
    body = response.body
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert body["detail"]
    assert body["type"].endswith(code)
    assert body["requestId"] == response.header("x-request-id")
    return body


def test_creating_a_company_creates_it_in_codat_and_returns_it(api: LocalApi, simulator: Any, settings: Any) -> None:
    # Given a customer, When they create a company for the onboarding journey
    response = create(api, description="Bread and cakes", externalRef="crm-123")

    # Then they get it back with the journey pending, and Codat has the company with our tags
    assert response.status == 201, response.text
    assert response.header("x-request-id")
    company = response.body
    assert company["name"] == "Acme Bakery Ltd"
    assert company["description"] == "Bread and cakes"
    assert company["externalRef"] == "crm-123"
    assert company["connections"] == []
    assert company["createdAt"] == company["updatedAt"]
    [journey] = company["journeys"]
    assert journey["journey"] == "onboarding"
    assert journey["status"] == "pending"
    assert [(r["sourceType"], r["required"], r["satisfied"]) for r in journey["requirements"]] == [
        ("banking", True, False),
        ("accounting", False, False),
    ]
    codat_company = simulator.get_company(company["companyId"])
    assert codat_company["name"] == "Acme Bakery Ltd"
    # ... tagged with a keyed reference to the customer, never her id (a JWT claim, often an e-mail address)
    expected = hmac.new(settings.customer_ref_key.encode(), ALICE.encode(), hashlib.sha256).hexdigest()
    assert codat_company["tags"]["consentCustomerRef"] == expected
    assert "consentRequestRef" in codat_company["tags"]
    assert ALICE not in json.dumps(codat_company)


def test_the_company_reads_back_from_dynamodb_without_calling_codat(api: LocalApi, simulator: Any) -> None:
    created = create(api).body
    calls_before = len(simulator.requests)

    fetched = api.get(f"/companies/{created['companyId']}", customer=ALICE)

    assert fetched.status == 200
    assert fetched.body == created
    assert len(simulator.requests) == calls_before


def test_a_customer_never_sees_another_customers_company(api: LocalApi) -> None:
    company_id = create(api, customer=ALICE).body["companyId"]

    assert_problem(api.get(f"/companies/{company_id}", customer=BOB), 404, "not_found")
    assert_problem(
        api.post(f"/companies/{company_id}/journeys", customer=BOB, json={"journey": "loan_application"}),
        404,
        "not_found",
    )
    assert api.get("/companies", customer=BOB).body == {"items": []}


def test_unknown_ids_answer_404_like_foreign_ones(api: LocalApi) -> None:
    unknown = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    foreign = assert_problem(api.get(f"/companies/{unknown}", customer=ALICE), 404, "not_found")
    assert foreign["detail"] == "No such company."
    assert_problem(
        api.post(f"/companies/{unknown}/journeys", customer=ALICE, json={"journey": "onboarding"}), 404, "not_found"
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/companies", {"name": "X", "journey": "onboarding"}),
        ("POST", "/companies/abc/journeys", {"journey": "onboarding"}),
        ("GET", "/companies", None),
        ("GET", "/companies/abc", None),
    ],
)
def test_every_route_refuses_a_request_without_identity(
    api: LocalApi, simulator: Any, method: str, path: str, body: Any
) -> None:
    # No token (the authorizer refuses it), or one that names no usable customer (the function refuses it)
    for customer in (None, "", "not a customer id"):
        assert_problem(api.request(method, path, customer=customer, json=body), 401, "unauthenticated")
    assert simulator.requests == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"journey": "onboarding"}, "name"),
        ({"name": "", "journey": "onboarding"}, "name"),
        ({"name": "   ", "journey": "onboarding"}, "name"),
        ({"name": "x" * 101, "journey": "onboarding"}, "name"),
        ({"name": 42, "journey": "onboarding"}, "name"),
        ({"name": "Acme"}, "journey"),
        ({"name": "Acme", "journey": "Not A Journey!"}, "journey"),
        ({"name": "Acme", "journey": "onboarding", "description": "d" * 501}, "description"),
        ({"name": "Acme", "journey": "onboarding", "externalRef": ""}, "externalRef"),
        ({"name": "Acme", "journey": "onboarding", "colour": "red"}, "colour"),
    ],
)
def test_an_invalid_company_body_is_422_with_the_field_named(
    api: LocalApi, simulator: Any, table_items: Any, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(api.post("/companies", customer=ALICE, json=body), 422, "validation_failed")
    assert field in [error["field"] for error in problem["errors"]]
    assert all(error["message"] for error in problem["errors"])
    assert simulator.requests == []
    assert table_items() == []


def test_a_body_that_is_not_json_is_422(api: LocalApi) -> None:
    response = api.post("/companies", customer=ALICE, body="{not json", headers={"content-type": "application/json"})
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/merge-patch+json"],
)
def test_a_body_of_another_media_type_is_415_before_anything_is_created(
    api: LocalApi, simulator: Any, table_items: Any, content_type: str
) -> None:
    # Even a body that would read as a valid company (Powertools would parse a form, or fail on the others)
    body = '{"name": "Acme Bakery Ltd", "journey": "onboarding"}'
    response = api.post("/companies", customer=ALICE, body=body, headers={"content-type": content_type})
    assert_problem(response, 415, "unsupported_media_type")
    assert simulator.requests == []
    assert table_items() == []


def test_a_body_that_is_not_utf_8_is_422_not_a_server_error(api: LocalApi, simulator: Any) -> None:
    # Bytes that are not UTF-8 reach the function base64-encoded, as API Gateway sends them
    response = api.post(
        "/companies", customer=ALICE, body=b"\xf2z1\xf2\x01", headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"] == [{"field": "body", "message": "The body is not valid JSON."}]
    assert simulator.requests == []


def test_an_unknown_journey_is_422_naming_the_offered_ones(api: LocalApi, simulator: Any) -> None:
    problem = assert_problem(create(api, journey="mortgage"), 422, "validation_failed")
    assert problem["errors"] == [
        {"field": "journey", "message": "Unknown journey. Offered: credit_check, loan_application, onboarding."}
    ]
    assert simulator.requests == []


@pytest.mark.parametrize("route", ["/companies", "/companies/abc/journeys"])
def test_a_body_over_64_kib_is_413(api: LocalApi, simulator: Any, route: str) -> None:
    body = '{"name": "' + "a" * (64 * 1024) + '", "journey": "onboarding"}'
    response = api.post(route, customer=ALICE, body=body, headers={"content-type": "application/json"})
    assert_problem(response, 413, "payload_too_large")
    assert simulator.requests == []


def test_starting_another_journey_counts_toward_it_and_is_idempotent(api: LocalApi, table_items: Any) -> None:
    company_id = create(api).body["companyId"]

    started = api.post(f"/companies/{company_id}/journeys", customer=ALICE, json={"journey": "loan_application"})
    again = api.post(f"/companies/{company_id}/journeys", customer=ALICE, json={"journey": "loan_application"})

    assert started.status == 200, started.text
    assert [(j["journey"], j["status"]) for j in started.body["journeys"]] == [
        ("onboarding", "pending"),
        ("loan_application", "pending"),
    ]
    assert again.status == 200
    assert again.body["journeys"] == started.body["journeys"]
    ledger_types = sorted(i["type"]["S"] for i in table_items() if i["kind"]["S"] == "ledger")
    assert ledger_types == ["company.created", "journey.started", "journey.started"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "journey"), ({"journey": "onboarding", "extra": 1}, "extra"), ({"journey": 7}, "journey")],
)
def test_an_invalid_journey_body_is_422(api: LocalApi, body: dict[str, Any], field: str) -> None:
    company_id = create(api).body["companyId"]
    problem = assert_problem(
        api.post(f"/companies/{company_id}/journeys", customer=ALICE, json=body), 422, "validation_failed"
    )
    assert field in [error["field"] for error in problem["errors"]]


def test_starting_an_unknown_journey_is_422(api: LocalApi) -> None:
    company_id = create(api).body["companyId"]
    response = api.post(f"/companies/{company_id}/journeys", customer=ALICE, json={"journey": "mortgage"})
    assert_problem(response, 422, "validation_failed")


def test_companies_list_newest_first_with_a_cursor(api: LocalApi) -> None:
    ids = [create(api, name=f"Company {n}").body["companyId"] for n in range(5)]
    create(api, customer=BOB, name="Not Alice's")

    first = api.get("/companies", customer=ALICE, query={"limit": "2"})
    assert first.status == 200, first.text
    second = api.get("/companies", customer=ALICE, query={"limit": "2", "cursor": first.body["nextCursor"]})
    third = api.get("/companies", customer=ALICE, query={"limit": "2", "cursor": second.body["nextCursor"]})

    seen = [c["companyId"] for page in (first, second, third) for c in page.body["items"]]
    assert seen == list(reversed(ids))
    assert "nextCursor" not in third.body
    assert all(item["journeys"] for item in first.body["items"])


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"cursor": "garbage!"}])
def test_a_bad_list_query_is_422(api: LocalApi, query: dict[str, str]) -> None:
    assert_problem(api.get("/companies", customer=ALICE, query=query), 422, "validation_failed")


def test_another_customers_cursor_only_positions_within_the_callers_own_companies(api: LocalApi) -> None:
    # Given Alice's two companies, then three of Bob's
    alices = [create(api, name=f"Alice {n}").body["companyId"] for n in range(2)]
    for n in range(3):
        create(api, customer=BOB, name=f"Bob {n}")
    bobs_cursor = api.get("/companies", customer=BOB, query={"limit": "1"}).body["nextCursor"]

    # When Alice lists from Bob's cursor
    response = api.get("/companies", customer=ALICE, query={"cursor": bobs_cursor})

    # Then it is a position in her list (her companies created before it), never Bob's companies
    assert response.status == 200, response.text
    assert [c["companyId"] for c in response.body["items"]] == list(reversed(alices))


def _read_company(api: LocalApi, company_id: str) -> Any:
    return api.get(f"/companies/{company_id}", customer=ALICE)


def _listed_company(api: LocalApi, company_id: str) -> Any:
    listing = api.get("/companies", customer=ALICE)
    assert listing.status == 200, listing.text
    [listed] = [c for c in listing.body["items"] if c["companyId"] == company_id]
    return SimpleNamespace(status=listing.status, text=listing.text, body=listed)


@pytest.mark.parametrize("read", [_read_company, _listed_company], ids=["company read", "companies list"])
def test_a_company_read_embeds_one_page_of_connections_and_says_where_the_rest_are(
    api: LocalApi, services: Any, new_company: Any, authorize: Any, read: Any
) -> None:
    # Given Alice's company with 150 connections
    company_id = new_company()["companyId"]
    first = api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
    authorize(company_id, first.body["connectionId"])
    view = services.store.get_company_by_id(company_id)
    [template] = view.connections
    more = [template.model_copy(update={"connection_id": f"conn-{n:03d}", "version": 1}) for n in range(149)]
    for start in range(0, len(more), 50):
        services.store.commit(Change(added=more[start : start + 50]))
    everyone = {first.body["connectionId"], *(c.connection_id for c in more)}

    # When she reads the company, or lists her companies
    company = read(api, company_id)

    # Then it embeds a page of them, and its connections route has the rest from the cursor it gives
    assert company.status == 200, company.text
    embedded = {c["connectionId"] for c in company.body["connections"]}
    assert len(embedded) == 100
    rest = api.get(
        f"/companies/{company_id}/connections",
        customer=ALICE,
        query={"cursor": company.body["connectionsNextCursor"]},
    )
    assert rest.status == 200, rest.text
    remaining = {c["connectionId"] for c in rest.body["items"]}
    assert "nextCursor" not in rest.body
    assert embedded | remaining == everyone
    assert not embedded & remaining


def test_a_company_with_few_connections_has_no_connections_cursor(api: LocalApi, new_company: Any) -> None:
    company_id = new_company()["companyId"]
    api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})

    company = api.get(f"/companies/{company_id}", customer=ALICE).body

    assert len(company["connections"]) == 1
    assert "connectionsNextCursor" not in company


def _opaque(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "cursor"),
    [
        # The opaque cursors of earlier versions, and keys in them that DynamoDB itself would refuse
        ("/companies", _opaque({"PK": "", "SK": "", "GSI1PK": "CUSTOMER#customer-alice", "GSI1SK": ""})),
        ("/companies/{companyId}/connections", _opaque({"PK": "COMPANY#{companyId}", "SK": "CONNECTION#"})),
        ("/companies/{companyId}/events", _opaque({"PK": "COMPANY#{companyId}", "SK": "LEDGER#"})),
        # One listing's position given to another, or a table key
        ("/companies", "conn-001"),
        ("/companies/{companyId}/events", "2026-01-01T00:00:00.000000Z_{companyId}"),
        ("/companies/{companyId}/connections", "CONNECTION#x"),
        ("/companies/{companyId}/connections", "x\n"),
    ],
)
def test_a_cursor_that_is_not_a_position_is_422_never_a_store_error(
    api: LocalApi, new_company: Any, path: str, cursor: str
) -> None:
    company_id = new_company()["companyId"]

    response = api.get(
        path.replace("{companyId}", company_id),
        customer=ALICE,
        query={"cursor": cursor.replace("{companyId}", company_id)},
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    ("path", "cursor", "lists"),
    [
        # Newest first: a position after every company lists them all
        ("/companies", "9999-99-99T99:99:99.999999Z_zzzz", "all"),
        ("/companies", "0000-00-00T00:00:00.000000Z_0", "none"),
        ("/companies/{companyId}/connections", "0", "all"),
        ("/companies/{companyId}/connections", "zzzz", "none"),
        ("/companies/{companyId}/events", "0000-00-00T00:00:00.000000Z_000_0", "all"),
        ("/companies/{companyId}/events", "9999-99-99T99:99:99.999999Z_999_zzzz", "none"),
    ],
)
def test_any_well_formed_position_is_a_page(
    api: LocalApi, new_company: Any, path: str, cursor: str, lists: str
) -> None:
    # Given a company with a connection and ledger entries
    company_id = new_company()["companyId"]
    api.post(f"/companies/{company_id}/connections", customer=ALICE, json={"platformKey": "qhnd"})
    route = path.replace("{companyId}", company_id)

    response = api.get(route, customer=ALICE, query={"cursor": cursor})

    assert response.status == 200, response.text
    everything = api.get(route, customer=ALICE).body["items"]
    assert everything
    assert response.body["items"] == (everything if lists == "all" else [])


def test_problem_types_are_under_the_deployments_own_base_uri(settings: Any, store: Any, codat: Any) -> None:
    from consent.services import Services  # noqa: PLC0415

    bank = settings.model_copy(update={"problem_type_base_uri": "https://developer.example-bank.com/errors/"})
    api = LocalApi(Services(bank, store=store, codat=codat))

    response = api.get("/companies/00000000-0000-0000-0000-000000000000", customer=ALICE)

    assert response.body["type"] == "https://developer.example-bank.com/errors/not_found"
