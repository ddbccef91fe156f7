"""The bank's web app on another origin calls the API from a real Chromium: CORS as the deployed HTTP API answers it
(the template's CorsConfiguration, with AllowedOrigins set to the app's origin). An origin not in the list is
refused by the browser itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from consent_dev.devserver import DevStack

pytestmark = pytest.mark.browser

PAGE = "<!doctype html><title>The bank's web app</title><h1>Another origin</h1>"


class Origin:
    """A page served from its own origin (127.0.0.1 on its own port)."""

    def __init__(self) -> None:
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @staticmethod
    def _app(environ: dict[str, Any], start_response: Any) -> Any:
        Request(environ)
        return Response(PAGE, content_type="text/html")(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[Origin, Origin]]:
    allowed, other = Origin(), Origin()
    yield allowed, other
    allowed.close()
    other.close()


@pytest.fixture(scope="module")
def cors_stack(origins: tuple[Origin, Origin]) -> Iterator[DevStack]:
    allowed, _ = origins
    with DevStack(port=0, codat_port=0, environ={}, parameters={"AllowedOrigins": allowed.url}) as running:
        yield running


CALL_THE_API = """async ([api, token]) => {
  const headers = {"Authorization": `Bearer ${token}`, "Content-Type": "application/json", "Idempotency-Key": "web-1"};
  const body = JSON.stringify({name: "Acme Web Ltd", journey: "onboarding"});
  try {
    const first = await fetch(`${api}/companies`, {method: "POST", headers, body});
    const again = await fetch(`${api}/companies`, {method: "POST", headers, body});
    const listed = await fetch(`${api}/companies`, {headers: {"Authorization": `Bearer ${token}`}});
    return {
      statuses: [first.status, again.status, listed.status],
      companyId: (await first.json()).companyId,
      requestId: first.headers.get("x-request-id"),
      replayed: again.headers.get("idempotent-replayed"),
      listed: (await listed.json()).items.map((c) => c.companyId),
    };
  } catch (error) {
    return {blocked: String(error)};
  }
}"""


def test_the_bank_app_on_an_allowed_origin_calls_the_api_and_another_origin_is_refused(
    cors_stack: DevStack, origins: tuple[Origin, Origin], browser: Any
) -> None:
    allowed, other = origins
    token = cors_stack.token("customer-web")
    context = browser.new_context()
    try:
        # Given the bank's app, served from its own origin
        page = context.new_page()
        page.goto(allowed.url)

        # When it creates a company, replays it and lists the companies through the API (preflights included)
        result = page.evaluate(CALL_THE_API, [cors_stack.api_url, token])

        # Then the browser lets it read every answer and the headers it needs
        assert "blocked" not in result, result
        assert result["statuses"] == [201, 201, 200]
        assert result["requestId"]
        assert result["replayed"] == "true"
        assert result["listed"] == [result["companyId"]]

        # And a page of an origin not in AllowedOrigins cannot read the API at all
        stranger = context.new_page()
        stranger.goto(other.url)
        refused = stranger.evaluate(CALL_THE_API, [cors_stack.api_url, token])
        assert "Failed to fetch" in refused.get("blocked", ""), refused
    finally:
        context.close()
