"""Codat's webhooks: POST /webhooks/codat (no authorizer: the signature is the authentication)."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from consent.observability import logger, metrics, tracer
from consent.services import Services, default_services
from consent.webhooks import receiver


# log_event=False: the event holds signatures and the company's details; POWERTOOLS_LOGGER_LOG_EVENT cannot override.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, services: Services | None = None) -> dict[str, Any]:
    return receiver.handle(event, services or default_services())
