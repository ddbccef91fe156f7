"""The one resolver factory every API function uses, and the request wrapper around `app.resolve`.

The wrapper does what must happen before routing (request id, identity, body limit) and after it
(the request id header); the resolver's exception handlers map every failure to problem+json in one place."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from consent.api.identity import customer_id_from_event
from consent.api.problems import PROBLEM_JSON, Problem, problem_for, use_type_base, validation_failed
from consent.codat.errors import (
    CodatAuthFailed,
    CodatBadResponse,
    CodatBudgetExhausted,
    CodatError,
    CodatNotFound,
    CodatRateLimited,
    CodatRejected,
    CodatTimeout,
    CodatUnavailable,
)
from consent.domain.errors import FieldError, Refused
from consent.observability import logger, metrics
from consent.services import Services
from consent.store import ConflictError, CursorError, StoreUnavailable

MAX_BODY_BYTES = 64 * 1024
REQUEST_ID_HEADER = "X-Request-Id"
JSON = "application/json"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class RequestScope:
    """What a route needs besides its parameters: the ports, the caller and the request id."""

    services: Services
    customer_id: str
    request_id: str


def scope(app: APIGatewayHttpResolver) -> RequestScope:
    current = app.context["scope"]
    assert isinstance(current, RequestScope)
    return current


def json_response(status: int, body: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status_code=status, content_type=JSON, body=body, headers=headers)


def create_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)

    def answer(problem: Problem) -> Response[str]:
        request_id = app.context.get("request_id")
        return Response(
            status_code=problem.status,
            content_type=PROBLEM_JSON,
            body=problem.body(request_id),
            headers=dict(problem.headers),
        )

    @app.exception_handler(Problem)
    def _problem(problem: Problem) -> Response[str]:
        return answer(problem)

    @app.exception_handler(Refused)
    def _refused(refused: Refused) -> Response[str]:
        return answer(problem_for(refused))

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[str]:
        return answer(validation_failed([_field_error(e) for e in error.errors()]))

    @app.exception_handler(RequestUnsupportedContentType)
    def _media_type(_: RequestUnsupportedContentType) -> Response[str]:
        return answer(unsupported_media_type())

    @app.exception_handler(NotFoundError)
    def _no_route(_: NotFoundError) -> Response[str]:
        return answer(Problem(404, "not_found", "No such route."))

    @app.exception_handler(CodatError)
    def _codat(error: CodatError) -> Response[str]:
        # The alarms watch these: Codat down or limiting us, or refusing this deployment's key.
        if isinstance(error, CodatAuthFailed):
            metrics.add_metric(name="CodatKeyRefused", unit=MetricUnit.Count, value=1)
        elif isinstance(error, CodatRateLimited | CodatUnavailable | CodatTimeout | CodatBudgetExhausted):
            metrics.add_metric(name="CodatUnavailable", unit=MetricUnit.Count, value=1)
        logger.warning(
            "codat call failed",
            extra={
                "error": type(error).__name__,
                "codat_status": error.status,
                "codat_correlation_id": error.correlation_id,
            },
        )
        return answer(problem_for_codat(error))

    @app.exception_handler(StoreUnavailable)
    def _store(error: StoreUnavailable) -> Response[str]:
        logger.warning("store unavailable", extra={"error": str(error)})
        return answer(
            Problem(503, "store_unavailable", "Our database is busy. Retry shortly.", headers={"Retry-After": "1"})
        )

    @app.exception_handler(ConflictError)
    def _conflict(_: ConflictError) -> Response[str]:
        return answer(Problem(409, "conflict", "The resource changed while this request ran. Retry it."))

    @app.exception_handler(CursorError)
    def _cursor(error: CursorError) -> Response[str]:
        return answer(validation_failed([FieldError("cursor", str(error))], "The cursor is not valid."))

    @app.exception_handler(Exception)
    def _unexpected(_: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return answer(Problem(500, "internal_error", "Something went wrong on our side."))

    return app


def problem_for_codat(error: CodatError) -> Problem:
    """What a Codat failure means for our caller."""
    if isinstance(error, CodatRateLimited):
        retry_after = str(max(1, round(error.retry_after or 1)))
        return Problem(
            503, "codat_unavailable", "Codat is rate limiting us. Retry later.", headers={"Retry-After": retry_after}
        )
    if isinstance(error, CodatTimeout):
        return Problem(504, "codat_timeout", "Codat did not answer in time. Retry the request.")
    if isinstance(error, CodatUnavailable):
        return Problem(503, "codat_unavailable", "Codat is unavailable. Retry later.", headers={"Retry-After": "5"})
    if isinstance(error, CodatAuthFailed):
        return Problem(502, "codat_auth_failed", "Codat refused this deployment's API key. An operator must fix it.")
    if isinstance(error, CodatBadResponse):
        return Problem(502, "codat_bad_response", "Codat answered with something we could not read.")
    if isinstance(error, CodatNotFound):
        return Problem(502, "codat_not_found", "Codat no longer knows this resource.")
    if isinstance(error, CodatRejected):
        return Problem(502, "codat_rejected", f"Codat rejected the request ({error.status}).")
    return Problem(502, "codat_error", "Codat failed.")


def _field_error(error: Any) -> FieldError:
    location = [str(part) for part in error.get("loc", ())]
    where = ".".join(location[1:]) if len(location) > 1 else (location[0] if location else "body")
    if error.get("type") == "json_invalid":
        return FieldError("body", "The body is not valid JSON.")
    # pydantic's message only: never the rejected input, which may be personal data.
    return FieldError(where or "body", str(error.get("msg", "invalid")))


def unsupported_media_type() -> Problem:
    return Problem(415, "unsupported_media_type", f"Send the body as {JSON}.")


def _body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return len(base64.b64decode(body, validate=False))
        except (binascii.Error, ValueError):
            return len(body)
    return len(body.encode())


def _check_json_body(event: dict[str, Any]) -> None:
    """A body sent to a route that reads one must be JSON text: any other media type is a 415 (Powertools
    would parse a form or multipart body, or fail on an unknown type), and bytes that are not UTF-8 are not
    JSON (RFC 8259) — Powertools would fail decoding them."""
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method") or "").upper()
    body = event.get("body")
    if method not in _BODY_METHODS or not body:
        return
    headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in ("", JSON):  # no Content-Type: read as JSON, as Powertools does
        raise unsupported_media_type()
    if event.get("isBase64Encoded"):
        try:
            base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            raise validation_failed([FieldError("body", "The body is not valid JSON.")]) from None


def serve(
    app: APIGatewayHttpResolver,
    event: dict[str, Any],
    context: LambdaContext,
    services: Services,
    *,
    authenticated: bool = True,
) -> dict[str, Any]:
    """Resolve one API Gateway HTTP API (2.0) event with `services`, the caller's identity and limits."""
    request_id = str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4())
    use_type_base(services.settings.problem_type_base_uri)
    app.append_context(request_id=request_id)
    try:
        customer_id = customer_id_from_event(event, services.settings.identity_claim) if authenticated else ""
        if _body_size(event) > MAX_BODY_BYTES:
            raise Problem(413, "payload_too_large", f"The body exceeds {MAX_BODY_BYTES // 1024} KiB.")
        _check_json_body(event)
    except Problem as problem:
        return _with_request_id(_problem_result(problem, request_id), request_id)
    app.append_context(scope=RequestScope(services, customer_id, request_id), request_id=request_id)
    services.time_left = lambda: context.get_remaining_time_in_millis() / 1000
    return _with_request_id(app.resolve(event, context), request_id)


def _problem_result(problem: Problem, request_id: str) -> dict[str, Any]:
    return {
        "statusCode": problem.status,
        "headers": {"Content-Type": PROBLEM_JSON, **problem.headers},
        "body": problem.body(request_id),
        "isBase64Encoded": False,
    }


def _with_request_id(result: dict[str, Any], request_id: str) -> dict[str, Any]:
    result.setdefault("headers", {})[REQUEST_ID_HEADER] = request_id
    return result
