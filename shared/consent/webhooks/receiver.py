"""POST /webhooks/codat as a Lambda event: raw body, signature first, then the state change.

Deliberately not built on the API resolver: the webhook function imports only what this path needs
(no HTTP client, no OpenAPI machinery), so it starts fast and answers well inside Codat's 15 seconds."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from typing import Any

from pydantic import ValidationError

from consent.api.problems import PROBLEM_JSON, Problem, use_type_base
from consent.observability import logger, metrics
from consent.services import Services
from consent.settings import SettingsError
from consent.store import ConflictError, StoreRejected, StoreUnavailable
from consent.usecases.webhooks import apply_webhook
from consent.webhooks.codat_events import WebhookEnvelope
from consent.webhooks.signature import SignatureError, verify

# Codat's events are a few KiB; anything far larger is refused before any HMAC is computed over it.
MAX_WEBHOOK_BYTES = 256 * 1024


def handle(event: dict[str, Any], services: Services, *, now: Any = time.time) -> dict[str, Any]:
    request_id = str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4())
    use_type_base(services.settings.problem_type_base_uri)
    try:
        return _receive(event, services, request_id, now)
    except Problem as problem:
        return _answer(problem.status, request_id, problem.body(request_id), dict(problem.headers))
    except (StoreUnavailable, ConflictError) as error:
        # Not applied: a 5xx makes Codat deliver again (immediately, then 5 s, 5 min, …).
        logger.warning("webhook not applied, Codat will retry", extra={"error": type(error).__name__})
        metrics.add_metric(name="WebhooksNotApplied", unit="Count", value=1)
        retry = Problem(503, "store_unavailable", "The webhook could not be recorded. Retry.")
        return _answer(503, request_id, retry.body(request_id), {"Retry-After": "5"})
    except StoreRejected:
        # A bug or a limit of ours (the table refuses the change as invalid): no retry of Codat's will help, but
        # a 5xx keeps the delivery failed on Codat's side (visible there), and reconciliation heals the state.
        logger.exception("webhook not applied: the table refused the change")
        metrics.add_metric(name="WebhooksFailed", unit="Count", value=1)
        failed = Problem(500, "internal_error", "The webhook could not be recorded.")
        return _answer(500, request_id, failed.body(request_id), {})


def _receive(event: dict[str, Any], services: Services, request_id: str, now: Any) -> dict[str, Any]:
    body = _raw_body(event)
    if len(body) > MAX_WEBHOOK_BYTES:
        raise Problem(413, "payload_too_large", "The webhook body is too large.")
    headers = {str(k): str(v) for k, v in (event.get("headers") or {}).items()}
    try:
        keys = services.webhook_keys()
    except (SettingsError, ValueError) as error:
        logger.error("webhook secret misconfigured", extra={"error": str(error)})
        metrics.add_metric(name="WebhooksFailed", unit="Count", value=1)
        raise Problem(500, "webhook_secret_misconfigured", "The webhook secret is not configured.") from error
    try:
        message = verify(headers, body, keys, now=now)
    except SignatureError as error:
        logger.info("webhook refused", extra={"reason": str(error)})
        metrics.add_metric(name="WebhooksRefused", unit="Count", value=1)
        raise Problem(401, "invalid_signature", "The webhook signature is missing, wrong or stale.") from error
    try:
        envelope = WebhookEnvelope.model_validate_json(body)
    except (ValidationError, OverflowError) as error:
        # OverflowError: an ISO date whose offset takes it outside years 1-9999 in UTC (CodatDateTime's astimezone).
        raise Problem(400, "malformed_event", "The body is not a Codat event.") from error
    applied = apply_webhook(services, message.message_id, envelope)
    logger.info(
        "webhook received",
        extra={
            "webhook_id": message.message_id,
            "codat_event_type": applied.event_type[:100],
            "outcome": applied.outcome,
        },
    )
    metrics.add_metric(name=f"Webhooks{applied.outcome.value.capitalize()}", unit="Count", value=1)
    return _answer(204, request_id, None, {})


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise Problem(400, "malformed_event", "The body is not a Codat event.")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise Problem(400, "malformed_event", "The body is not valid base64.") from error
    return body.encode("utf-8", "surrogatepass")


def _answer(status: int, request_id: str, body: str | None, headers: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {"statusCode": status, "headers": {"X-Request-Id": request_id, **headers}}
    if body is not None:
        result["headers"]["Content-Type"] = PROBLEM_JSON
        result["body"] = body
    return result
