"""What each route documents in the OpenAPI document: its success body and its problem+json answers."""

from __future__ import annotations

from functools import cache
from typing import Any

from consent.api.problems import PROBLEM_JSON, problem_schema

_ERROR_TEXT = {
    400: "Malformed request",
    401: "No valid customer identity",
    404: "No such resource (also another customer's)",
    409: "Well formed, but the current state refuses it (see `code`)",
    413: "Body over 64 KiB",
    415: "The body is not `application/json`",
    422: "Validation failed (`errors` names the fields)",
    429: "Over the customer's quota: `rate_limited` (retry after `Retry-After`) or `company_quota_exceeded`",
    502: "Codat refused or answered badly",
    503: "Codat or our database is unavailable: retry after `Retry-After`",
    504: "Codat did not answer in time: retry",
}
_ALWAYS = (401, 422, 503)


@cache
def _problem() -> type:
    return problem_schema()


def responses(
    status: int,
    model: type | None,
    description: str,
    *,
    errors: tuple[int, ...] = (),
    also: dict[int, str] | None = None,
) -> dict[int, Any]:
    """The `responses=` of a route: the success answer (and `also` the other successes, with the same body)
    and the problems it can answer with."""
    documented: dict[int, Any] = {}
    for success, text in {status: description, **(also or {})}.items():
        documented[success] = {"description": text}
        if model is not None:
            documented[success]["content"] = {"application/json": {"model": model}}
    for code in sorted(set(_ALWAYS + errors)):
        documented[code] = {"description": _ERROR_TEXT[code], "content": {PROBLEM_JSON: {"model": _problem()}}}
    return documented
