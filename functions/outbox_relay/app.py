"""The outbox relay: follows the consent table's stream and publishes each new consent ledger entry to SNS."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from consent.observability import logger, metrics, tracer
from consent.services import Services, default_services
from consent.usecases.outbox import relay_ledger_events


@logger.inject_lambda_context(log_event=False)  # never the event itself: see the API functions
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext, services: Services | None = None) -> dict[str, Any]:
    services = services or default_services()
    response = relay_ledger_events(
        event,
        context,
        services.publisher,
        source=services.settings.event_source,
        schema_base_uri=services.settings.event_schema_base_uri,
    )
    return dict(response)
