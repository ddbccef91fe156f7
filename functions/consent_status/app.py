"""Consent status, served from DynamoDB only: companies, their connections and the consent ledger."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from consent.api.openapi import responses
from consent.api.params import (
    CompaniesCursor,
    CompanyId,
    ConnectionsCursor,
    EventsCursor,
    ExpiringBefore,
    PageLimit,
    moment,
)
from consent.api.resolver import create_resolver, json_response, scope, serve
from consent.domain.requests import MAX_PAGE_LIMIT, CompanyList, ConnectionList, LedgerPage
from consent.domain.resources import Company
from consent.observability import logger, metrics, tracer
from consent.services import Services, default_services
from consent.usecases import catalog, companies, connections
from consent.usecases.catalog import JourneyList

app = create_resolver()


@app.get(
    "/companies",
    operation_id="listCompanies",
    description=(
        "The caller's companies, newest first, each with its journeys and its first 100 connections "
        "(`connectionsNextCursor` pages on). From the table only: no Codat call."
    ),
    summary="The caller's companies, newest first",
    tags=["Companies"],
    responses=responses(200, CompanyList, "A page of companies"),
)
def list_companies(
    limit: PageLimit = 20,
    cursor: CompaniesCursor = None,
    expiring_before: ExpiringBefore = None,
) -> Response[str]:
    request = scope(app)
    before = moment(expiring_before, "expiringBefore") if expiring_before is not None else None
    page = companies.list_companies(
        request.services, request.customer_id, limit=limit, cursor=cursor, expiring_before=before
    )
    return json_response(200, page.to_json())


@app.get(
    "/journeys",
    operation_id="listJourneys",
    description=(
        "The journeys this deployment offers, from its journeys file: what `POST /companies` takes as "
        "`journey`, with the title and description to show the customer and the source types each asks for."
    ),
    summary="The journeys this deployment offers (from its journeys file)",
    tags=["Journeys"],
    responses=responses(200, JourneyList, "The journeys, by name"),
)
def list_journeys() -> Response[str]:
    request = scope(app)
    return json_response(200, catalog.list_journeys(request.services.catalog).to_json())


@app.get(
    "/companies/<companyId>",
    operation_id="getCompany",
    description=(
        "One of the caller's companies: its journeys (status, requirements, when completed) and its first 100"
        " connections. Another customer's company is a 404, as an unknown one."
    ),
    summary="One company with its journeys and connections (no Codat call)",
    tags=["Companies"],
    responses=responses(200, Company, "The company", errors=(404,)),
)
def get_company(company_id: CompanyId) -> Response[str]:
    request = scope(app)
    return json_response(200, companies.get_company(request.services, request.customer_id, company_id).to_json())


@app.get(
    "/companies/<companyId>/connections",
    operation_id="listConnections",
    description=(
        "Manage connections: every connection of the company (deleted ones are left out), in connection id "
        "order, paged."
    ),
    summary="Manage connections: the company's connections",
    tags=["Connections"],
    responses=responses(200, ConnectionList, "A page of connections", errors=(404,)),
)
def list_connections(
    company_id: CompanyId,
    limit: PageLimit = MAX_PAGE_LIMIT,
    cursor: ConnectionsCursor = None,
) -> Response[str]:
    request = scope(app)
    page = connections.list_connections(request.services, request.customer_id, company_id, limit=limit, cursor=cursor)
    return json_response(200, page.to_json())


@app.get(
    "/companies/<companyId>/events",
    operation_id="listConsentEvents",
    description=(
        "The consent ledger: who consented to, authorized, revoked or lost what, and when, oldest first, "
        "paged. It is the bank's record of consent."
    ),
    summary="The consent ledger, oldest first",
    tags=["Consent ledger"],
    responses=responses(200, LedgerPage, "A page of ledger entries", errors=(404,)),
)
def list_events(
    company_id: CompanyId,
    limit: PageLimit = 50,
    cursor: EventsCursor = None,
) -> Response[str]:
    request = scope(app)
    page = connections.list_events(request.services, request.customer_id, company_id, limit=limit, cursor=cursor)
    return json_response(200, page.to_json())


# log_event=False: the event holds the bearer token and personal data; POWERTOOLS_LOGGER_LOG_EVENT cannot override.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, services: Services | None = None) -> dict[str, Any]:
    return serve(app, event, context, services or default_services())
