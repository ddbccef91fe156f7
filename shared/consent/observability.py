"""The package's structured JSON logger, metrics and tracer (Powertools), created once per process.

The service name comes from POWERTOOLS_SERVICE_NAME (set in the template's Globals)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

    tracer: Tracer

# Libraries whose DEBUG lines carry payloads and credentials: botocore logs request bodies (company names) and
# signed headers with the session token, Powertools' resolver logs route arguments, the HTTP clients headers.
# They stay at INFO whatever the function's log level, so debugging a function never writes personal data or
# secrets to CloudWatch. Our own logger still goes to DEBUG when asked.
for _library in ("botocore", "boto3", "urllib3", "httpx", "httpcore", "aws_lambda_powertools.event_handler"):
    logging.getLogger(_library).setLevel(logging.INFO)

logger = Logger()
metrics = Metrics(namespace="ConsentJourney")


def __getattr__(name: str) -> Tracer:
    # `tracer` is made when first imported: a Tracer imports the X-Ray SDK (with wrapt and asyncio) even when
    # tracing is off, 30-50 ms of a cold start that a function which traces nothing (the webhook) need not pay.
    if name != "tracer":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 - see above

    globals()["tracer"] = tracer = Tracer()
    return tracer
