"""The company step: POST /companies and POST /companies/{companyId}/journeys."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from consent.api.openapi import responses
from consent.api.params import CompanyId, IdempotencyKey
from consent.api.resolver import create_resolver, json_response, scope, serve
from consent.domain.requests import CreateCompanyRequest, StartJourneyRequest
from consent.domain.resources import Company
from consent.observability import logger, metrics, tracer
from consent.services import Services, default_services
from consent.usecases import companies

app = create_resolver()


@app.post(
    "/companies",
    operation_id="createCompany",
    description=(
        "Creates the customer's company in Codat and here, and starts its first journey. Send an "
        "`Idempotency-Key`: a retry with the same key and body answers as the first request did (`Idempotent-"
        "Replayed: true`)."
    ),
    summary="Create the customer's company (in Codat too) and start a journey",
    tags=["Companies"],
    responses=responses(
        201,
        Company,
        "Created (or the first answer again, for a repeated Idempotency-Key)",
        errors=(409, 413, 415, 429, 502, 504),
    ),
)
def create_company(body: CreateCompanyRequest, idempotency_key: IdempotencyKey = None) -> Response[str]:
    request = scope(app)
    answer = companies.create_company(request.services, request.customer_id, body, idempotency_key)
    return json_response(answer.status, answer.body, {"Idempotent-Replayed": "true"} if answer.replayed else None)


@app.post(
    "/companies/<companyId>/journeys",
    operation_id="startJourney",
    description="Starts another journey for the company; the connections it already has count toward it at once.",
    summary="Start another journey for the company",
    tags=["Companies"],
    responses=responses(200, Company, "The company with the journey started", errors=(404, 409, 413, 415)),
)
def start_journey(company_id: CompanyId, body: StartJourneyRequest) -> Response[str]:
    request = scope(app)
    company = companies.start_journey(request.services, request.customer_id, company_id, body.journey)
    return json_response(200, company.to_json())


# log_event=False: the event holds the bearer token and personal data; POWERTOOLS_LOGGER_LOG_EVENT cannot override.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, services: Services | None = None) -> dict[str, Any]:
    return serve(app, event, context, services or default_services())
