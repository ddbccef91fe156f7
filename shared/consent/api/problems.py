"""RFC 9457 problem details: every error the API answers, with a stable machine-readable `code`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from consent.domain.errors import Conflict, FieldError, Invalid, NotFound, OverQuota, Refused

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://consent.example/problems/"
# The deployment's own (PROBLEM_TYPE_BASE_URI), set for each invocation by the function serving it.
_type_base = [PROBLEM_TYPE_BASE]


def use_type_base(base_uri: str) -> None:
    _type_base[0] = base_uri


@dataclass
class Problem(Exception):
    """An error answer. Raise it anywhere below a route; the resolver turns it into problem+json."""

    status: int
    code: str
    detail: str
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase

    def body(self, request_id: str | None) -> str:
        document: dict[str, object] = {
            "type": _type_base[0] + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "requestId": request_id,
        }
        if self.errors:
            document["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return json.dumps(document, separators=(",", ":"))


def not_found(what: str = "resource") -> Problem:
    return problem_for(NotFound(what))


def validation_failed(errors: Sequence[FieldError], detail: str = "The request is not valid.") -> Problem:
    return problem_for(Invalid(errors, detail))


# The HTTP status of each kind of refusal (consent.domain.errors): the one place they are mapped.
_STATUS_OF: tuple[tuple[type[Refused], int], ...] = ((NotFound, 404), (Invalid, 422), (Conflict, 409), (OverQuota, 429))


def problem_for(refused: Refused) -> Problem:
    """A refusal of the consent rules as the API answers it."""
    status = next(status for kind, status in _STATUS_OF if isinstance(refused, kind))
    headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after is not None else {}
    return Problem(status, refused.code, refused.detail, errors=refused.fields, headers=headers)


def problem_schema() -> type:
    """The problem+json body as a pydantic model, for the OpenAPI document only (answers are built above)."""
    from pydantic import BaseModel, Field  # noqa: PLC0415 - documentation path only

    class FieldProblem(BaseModel):
        field: str
        message: str

    class Problem(BaseModel):
        type: str = Field(examples=["https://consent.example/problems/not_found"])
        title: str
        status: int
        detail: str
        code: str = Field(description="Stable machine-readable code, e.g. `validation_failed`, `not_found`.")
        requestId: str | None = None
        errors: list[FieldProblem] | None = None

    return Problem
