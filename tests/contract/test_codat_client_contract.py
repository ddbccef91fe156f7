"""The product's Codat client sends only what Codat's spec documents, and reads what the spec promises."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.codat.models import CodatCompany, CodatConnection, WebhookConsumer, WebhookConsumers
from consent.usecases.webhooks import HANDLED_EVENT_TYPES
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_spec import CodatSpec, ResponseChecker

pytestmark = pytest.mark.contract

KEY = "contract-test-key"


@pytest.fixture
def checked(codat_spec: CodatSpec) -> tuple[CodatSimulator, CodatClient, ResponseChecker]:
    simulator = CodatSimulator(api_key=KEY, spec=codat_spec, validate=True)
    checker = ResponseChecker(codat_spec)
    client = CodatClient(
        base_url="https://api.codat.io",
        api_key=lambda: base64.b64encode(KEY.encode()).decode(),
        transport=simulator.transport(),
    )
    client._http.event_hooks["response"].append(checker)
    return simulator, client, checker


def test_every_request_of_the_client_validates_against_codats_spec(
    checked: tuple[CodatSimulator, CodatClient, ResponseChecker],
) -> None:
    simulator, client, checker = checked
    tags = {"consentCustomerRef": "alice", "consentRequestRef": "6b1f6d8e-6a51-4c55-9a55-3c6a3c1b8d6e"}

    company = client.create_company(
        name="Müller & Söhne (UK) Ltd.", description="Bakers since 1921", tags=tags, idempotency_key="k-1"
    )
    assert [c.id for c in client.find_companies_by_tags({"consentRequestRef": tags["consentRequestRef"]})] == [
        company.id
    ]
    assert client.get_company(company.id).id == company.id
    connection = client.create_connection(company.id, platform_key="qhnd", idempotency_key="k-2")
    assert client.get_connection(company.id, connection.id).status == "PendingAuth"
    simulator.set_connection_status(company.id, connection.id, "Linked")
    assert [c.id for c in client.list_connections(company.id)] == [connection.id]
    assert client.unlink_connection(company.id, connection.id).status == "Unlinked"
    assert client.list_integrations("Banking")
    assert client.list_integrations()
    assert client.get_access_token(company.id).expires_in > 0
    client.delete_connection(company.id, connection.id)
    client.delete_company(company.id)

    assert simulator.contract_violations == []
    assert checker.violations == []
    assert len(simulator.requests) == 12
    assert all(request.status is not None and request.status < 400 for request in simulator.requests)


def test_the_clients_webhook_consumer_calls_validate_against_codats_spec(
    checked: tuple[CodatSimulator, CodatClient, ResponseChecker],
) -> None:
    simulator, client, checker = checked
    url = "https://a1b2c3d4e5.execute-api.eu-west-2.amazonaws.com/webhooks/codat"

    created = client.create_webhook_consumer(url=url, event_types=sorted(HANDLED_EVENT_TYPES), idempotency_key="k-1")
    listed = client.list_webhook_consumers()
    client.delete_webhook_consumer(created.id)

    assert listed == [created]
    assert (created.url, set(created.event_types), created.disabled) == (url, HANDLED_EVENT_TYPES, False)
    assert client.list_webhook_consumers() == []
    assert simulator.contract_violations == []
    assert checker.violations == []
    assert [r.operation for r in simulator.requests] == [
        "POST /webhooks",
        "GET /webhooks",
        "DELETE /webhooks/{webhookId}",
        "GET /webhooks",
    ]


def test_every_event_type_the_receiver_handles_is_one_codat_sends(codat_spec: CodatSpec) -> None:
    # What the consumer subscribes to must be Codat's names, or Codat would send nothing for it
    assert set(codat_spec.raw["webhooks"]) >= HANDLED_EVENT_TYPES


def test_the_specs_webhook_consumer_examples_parse_into_the_clients_models(codat_spec: CodatSpec) -> None:
    listed = codat_spec.response_examples("GET", "/webhooks")
    created = codat_spec.response_examples("POST", "/webhooks", 201)

    assert [c.disabled for example in listed.values() for c in WebhookConsumers.model_validate(example).results] == [
        False,
        True,
    ]
    assert all(WebhookConsumer.model_validate(example).event_types for example in created.values())


@pytest.mark.parametrize(
    ("method", "path", "model"),
    [
        ("POST", "/companies", CodatCompany),
        ("GET", "/companies/{companyId}", CodatCompany),
        ("POST", "/companies/{companyId}/connections", CodatConnection),
        ("GET", "/companies/{companyId}/connections/{connectionId}", CodatConnection),
    ],
)
def test_the_specs_own_examples_parse_into_the_clients_models(
    codat_spec: CodatSpec, method: str, path: str, model: Any
) -> None:
    examples = codat_spec.response_examples(method, path)
    assert examples, f"the spec has no example for {method} {path}"
    for name, example in examples.items():
        parsed = model.model_validate(example)
        assert parsed, name


def test_every_company_and_connection_example_in_the_spec_parses(codat_spec: CodatSpec) -> None:
    companies = codat_spec.example_bodies("Company")
    connections = codat_spec.example_bodies("Connection")
    assert companies
    assert connections
    for example in companies.values():
        CodatCompany.model_validate(example)
    for example in connections.values():
        CodatConnection.model_validate(example)
