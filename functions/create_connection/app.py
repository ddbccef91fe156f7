"""The connection step: GET /integrations, POST /companies/{companyId}/connections, GET …/access-token and
POST …/sdk-sessions (Codat's Link SDK in the bank's page)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from consent.api.openapi import responses
from consent.api.params import CompanyId
from consent.api.resolver import create_resolver, json_response, scope, serve
from consent.domain.requests import AccessToken, CreateConnectionRequest, OpenSdkSessionRequest, SdkSessionOpened
from consent.domain.resources import Connection, SourceType
from consent.observability import logger, metrics, tracer
from consent.services import Services, default_services
from consent.usecases import connections, integrations
from consent.usecases.integrations import IntegrationList

app = create_resolver()


@app.get(
    "/integrations",
    operation_id="listIntegrations",
    description=(
        "The integrations the bank has enabled in Codat, optionally of one source type: what `POST "
        "/companies/{companyId}/connections` takes as `platformKey`."
    ),
    summary="Codat's enabled integrations, by source type",
    tags=["Connections"],
    responses=responses(200, IntegrationList, "The integrations", errors=(429, 502)),
)
def list_integrations(
    source_type: Annotated[SourceType | None, Query(alias="sourceType")] = None,
) -> Response[str]:
    request = scope(app)
    listed = integrations.list_integrations(request.services, request.customer_id, source_type)
    return json_response(200, listed.to_json())


@app.post(
    "/companies/<companyId>/connections",
    operation_id="createConnection",
    description=(
        "Codat's link for an integration: the customer opens `linkUrl` to authorize access. A not-Linked "
        "connection to the same platform is reused with a fresh link (200), which is also how a customer re-"
        "authorizes."
    ),
    summary="Codat's link for an integration: a new connection (201) or the reused one (200)",
    tags=["Connections"],
    responses=responses(
        201,
        Connection,
        "Created, with `linkUrl`",
        also={200: "The company's not-Linked connection to the platform, reused, with a fresh `linkUrl`"},
        errors=(404, 409, 413, 415, 429, 502, 504),
    ),
)
def create_connection(company_id: CompanyId, body: CreateConnectionRequest) -> Response[str]:
    request = scope(app)
    answer = connections.create_connection(request.services, request.customer_id, company_id, body)
    return json_response(201 if answer.created else 200, answer.connection.to_json())


@app.get(
    "/companies/<companyId>/access-token",
    operation_id="getAccessToken",
    description=(
        "Codat's company access token, for Codat's Link SDK in the bank's front end. Passed through, never "
        "stored or logged."
    ),
    summary="Codat's company access token for the Link SDK (never stored)",
    tags=["Connections"],
    responses=responses(200, AccessToken, "The token; `Cache-Control: no-store`", errors=(404, 429, 502, 504)),
)
def get_access_token(company_id: CompanyId) -> Response[str]:
    request = scope(app)
    token = connections.access_token(request.services, request.customer_id, company_id)
    return json_response(200, token.to_json(), {"Cache-Control": "no-store"})


@app.post(
    "/companies/<companyId>/sdk-sessions",
    operation_id="openSdkSession",
    description=(
        "Call before mounting one of Codat's components in the bank's page (Option 1 of Codat's consent journey): "
        "`link` before `CodatLink`, with the `consentVersion` the customer accepted; `connections` before "
        "`CodatConnections`. Answers Codat's company access token for the component (passed through, never stored "
        "or logged) and records the session: until `expiresAt` (at most an hour), a connection Codat reports made "
        "in Link is adopted with the customer as actor and that consent version, and a disconnect is recorded as "
        "her revocation. The component's browser callbacks are hints for the page only: status changes come from "
        "Codat's signed webhooks, as for hosted links."
    ),
    summary="Open Codat's Link or Connections SDK for the customer (token + session)",
    tags=["Connections"],
    responses=responses(
        201, SdkSessionOpened, "The session; `Cache-Control: no-store`", errors=(404, 409, 413, 415, 429, 502, 504)
    ),
)
def open_sdk_session(company_id: CompanyId, body: OpenSdkSessionRequest) -> Response[str]:
    request = scope(app)
    opened = connections.open_sdk_session(request.services, request.customer_id, company_id, body)
    return json_response(201, opened.to_json(), {"Cache-Control": "no-store"})


# log_event=False: the event holds the bearer token and personal data; POWERTOOLS_LOGGER_LOG_EVENT cannot override.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, services: Services | None = None) -> dict[str, Any]:
    return serve(app, event, context, services or default_services())
