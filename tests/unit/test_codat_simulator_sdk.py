"""The simulator's stand-in for Codat's Link and Connections SDKs: its modules, and its API, which takes only the
company access tokens Codat issued (refusing an unknown, expired or other company's token as Codat would), answers
the bank's page with CORS, goes through the hosted Link page's own step so Codat's webhooks are the same, and fails
on demand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from consent_dev.codat_simulator import CodatSimulator, serve
from consent_dev.codat_simulator.state import ACCESS_TOKEN_LIFETIME

pytestmark = pytest.mark.unit

PAGE = "http://127.0.0.1:3000"  # the bank's page (the demo), another origin than the simulator's
ERROR_KEYS = {"statusCode", "service", "error", "correlationId", "canBeRetried", "detailedErrorCode"}


@pytest.fixture
def sdk_sim() -> CodatSimulator:
    return CodatSimulator(sdk_origins=[PAGE])


def company_and_token(sim: CodatSimulator, http: httpx.Client, name: str = "Acme Bakery") -> tuple[str, str]:
    company = http.post("/companies", json={"name": name}).json()
    answer = http.get(f"/companies/{company['id']}/accessToken")
    assert answer.status_code == 200, answer.text
    assert answer.json()["expiresIn"] == 86400
    return company["id"], answer.json()["accessToken"]


def sdk(http: httpx.Client, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"Origin": PAGE, **({"Authorization": f"Bearer {token}"} if token is not None else {})}
    return http.request(method, f"/sdk/api/{path}", headers=headers, **kwargs)


def refused(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body.keys() >= ERROR_KEYS
    assert response.headers["access-control-allow-origin"] == PAGE  # the page can read why
    return body


def test_the_link_sdk_lists_the_enabled_integrations_with_a_token_codat_issued(sdk_sim: CodatSimulator) -> None:
    with sdk_sim.client() as http:
        company_id, token = company_and_token(sdk_sim, http)
        session = sdk(http, "GET", "session", token)
        integrations = sdk(http, "GET", f"companies/{company_id}/integrations", token)

    assert session.status_code == 200
    assert session.json()["companyId"] == company_id
    assert session.json()["companyName"] == "Acme Bakery"
    assert integrations.headers["access-control-allow-origin"] == PAGE
    keys = {item["key"] for item in integrations.json()["results"]}
    assert "qhnd" in keys
    assert keys == {i.key for i in sdk_sim.integrations.values() if i.enabled}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer ", "Bearer not-a-token-codat-issued", "Basic c2ltLWNvZGF0LWFwaS1rZXk="],
    ids=["none", "empty", "unknown", "the API key instead"],
)
def test_a_wrong_token_is_refused(sdk_sim: CodatSimulator, header: str | None) -> None:
    with sdk_sim.client() as http:
        company_id, _ = company_and_token(sdk_sim, http)
        headers = {"Origin": PAGE, **({"Authorization": header} if header is not None else {})}
        answer = http.get(f"/sdk/api/companies/{company_id}/integrations", headers=headers)
    assert refused(answer, 401)["error"] == "The access token is not valid."


def test_an_expired_token_is_refused_on_the_simulators_clock(sdk_sim: CodatSimulator) -> None:
    with sdk_sim.client() as http:
        company_id, token = company_and_token(sdk_sim, http)
        sdk_sim.clock.advance(ACCESS_TOKEN_LIFETIME - timedelta(seconds=1))
        assert sdk(http, "GET", f"companies/{company_id}", token).status_code == 200
        sdk_sim.clock.advance(timedelta(seconds=1))
        body = refused(sdk(http, "GET", f"companies/{company_id}", token), 401)
        assert "expired" in body["error"]
        # A new token works again.
        fresh = http.get(f"/companies/{company_id}/accessToken").json()["accessToken"]
        assert sdk(http, "GET", f"companies/{company_id}", fresh).status_code == 200


def test_another_companys_token_is_refused_and_changes_nothing(sdk_sim: CodatSimulator) -> None:
    with sdk_sim.client() as http:
        mine, _ = company_and_token(sdk_sim, http, "Mine")
        _, theirs = company_and_token(sdk_sim, http, "Theirs")
        for method, path, body in [
            ("GET", f"companies/{mine}/integrations", None),
            ("GET", f"companies/{mine}/connections", None),
            ("POST", f"companies/{mine}/connections", {"platformKey": "qhnd"}),
        ]:
            answer = sdk(http, method, path, theirs, json=body)
            assert refused(answer, 403)["error"] == "The access token was issued for another company."
    assert sdk_sim.companies[mine].connections == {}


def test_a_deleted_companys_tokens_are_refused(sdk_sim: CodatSimulator) -> None:
    with sdk_sim.client() as http:
        company_id, token = company_and_token(sdk_sim, http)
        assert http.delete(f"/companies/{company_id}").status_code == 204
        refused(sdk(http, "GET", "session", token), 401)
    assert token not in sdk_sim.state.access_tokens


def test_authorizing_in_the_link_sdk_sends_the_hosted_links_webhooks(sdk_sim: CodatSimulator) -> None:
    sdk_sim.initial_read_delay = 0
    with sdk_sim.client() as http:
        hosted_company, _ = company_and_token(sdk_sim, http, "Hosted")
        hosted = http.post(f"/companies/{hosted_company}/connections", json={"platformKey": "qhnd"}).json()
        link = httpx.URL(hosted["linkUrl"])
        sdk_sim.handle("POST", link.path, {"otp": link.params["otp"]}, {}, b"action=authorize")

        company_id, token = company_and_token(sdk_sim, http, "In page")
        created = sdk(http, "POST", f"companies/{company_id}/connections", token, json={"platformKey": "qhnd"})
        assert created.status_code == 201, created.text
        connection_id = created.json()["id"]
        authorized = sdk(http, "POST", f"companies/{company_id}/connections/{connection_id}/authorize", token)
        assert authorized.status_code == 200, authorized.text
        assert authorized.json()["status"] == "Linked"
        again = sdk(http, "POST", f"companies/{company_id}/connections/{connection_id}/authorize", token)
        assert refused(again, 409)

    def story(company: str) -> list[str]:
        return [e.event_type for e in sdk_sim.events if e.company_id == company and e.connection_id]

    assert (
        story(company_id)
        == story(hosted_company)
        == [
            "connection.created",
            "connection.connected",
            "read.completed.initial",
        ]
    )


def test_picking_an_integration_again_reuses_the_connection_not_yet_linked(sdk_sim: CodatSimulator) -> None:
    with sdk_sim.client() as http:
        company_id, token = company_and_token(sdk_sim, http)
        first = sdk(http, "POST", f"companies/{company_id}/connections", token, json={"platformKey": "qhnd"})
        second = sdk(http, "POST", f"companies/{company_id}/connections", token, json={"platformKey": "qhnd"})
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]
        refused(sdk(http, "POST", f"companies/{company_id}/connections", token, json={"platformKey": "vjms"}), 400)
        refused(sdk(http, "POST", f"companies/{company_id}/connections", token, json={"platformKey": "nope"}), 404)
        refused(sdk(http, "POST", f"companies/{company_id}/connections", token, json={}), 400)


def test_disconnecting_in_the_connections_sdk_unlinks_with_codats_webhook(sdk_sim: CodatSimulator) -> None:
    with sdk_sim.client() as http:
        company_id, token = company_and_token(sdk_sim, http)
        connection = sdk_sim.add_connection(company_id, "qhnd", status="Linked")
        path = f"companies/{company_id}/connections/{connection.id}"
        refused(sdk(http, "PATCH", path, token, json={"status": "Linked"}), 400)
        unlinked = sdk(http, "PATCH", path, token, json={"status": "Unlinked"})
        assert unlinked.status_code == 200, unlinked.text
        assert unlinked.json()["status"] == "Unlinked"
        refused(sdk(http, "PATCH", path, token, json={"status": "Unlinked"}), 400)  # only a Linked one
        listed = sdk(http, "GET", f"companies/{company_id}/connections", token).json()["results"]
    assert [(c["id"], c["status"]) for c in listed] == [(connection.id, "Unlinked")]
    assert [e.event_type for e in sdk_sim.events if e.connection_id == connection.id][-1] == "connection.disconnected"


def test_sdk_faults_fail_the_next_calls_on_demand_with_cors_and_are_cleared(sdk_sim: CodatSimulator) -> None:
    with sdk_sim.client() as http:
        company_id, token = company_and_token(sdk_sim, http)
        injected = http.post("/_simulator/sdk-faults", json={"status": 503, "times": 2})
        assert injected.status_code == 201, injected.text
        for _ in range(2):
            body = refused(sdk(http, "GET", f"companies/{company_id}/integrations", token), 503)
            assert body["statusCode"] == 503
        assert sdk(http, "GET", f"companies/{company_id}/integrations", token).status_code == 200
        # Codat's own API is not touched by an SDK fault.
        assert http.post("/_simulator/sdk-faults", json={"status": 500, "times": None}).status_code == 201
        assert http.get(f"/companies/{company_id}").status_code == 200
        refused(sdk(http, "GET", "session", token), 500)
        assert http.delete("/_simulator/sdk-faults").status_code == 204
        assert sdk(http, "GET", "session", token).status_code == 200
        for bad in ({"status": 200}, {"status": 503, "times": 0}, {"message": 5}):
            assert http.post("/_simulator/sdk-faults", json=bad).status_code == 400


def test_the_bank_page_may_call_the_sdk_api_and_another_origin_may_not(sdk_sim: CodatSimulator) -> None:
    with sdk_sim.client() as http:
        preflight = http.options(
            "/sdk/api/session",
            headers={
                "Origin": PAGE,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == PAGE
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert "PATCH" in preflight.headers["access-control-allow-methods"]
        stranger = http.options(
            "/sdk/api/session", headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "GET"}
        )
        assert "access-control-allow-origin" not in stranger.headers
        answer = http.get("/sdk/api/session", headers={"Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in answer.headers


def test_the_modules_are_served_as_javascript_over_http(sdk_sim: CodatSimulator) -> None:
    with serve(sdk_sim) as server:
        for name, export in [
            ("link.js", "export class CodatLink"),
            ("connections.js", "export class CodatConnections"),
        ]:
            module = httpx.get(f"{server.url}/sdk/{name}", headers={"Origin": PAGE}, timeout=5)
            assert module.status_code == 200
            assert module.headers["content-type"].startswith("text/javascript")
            assert module.headers["access-control-allow-origin"] == "*"
            assert export in module.text
            assert "https://" not in module.text.replace("https://link-sdk.codat.io", "").replace(
                "https://connections-sdk.codat.io", ""
            )  # nothing loaded from the internet
        assert httpx.get(f"{server.url}/sdk/missing.js", timeout=5).status_code == 404
