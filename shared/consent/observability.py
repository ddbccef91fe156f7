"""The package's structured JSON logger, metrics and tracer (Powertools), created once per process.

The service name comes from POWERTOOLS_SERVICE_NAME (set in the template's Globals)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics(namespace="ConsentJourney")
tracer = Tracer()
