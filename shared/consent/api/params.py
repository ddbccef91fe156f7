"""The routes' path, query and header parameters, each bounded (OWASP API4) and shared by every function.

Ids are Codat's (UUIDs); the pattern admits a little more so that any id Codat could send is reachable, but
never a separator or dot that could steer a Codat URL or a table key elsewhere."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from consent.api.models import CURSOR_MAX_LENGTH, MAX_PAGE_LIMIT

ID_MAX_LENGTH = 64
ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_-]{{0,{ID_MAX_LENGTH - 1}}}$"

CompanyId = Annotated[str, Path(alias="companyId", max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
ConnectionId = Annotated[str, Path(alias="connectionId", max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=CURSOR_MAX_LENGTH)]
# Printable ASCII without spaces: what clients send (UUIDs, ULIDs, hashes); nothing to confuse a log or a header.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN)
]
