"""An httpx transport that serves a CodatSimulator in-process, turning faults into httpx's own exceptions."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import httpx

from .faults import DropError
from .serving import RequestProcessor

_MESSAGES: dict[DropError, str] = {
    "remote_protocol": "Server disconnected without sending a response.",
    "connect": "[Errno 111] Connection refused",
    "read_timeout": "The read operation timed out",
}


class SimTransport(httpx.BaseTransport):
    """Mount into ``httpx.Client(transport=sim.transport(), base_url="https://api.codat.io")``.

    A ``slow`` fault longer than the request's read timeout sleeps only that timeout, then raises ``ReadTimeout``.
    """

    def __init__(self, sim: RequestProcessor) -> None:
        self.sim = sim

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        query = dict(parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True))
        outcome = self.sim.process(request.method, request.url.path, query, dict(request.headers), body)

        if outcome.delay:
            read_timeout = (request.extensions.get("timeout") or {}).get("read")
            if read_timeout is not None and outcome.delay >= read_timeout:
                time.sleep(read_timeout)
                raise httpx.ReadTimeout(_MESSAGES["read_timeout"], request=request)
            time.sleep(outcome.delay)

        if outcome.drop is not None or outcome.response is None:
            raise _exception(outcome.drop or "remote_protocol", request)

        response = outcome.response
        return httpx.Response(response.status, headers=response.headers, content=response.body, request=request)


def _exception(error: DropError, request: httpx.Request) -> httpx.TransportError:
    if error == "connect":
        return httpx.ConnectError(_MESSAGES[error], request=request)
    if error == "read_timeout":
        return httpx.ReadTimeout(_MESSAGES[error], request=request)
    return httpx.RemoteProtocolError(_MESSAGES[error], request=request)
