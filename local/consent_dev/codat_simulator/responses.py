"""HTTP responses of the simulator and Codat's error body."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class SimResponse:
    """A framework-free HTTP response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> SimResponse:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return SimResponse(status, {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}, body)


def empty_response(status: int) -> SimResponse:
    return SimResponse(status, {"Content-Length": "0"}, b"")


def error_body(
    status: int,
    error: str,
    *,
    service: str = "PublicApi",
    validation: dict[str, Any] | None = None,
    can_be_retried: str = "Unknown",
    detailed_error_code: int = 0,
) -> dict[str, Any]:
    """Codat's error body: statusCode, service, error, correlationId, validation?, canBeRetried, detailedErrorCode."""
    body: dict[str, Any] = {
        "statusCode": status,
        "service": service,
        "error": error,
        "correlationId": uuid.uuid4().hex,
    }
    if validation is not None:
        body["validation"] = validation
    body["canBeRetried"] = can_be_retried
    body["detailedErrorCode"] = detailed_error_code
    return body


def validation_errors(messages: list[str], validator: str = "RequestValidator") -> dict[str, Any]:
    return {
        "errors": [{"itemId": None, "message": m, "validatorName": validator} for m in messages],
        "warnings": [],
    }


class CodatError(Exception):
    """Raised by handlers; turned into Codat's error response."""

    def __init__(
        self,
        status: int,
        error: str,
        *,
        service: str = "PublicApi",
        messages: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.service = service
        self.messages = messages
        self.headers = headers or {}

    def response(self) -> SimResponse:
        validation = None if self.messages is None else validation_errors(self.messages)
        body = error_body(self.status, self.error, service=self.service, validation=validation)
        return json_response(self.status, body, self.headers)
