"""Codat's ``Idempotency-Key`` on POST/PATCH: replay within 90 minutes; the same key with another body is a 422."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from .responses import SimResponse

IDEMPOTENCY_WINDOW = timedelta(minutes=90)
IDEMPOTENT_METHODS = frozenset({"POST", "PATCH"})


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What must match for a replay. JSON bodies compare by value, so key order and whitespace do not matter."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")) if body else ""
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return f"{method} {path} {canonical}"


@dataclass(frozen=True)
class _Entry:
    fingerprint: str
    response: SimResponse
    expires: datetime


class IdempotencyStore:
    """Successful (2xx) responses by key. Errors are not kept, so retrying after a failure runs the request again."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def clear(self) -> None:
        self._entries.clear()

    def lookup(self, key: str, now: datetime) -> tuple[str, SimResponse] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._entries[key]
            return None
        return entry.fingerprint, entry.response

    def store(self, key: str, print_: str, response: SimResponse, now: datetime) -> None:
        if 200 <= response.status < 300:
            self._entries[key] = _Entry(print_, response, now + IDEMPOTENCY_WINDOW)
