"""The routes' path, query and header parameters, each bounded (OWASP API4) and shared by every function.

Ids are Codat's (UUIDs); the pattern admits a little more so that any id Codat could send is reachable, but
never a separator or dot that could steer a Codat URL or a table key elsewhere."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from consent.domain.errors import FieldError, Invalid
from consent.domain.requests import MAX_PAGE_LIMIT
from consent.store.positions import (
    COMPANIES_CURSOR_PATTERN,
    CONNECTIONS_CURSOR_PATTERN,
    EVENTS_CURSOR_PATTERN,
)

ID_MAX_LENGTH = 64
ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_-]{{0,{ID_MAX_LENGTH - 1}}}$"

CompanyId = Annotated[str, Path(alias="companyId", max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
ConnectionId = Annotated[str, Path(alias="connectionId", max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)]


# A cursor is a position (see `consent.store.positions`): any that matches its pattern is valid.
def _cursor(pattern: str, max_length: int, form: str) -> Any:
    return Query(
        max_length=max_length,
        pattern=pattern,
        description="Where the page starts: the `nextCursor` of the previous page. Any well-formed position is "
        f"valid; {form}",
    )


CompaniesCursor = Annotated[
    str | None,
    _cursor(COMPANIES_CURSOR_PATTERN, 100, "`<createdAt>_<companyId>` lists the companies created before it."),
]
ConnectionsCursor = Annotated[
    str | None, _cursor(CONNECTIONS_CURSOR_PATTERN, ID_MAX_LENGTH, "`<connectionId>` lists the connections after it.")
]
EventsCursor = Annotated[
    str | None, _cursor(EVENTS_CURSOR_PATTERN, 100, "`<at>_<seq>_<entryId>` lists the entries recorded after it.")
]
ExpiringBefore = Annotated[
    str | None,
    Query(
        alias="expiringBefore",
        max_length=40,
        json_schema_extra={"format": "date-time"},
        description="RFC 3339 (e.g. `2027-03-01T00:00:00Z`): only the companies with a connection whose `renewBy` "
        "is before it. A page may then hold fewer than `limit` companies; `nextCursor` goes on.",
    ),
]
_RFC_3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def moment(value: str, field: str) -> datetime:
    """An RFC 3339 date-time parameter (what `format: date-time` promises), or 422 naming the field."""
    if _RFC_3339.fullmatch(value) is not None:
        text = value.upper()
        head, dot, rest = text.partition(".")
        if dot:  # Python reads at most microseconds
            digits = len(rest) - len(rest.lstrip("0123456789"))
            text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise Invalid([FieldError(field, "Not an RFC 3339 date-time, e.g. 2027-03-01T00:00:00Z.")])


# Printable ASCII without spaces: what clients send (UUIDs, ULIDs, hashes); nothing to confuse a log or a header.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="A key of yours for this request (a UUID): a retry with the same key and body answers as the "
        "first request did, with `Idempotent-Replayed: true`; the same key with another body is 409 "
        "`idempotency_key_reused`. Keys are the caller's own and kept 24 hours.",
    ),
]
