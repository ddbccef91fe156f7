"""What serves the simulator (the in-process httpx transport, the WSGI app) needs of it: a request in, an `Outcome`
out. A Protocol rather than the simulator itself, so that the servers do not import the module that imports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .faults import DropError
from .responses import SimResponse


@dataclass(frozen=True)
class Outcome:
    """What the transport should do: wait ``delay``, then drop the connection (``drop``) or send ``response``."""

    response: SimResponse | None
    delay: float = 0.0
    drop: DropError | None = None
    performed: bool = True


class RequestProcessor(Protocol):
    def process(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Outcome:
        """Serve one request without sleeping or raising: the server turns the ``Outcome`` into I/O."""
        ...
