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

# The closed list of problem `code`s each status can carry (a test holds it to the codes the code raises).
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: ("malformed_event",),
    401: ("unauthenticated", "invalid_signature"),
    404: ("not_found",),
    409: (
        "conflict",
        "idempotency_key_reused",
        "idempotency_request_in_progress",
        "integration_not_enabled",
        "source_type_not_in_journeys",
        "connection_already_linked",
        "accounting_already_linked",
        "company_data_purged",
        "one_off_consent_used",
    ),
    413: ("payload_too_large",),
    415: ("unsupported_media_type",),
    422: ("validation_failed",),
    429: ("rate_limited", "company_quota_exceeded"),
    500: ("internal_error", "webhook_secret_misconfigured"),
    502: ("codat_auth_failed", "codat_bad_response", "codat_not_found", "codat_rejected", "codat_error"),
    503: ("codat_unavailable", "store_unavailable"),
    504: ("codat_timeout",),
}
# Where an operation can answer only some of a status's codes.
OPERATION_CODES: dict[str, dict[int, tuple[str, ...]]] = {
    "createCompany": {409: ("idempotency_key_reused", "idempotency_request_in_progress", "conflict")},
    "startJourney": {409: ("conflict",)},
    "createConnection": {
        409: (
            "integration_not_enabled",
            "source_type_not_in_journeys",
            "connection_already_linked",
            "accounting_already_linked",
            "company_data_purged",
            "one_off_consent_used",
            "conflict",
        ),
        429: ("rate_limited",),
    },
    "listIntegrations": {429: ("rate_limited",)},
    "getAccessToken": {429: ("rate_limited",)},
    "openSdkSession": {409: ("company_data_purged", "conflict"), 429: ("rate_limited",)},
    "revokeConnection": {409: ("conflict",)},
    "receiveCodatWebhook": {401: ("invalid_signature",), 503: ("store_unavailable",)},
}


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
