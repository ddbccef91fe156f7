"""The package's structured JSON logger, metrics and tracer (Powertools), created once per process.

The service name comes from POWERTOOLS_SERVICE_NAME (set in the template's Globals)."""

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

# Libraries whose DEBUG lines carry payloads and credentials: botocore logs request bodies (company names) and
# signed headers with the session token, Powertools' resolver logs route arguments, the HTTP clients headers.
# They stay at INFO whatever the function's log level, so debugging a function never writes personal data or
# secrets to CloudWatch. Our own logger still goes to DEBUG when asked.
for _library in ("botocore", "boto3", "urllib3", "httpx", "httpcore", "aws_lambda_powertools.event_handler"):
    logging.getLogger(_library).setLevel(logging.INFO)

logger = Logger()
metrics = Metrics(namespace="ConsentJourney")
tracer = Tracer()
