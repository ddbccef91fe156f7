"""Fault injection: make matching requests fail the ways a real Codat (or the network to it) can."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["status", "slow", "drop", "malformed", "lose_response"]
DropError = Literal["remote_protocol", "connect", "read_timeout"]

_DEFAULT_ERRORS: dict[int, str] = {
    400: "Error processing request - not valid.",
    401: "Unauthorized",
    402: "You have exceeded the 50-company limit that applies to a Free plan.",
    403: "You are using an outdated API key or a key not associated with that resource.",
    404: "Not found",
    429: "You have made too many requests in a given amount of time; please retry later.",
    500: "There is a problem with our server. Please try again later.",
    502: "Bad Gateway",
    503: "The Codat API is temporarily offline for maintenance. Please try again later.",
    504: "Gateway Timeout",
}


@dataclass
class Fault:
    """One injected fault.

    Matching: ``method`` (case-insensitive) and ``path`` (a regex *searched* in the request path; anchor it with
    ``^...$`` to be exact). The first ``skip`` matching requests pass untouched; the fault then fires ``times``
    times (``None``: forever). Kinds:

    - ``status``: answer ``status`` with Codat's error body (``message`` overrides the text); nothing is performed.
      A 429 carries ``Retry-After: retry_after`` (default 1 second); ``headers`` adds more.
    - ``slow``: perform the request, then answer after ``delay`` seconds (a client whose read timeout is shorter
      gets a timeout, like a slow real server that still did the work).
    - ``drop``: the connection drops before the request is processed (``error``: ``remote_protocol`` by default,
      or ``connect``).
    - ``malformed``: answer ``status`` (default 200) with ``body`` that is not JSON; not performed unless ``perform``.
    - ``lose_response``: perform the request, then lose the answer (``error``: ``read_timeout`` by default, or
      ``remote_protocol``).
    """

    kind: FaultKind
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    skip: int = 0
    status: int | None = None
    message: str | None = None
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    error: DropError | None = None
    body: bytes | None = None
    perform: bool | None = None
    hits: int = field(default=0, init=False)
    _seen: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path) if self.path is not None else None
        if self.kind == "status" and self.status is None:
            raise ValueError("a status fault needs status=...")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._pattern is None or self._pattern.search(path) is not None

    @property
    def performs(self) -> bool:
        """Whether the simulator carries out the request before this fault hits the answer."""
        if self.kind in ("slow", "lose_response"):
            return True
        return self.kind == "malformed" and bool(self.perform)

    @property
    def connection_error(self) -> DropError:
        if self.error is not None:
            return self.error
        return "read_timeout" if self.kind == "lose_response" else "remote_protocol"

    @property
    def error_message(self) -> str:
        status = self.status or 500
        return self.message or _DEFAULT_ERRORS.get(status, "Error")

    @property
    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.status == 429 or self.retry_after is not None:
            headers.setdefault("Retry-After", str(self.retry_after if self.retry_after is not None else 1))
        return headers


class FaultRegistry:
    """Injected faults in order; the first live match wins. Thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f is not fault]

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.exhausted]

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that fires for this request, if any (counting it as fired)."""
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(method, path):
                    continue
                fault._seen += 1
                if fault._seen <= fault.skip:
                    continue
                fault.hits += 1
                return fault
            return None
