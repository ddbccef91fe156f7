"""The consent lifecycle, on a schedule or by hand: reminders before consent lapses, keep-alive refreshes.

The event (EventBridge's scheduled event, or `{}` from `aws lambda invoke`) carries nothing the run needs."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from consent.observability import logger, metrics, tracer
from consent.services import Services, default_services
from consent.usecases.lifecycle import run_lifecycle


@logger.inject_lambda_context(log_event=False)  # never the event itself: see the API functions
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, services: Services | None = None) -> dict[str, Any]:
    services = services or default_services()
    services.time_left = lambda: context.get_remaining_time_in_millis() / 1000
    return run_lifecycle(services).to_dict()
