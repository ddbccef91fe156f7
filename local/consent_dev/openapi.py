"""The API's OpenAPI 3.1 document, generated from the code: each function's resolver documents its own
routes (from their pydantic models), merged over the routes template.yaml declares, with the webhook."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from consent.api.openapi import ERROR_CODES, OPERATION_CODES
from consent.api.problems import PROBLEM_JSON, PROBLEM_TYPE_BASE
from consent.domain.journeys import load_catalog
from consent.domain.resources import LedgerEntryType, Resource
from consent_dev.lambda_runtime import load_module
from consent_dev.template import functions

TITLE = "Consent journey API"
VERSION = "1.0.0"
DESCRIPTION = (
    "The consent journey backend for banks on Codat. Every route but the webhook needs the customer's JWT "
    "(`Authorization: Bearer …`; locally, a token of `make dev`'s issuer: `POST /dev/token`). Errors are RFC 9457 "
    "problem details with a stable `code`."
)
_SECURITY_SCHEME = {
    "customerJwt": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The bank's identity provider's token; the customer is its `sub` claim.",
    },
    # The webhook's own scheme: no JWT there, Codat signs every delivery (Standard Webhooks).
    "codatWebhookSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": (
            "Codat's Standard Webhooks signature: space-separated `v1,<base64 HMAC-SHA256>` entries over "
            "`<webhook-id>.<webhook-timestamp>.<raw body>` with the endpoint's secret (Svix's `svix-*` header "
            "names too). Missing, wrong or stale (±5 minutes) → 401 `invalid_signature`."
        ),
    },
}
_WEBHOOK_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": True,
        "schema": {"type": "string", "maxLength": limit},
        "description": text,
    }
    for name, limit, text in (
        ("webhook-id", 256, "The message id: the same on every retry (idempotency key)."),
        ("webhook-timestamp", 12, "Unix seconds; accepted within ±5 minutes."),
        ("webhook-signature", 4096, "Space-separated `v1,<base64 HMAC-SHA256>` entries (Svix's `svix-*` names too)."),
    )
]


def build_openapi(journeys: Iterable[str] | None = None) -> dict[str, Any]:
    """The document; `journeys` are the journey names the deployment declares (default: the packaged
    journeys.toml's, which is what template.yaml deploys)."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": _SECURITY_SCHEME},
        "security": [{"customerJwt": []}],
    }
    for function in functions():
        if not function.routes:
            continue
        module_name = function.handler.rsplit(".", 1)[0]
        app = getattr(load_module(function.code_uri, module_name), "app", None)
        if not isinstance(app, APIGatewayHttpResolver):
            continue
        generated = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION, openapi_version="3.1.0"))
        for path, operations in generated.get("paths", {}).items():
            document["paths"].setdefault(path, {}).update(operations)
        document["components"]["schemas"].update(generated.get("components", {}).get("schemas", {}))
    document["paths"]["/webhooks/codat"] = {"post": _webhook_operation(document)}
    _drop_powertools_validation_schemas(document)
    _offer_journeys(document, sorted(journeys) if journeys is not None else load_catalog().names)
    _name_problem_codes(document)
    _drop_property_titles(document)
    _require_what_is_always_sent(document)
    _show_examples(document)
    document["components"]["schemas"]["LedgerEntry"]["properties"]["type"]["enum"] = [t.value for t in LedgerEntryType]
    document["servers"] = SERVERS
    return document


SERVERS = [
    {
        "url": "https://{apiId}.execute-api.{region}.amazonaws.com",
        "description": "A deployed stack (its `ApiUrl` output)",
        "variables": {"apiId": {"default": "abcdef1234"}, "region": {"default": "eu-west-2"}},
    },
    {"url": "http://127.0.0.1:3000", "description": "`make dev`"},
]


def _name_problem_codes(document: dict[str, Any]) -> None:
    """Each problem answer says which `code`s it can carry (a closed list) and shows one."""
    problem = {"$ref": "#/components/schemas/Problem"}
    for operations in document["paths"].values():
        for operation in operations.values():
            own = OPERATION_CODES.get(operation.get("operationId", ""), {})
            for status, response in operation.get("responses", {}).items():
                if PROBLEM_JSON not in response.get("content", {}):
                    continue
                codes = own.get(int(status), ERROR_CODES[int(status)])
                if int(status) == 401 and int(status) not in own:
                    codes = ("unauthenticated",)  # every route behind the JWT authorizer (the webhook says its own)
                example = {
                    "type": f"{PROBLEM_TYPE_BASE}{codes[0]}",
                    "title": HTTPStatus(int(status)).phrase,
                    "status": int(status),
                    "detail": response.get("description", ""),
                    "code": codes[0],
                    "requestId": "4f6c2b1e-8d3a-4c57-9f0e-2a7b9c1d5e63",
                }
                response["content"][PROBLEM_JSON] = {
                    "schema": {
                        "allOf": [
                            problem,
                            # Only the code is narrowed: generators cannot merge `status: int` with a constant.
                            {"type": "object", "properties": {"code": {"enum": list(codes)}}},
                        ]
                    },
                    "example": example,
                }
                response["description"] = f"{response.get('description', '')} (`code`: {', '.join(codes)})"


def examples() -> dict[str, dict[str, Any]]:
    """An example of each body and answer, built from the models themselves (so each is what the API sends)."""
    from consent.domain.requests import (  # noqa: PLC0415
        AccessToken,
        CompanyList,
        ConnectionList,
        CreateCompanyRequest,
        CreateConnectionRequest,
        LedgerPage,
        OpenSdkSessionRequest,
        SdkSessionOpened,
        StartJourneyRequest,
    )
    from consent.domain.resources import (  # noqa: PLC0415
        Company,
        Connection,
        ConnectionStatus,
        JourneyProgress,
        JourneyStatus,
        LedgerEntry,
        Requirement,
        SdkComponent,
        SourceType,
    )
    from consent.usecases.catalog import Journey, JourneyList  # noqa: PLC0415
    from consent.usecases.integrations import Integration, IntegrationList  # noqa: PLC0415

    at = datetime(2026, 11, 2, 9, 30, 15, tzinfo=UTC)
    company_id, connection_id = "8a210b68-6988-11ed-a1eb-0242ac120002", "51baa045-4836-4317-a42e-3542e991e581"
    connection = Connection(
        connection_id=connection_id,
        platform_key="qhnd",
        platform_name="Lloyds Bank",
        source_type=SourceType.BANKING,
        status=ConnectionStatus.LINKED,
        created_at=at,
        linked_at=at.replace(minute=32),
        last_sync_at=at.replace(minute=35),
    )
    company = Company(
        company_id=company_id,
        name="Acme Bakery Ltd",
        description="Family bakery, 12 staff",
        external_ref="CRM-000123",
        created_at=at,
        updated_at=at.replace(minute=35),
        journeys=[
            JourneyProgress(
                journey="onboarding",
                status=JourneyStatus.COMPLETE,
                started_at=at,
                completed_at=at.replace(minute=35),
                requirements=[
                    Requirement(
                        source_type=SourceType.BANKING, required=True, satisfied=True, connection_ids=[connection_id]
                    ),
                    Requirement(source_type=SourceType.ACCOUNTING, required=False, satisfied=False),
                ],
            )
        ],
        connections=[connection],
    )
    pending = connection.model_copy(
        update={
            "status": ConnectionStatus.PENDING_AUTH,
            "linked_at": None,
            "last_sync_at": None,
            "link_url": f"https://link.codat.io/company/{company_id}",
        }
    )
    entry = LedgerEntry(
        entry_id="webhook:msg_2Zx1Linked:51baa045",
        at=at.replace(minute=32),
        type="connection.linked",
        actor="codat",
        connection_id=connection_id,
        platform_key="qhnd",
        source_type=SourceType.BANKING,
    )
    journey = Journey(
        name="onboarding",
        title="Business onboarding",
        description="Open a business account: connect your bank, and your accounting software if you wish.",
        required=[SourceType.BANKING],
        optional=[SourceType.ACCOUNTING],
    )
    integration = Integration(
        platform_key="qhnd",
        name="Lloyds Bank",
        source_type=SourceType.BANKING,
        logo_url="https://static.codat.io/x.png",
    )
    models: dict[str, Any] = {
        "CreateCompanyRequest": CreateCompanyRequest.model_validate(
            {
                "name": "Acme Bakery Ltd",
                "journey": "onboarding",
                "description": "Family bakery, 12 staff",
                "externalRef": "CRM-000123",
            }
        ),
        "StartJourneyRequest": StartJourneyRequest.model_validate({"journey": "loan_application"}),
        "CreateConnectionRequest": CreateConnectionRequest.model_validate(
            {"platformKey": "qhnd", "consentVersion": "2026-10"}
        ),
        "Company": company,
        "CompanyList": CompanyList(items=[company]),
        "Connection": pending,
        "ConnectionList": ConnectionList(items=[connection]),
        "LedgerEntry": entry,
        "LedgerPage": LedgerPage(items=[entry]),
        "AccessToken": AccessToken(access_token="eyJhbGciOiJSUzI1NiIs…", expires_in=3600),  # noqa: S106 - a fake
        "OpenSdkSessionRequest": OpenSdkSessionRequest.model_validate(
            {"component": "link", "consentVersion": "2026-10"}
        ),
        "SdkSessionOpened": SdkSessionOpened(
            component=SdkComponent.LINK,
            access_token="eyJhbGciOiJSUzI1NiIs…",  # noqa: S106 - a fake
            expires_in=86400,
            expires_at=at.replace(hour=10),
        ),
        "Integration": integration,
        "IntegrationList": IntegrationList(items=[integration]),
        "Journey": journey,
        "JourneyList": JourneyList(items=[journey]),
    }
    return {name: json.loads(model.model_dump_json(by_alias=True, exclude_none=True)) for name, model in models.items()}


def _show_examples(document: dict[str, Any]) -> None:
    for name, example in examples().items():
        document["components"]["schemas"][name]["examples"] = [example]


def _require_what_is_always_sent(document: dict[str, Any]) -> None:
    """An answer's field with a default that is not None (a list) is always in the JSON (only None is left out):
    required, so that generated types do not make a client test for its absence."""
    schemas = document["components"]["schemas"]
    pending: list[type[Resource]] = [Resource]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        schema = schemas.get(model.__name__)
        if schema is None or model.__name__.endswith("Request"):
            continue
        always = [
            field.alias or name
            for name, field in model.model_fields.items()
            if not field.is_required() and (field.default_factory is not None or field.default is not None)
        ]
        schema["required"] = [*schema.get("required", []), *(n for n in always if n not in schema.get("required", []))]


def _drop_property_titles(document: dict[str, Any]) -> None:
    """pydantic titles each property after its Python name (`Companyid`): generators would name types after them."""
    for schema in document["components"]["schemas"].values():
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)


def _offer_journeys(document: dict[str, Any], names: list[str]) -> None:
    """A journey the deployment does not declare is a 422: the document says which it declares (the request
    models take any well-formed name, because the journeys are configuration, not code)."""
    schemas = document["components"]["schemas"]
    for model in ("CreateCompanyRequest", "StartJourneyRequest"):
        journey = schemas[model]["properties"]["journey"]
        journey["enum"] = names
        journey["description"] = "The journey to start: one of those this deployment declares (`journeys.toml`)."


def _webhook_operation(document: dict[str, Any]) -> dict[str, Any]:
    problem = {"$ref": "#/components/schemas/Problem"}
    return {
        "tags": ["Webhooks"],
        "summary": "Codat's webhooks (Standard Webhooks signature; no JWT)",
        "operationId": "receiveCodatWebhook",
        "description": (
            "Codat's signed webhooks: verified, applied exactly once whatever the order, and acknowledged with 204 "
            "(an event that cannot be applied is parked, never retried). Register this URL with `make codat-webhooks`."
        ),
        "security": [{"codatWebhookSignature": []}],
        "parameters": _WEBHOOK_HEADERS,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["id", "eventType", "generatedDate", "payload"],
                        # The receiver's own limits (consent.webhooks.codat_events); the body is at most 256 KiB.
                        "properties": {
                            "id": {"type": "string", "maxLength": 256},
                            "eventType": {"type": "string", "maxLength": 200},
                            "generatedDate": {"type": "string", "format": "date-time", "maxLength": 64},
                            "payload": {"type": "object"},
                        },
                    }
                }
            },
        },
        "responses": {
            "204": {"description": "Applied, recorded as a duplicate, or parked (never retried)"},
            **{
                str(status): {"description": text, "content": {PROBLEM_JSON: {"schema": problem}}}
                for status, text in (
                    (400, "Not a Codat event"),
                    (401, "Missing, wrong or stale signature"),
                    (413, "Body too large"),
                    (503, "Not recorded: Codat retries"),
                )
            },
        },
    }


def _drop_powertools_validation_schemas(document: dict[str, Any]) -> None:
    """Our 422 is a problem+json document; Powertools' own validation error shapes are never sent, nor is a
    204's body."""
    for operations in document["paths"].values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            for status, response in list(responses.items()):
                content = response.get("content", {})
                if "application/json" in content and status == "422":
                    responses[status] = {
                        "description": response.get("description", "Validation failed"),
                        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    }
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        document["components"]["schemas"].pop(name, None)
    # Powertools gives a route's 204 the body its return annotation names (`Response[None]`: a JSON null), but a
    # 204 has no content at all (RFC 9110 §15.3.5).
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).get("204", {}).pop("content", None)
