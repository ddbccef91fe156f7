"""Taking consent back: DELETE /companies/{companyId}/connections/{connectionId}, DELETE /companies/{companyId}."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from consent.api.openapi import responses
from consent.api.params import CompanyId, ConnectionId
from consent.api.resolver import create_resolver, json_response, scope, serve
from consent.domain.resources import Connection
from consent.observability import logger, metrics, tracer
from consent.services import Services, default_services
from consent.usecases import revocation

app = create_resolver()


@app.delete(
    "/companies/<companyId>/connections/<connectionId>",
    operation_id="revokeConnection",
    description=(
        "The customer withdraws her consent: the connection is unlinked in Codat (deleted there if it was "
        "never authorized) and the ledger records it. Idempotent; never rate limited."
    ),
    summary="Revoke a connection: unlink it in Codat (idempotent)",
    tags=["Connections"],
    responses=responses(200, Connection, "The connection, Unlinked (or as it was)", errors=(404, 409, 502, 504)),
)
def revoke_connection(company_id: CompanyId, connection_id: ConnectionId) -> Response[str]:
    request = scope(app)
    connection = revocation.revoke_connection(request.services, request.customer_id, company_id, connection_id)
    return json_response(200, connection.to_json())


@app.delete(
    "/companies/<companyId>",
    operation_id="eraseCompany",
    description=(
        "Erases the company in Codat and here: everything but one tombstone ledger entry. Idempotent; never "
        "rate limited."
    ),
    summary="Erase the company, in Codat and here",
    tags=["Companies"],
    responses=responses(204, None, "Erased", errors=(404, 502, 504)),
)
def erase_company(company_id: CompanyId) -> Response[None]:
    request = scope(app)
    revocation.erase_company(request.services, request.customer_id, company_id)
    return Response(status_code=204)


# log_event=False: the event holds the bearer token and personal data; POWERTOOLS_LOGGER_LOG_EVENT cannot override.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, services: Services | None = None) -> dict[str, Any]:
    return serve(app, event, context, services or default_services())
