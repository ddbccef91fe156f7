"""The package's structured JSON logger, metrics and tracer (Powertools), created once per process.

The service name comes from POWERTOOLS_SERVICE_NAME (set in the template's Globals). Lambda's active tracing
records every invocation's segment without any SDK; `tracer` adds X-Ray subsegments (AWS calls, handler
annotations) only when CONSENT_TRACING_SUBSEGMENTS is `true` (the template's TracingSubsegments parameter)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger, Metrics

# Libraries whose DEBUG lines carry payloads and credentials: botocore logs request bodies (company names) and
# signed headers with the session token, Powertools' resolver logs route arguments, the HTTP clients headers.
# They stay at INFO whatever the function's log level, so debugging a function never writes personal data or
# secrets to CloudWatch. Our own logger still goes to DEBUG when asked.
for _library in ("botocore", "boto3", "urllib3", "httpx", "httpcore", "aws_lambda_powertools.event_handler"):
    logging.getLogger(_library).setLevel(logging.INFO)

TRACING_SUBSEGMENTS = "CONSENT_TRACING_SUBSEGMENTS"

Handler = TypeVar("Handler", bound=Callable[..., Any])


class HandlerTracer(Protocol):
    """What the functions use of a tracer: Powertools' `Tracer` has it, and so has `NoSubsegments`.
    Used bare (`@tracer.capture_lambda_handler`) or with options (`…(capture_response=False)`)."""

    def capture_lambda_handler(
        self,
        lambda_handler: Any = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Any: ...


class NoSubsegments:
    """The tracer when subsegments are off: every decorator hands the handler back unchanged, and no tracing SDK
    is imported. (The X-Ray SDK behind Powertools' Tracer is imported even when tracing is disabled, patches
    botocore and httpx when it is not, and reaches end of support on 2027-02-25.)"""

    def capture_lambda_handler(
        self,
        lambda_handler: Handler | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Any:
        if lambda_handler is not None:
            return lambda_handler
        return lambda handler: handler


def subsegments_enabled(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    value = environ.get(TRACING_SUBSEGMENTS, "false").strip().lower()
    if value not in ("true", "false", ""):
        raise ValueError(f"{TRACING_SUBSEGMENTS} is 'true' or 'false', not {value!r}")
    return value == "true"


def make_tracer(environ: os._Environ[str] | dict[str, str] = os.environ) -> HandlerTracer:
    """Powertools' X-Ray Tracer when subsegments are asked for; otherwise a tracer that imports nothing.

    When Powertools ships its OpenTelemetry tracer provider, this is the one place that chooses it."""
    if not subsegments_enabled(environ):
        return NoSubsegments()
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 - the X-Ray SDK only when subsegments are on

    tracer: HandlerTracer = Tracer()
    return tracer


logger = Logger()
metrics = Metrics(namespace="ConsentJourney")
tracer = make_tracer()
