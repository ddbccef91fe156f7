"""Who is calling: the customer id from the JWT authorizer's claims (API Gateway HTTP API, payload 2.0)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from consent.api.problems import Problem

# Customer ids end up in keys and Codat tags: keep them to a printable, bounded alphabet.
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9._:@|+\-]{1,128}$")


def customer_id_from_event(event: Mapping[str, Any], claim: str) -> str:
    """The caller's customer id, or a 401 problem when the event carries no usable identity."""
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    value = claims.get(claim)
    if not isinstance(value, str) or not _CUSTOMER_ID.match(value):
        raise Problem(401, "unauthenticated", "The request carries no valid customer identity.")
    return value
