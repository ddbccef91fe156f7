"""Where a page starts: the cursors of the listing routes.

A cursor is the position of the last item of the previous page, written with what the caller was already shown
(ids and timestamps), so every well-formed cursor is a valid one: a position that no item has starts the page
where that item would sort. No cursor can reach another customer's items, because the partition a listing reads
always comes from the caller (their customer id, a company they own) and never from the cursor.

  companies    `<createdAt>_<companyId>`             newest first, so the page holds what sorts before it
  connections  `<connectionId>`                      in connection id order
  events       `<at>_<seq>_<entryId>`                oldest first (`seq` orders the entries of one moment)

`<createdAt>` and `<at>` are UTC with microseconds (`2026-12-06T16:24:48.123456Z`), `<seq>` three digits.
The patterns are what the OpenAPI document publishes; anything else is refused by validation (422)."""

from __future__ import annotations

import re
from datetime import datetime

from consent.store.port import CursorError

_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_AT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"

COMPANIES_CURSOR_PATTERN = rf"^{_AT}_{_ID}$"
CONNECTIONS_CURSOR_PATTERN = rf"^{_ID}$"
EVENTS_CURSOR_PATTERN = rf"^{_AT}_[0-9]{{3}}_{_ID}$"

_COMPANIES = re.compile(COMPANIES_CURSOR_PATTERN)
_CONNECTIONS = re.compile(CONNECTIONS_CURSOR_PATTERN)
_EVENTS = re.compile(EVENTS_CURSOR_PATTERN)


def sortable(moment: datetime) -> str:
    """A moment as it sorts in a key and reads in a cursor."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def company_cursor(created_at: str, company_id: str) -> str:
    return f"{created_at}_{company_id}"


def connection_cursor(connection_id: str) -> str:
    return connection_id


def event_cursor(at: str, seq: int, entry_id: str) -> str:
    return f"{at}_{seq:03d}_{entry_id}"


def parse_company_cursor(cursor: str) -> tuple[str, str]:
    """(createdAt, companyId)."""
    _check(_COMPANIES, cursor)
    created_at, company_id = cursor.split("_", 1)
    return created_at, company_id


def parse_connection_cursor(cursor: str) -> str:
    """The connection id."""
    _check(_CONNECTIONS, cursor)
    return cursor


def parse_event_cursor(cursor: str) -> tuple[str, int, str]:
    """(at, seq, entryId)."""
    _check(_EVENTS, cursor)
    at, seq, entry_id = cursor.split("_", 2)
    return at, int(seq), entry_id


def _check(pattern: re.Pattern[str], cursor: str) -> None:
    if pattern.fullmatch(cursor) is None:  # fullmatch: `$` alone would let a trailing newline through
        raise CursorError("not a cursor of this listing")
