"""Serve a CodatSimulator over real HTTP with werkzeug (for ``make dev`` and socket-level tests).

Fault limitations over HTTP: ``drop`` and ``lose_response`` close the socket without an answer, so clients see a
disconnect (never a refused connection or a read timeout, whatever the fault's ``error``); ``slow`` really sleeps.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, Protocol

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .serving import RequestProcessor

_POLL_INTERVAL = 0.05

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Servable(RequestProcessor, Protocol):
    """A simulator to serve: it processes requests, and its links point at ``public_base_url`` once set."""

    public_base_url: str | None


def make_wsgi_app(sim: RequestProcessor) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        outcome = sim.process(
            request.method, request.path, dict(request.args), dict(request.headers), request.get_data()
        )
        if outcome.delay:
            time.sleep(outcome.delay)
        if outcome.drop is not None or outcome.response is None:
            _drop_connection(environ)
        answer = outcome.response
        response = Response(answer.body, status=answer.status, headers=answer.headers)
        return response(environ, start_response)

    return app


def _drop_connection(environ: dict[str, Any]) -> NoReturn:
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    # werkzeug's server treats a ConnectionError from the app as a dropped connection and writes nothing.
    raise ConnectionAbortedError("simulated connection drop")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SimServer:
    """A running HTTP server for a simulator; ``url`` is its base URL. Stop it with ``shutdown()``."""

    def __init__(self, server: BaseWSGIServer) -> None:
        self._server = server
        # A short poll interval, because shutdown() waits for the loop to notice (half a second by default).
        self._thread = threading.Thread(
            target=server.serve_forever, args=(_POLL_INTERVAL,), name="codat-simulator", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()


def serve(sim: Servable, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> SimServer:
    """Serve ``sim`` on a background thread (port 0 picks a free port). Sets the simulator's ``public_base_url`` to
    the server's URL if it had none, so linkUrls point at this server."""
    handler = _QuietHandler if quiet else WSGIRequestHandler
    server = make_server(host, port, make_wsgi_app(sim), threaded=True, request_handler=handler)
    running = SimServer(server)
    if sim.public_base_url is None:
        sim.public_base_url = running.url
    return running
