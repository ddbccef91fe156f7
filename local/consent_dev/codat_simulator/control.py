"""The simulator's own control routes under ``/_simulator/``: not Codat's API, so no API key and no spec checks.

- ``POST /_simulator/companies/{companyId}/connections/{connectionId}/deauthorize``: the platform revokes access
  (Deauthorized, ``connection.disconnected``), to rehearse re-consent; answers the connection as Codat shows it.
- ``POST /_simulator/webhooks/flush?timeout=5``: complete pending first reads and deliver every pending webhook now,
  retrying without Codat's waits until each is delivered or out of attempts (at most ``timeout`` seconds, ≤ 30);
  answers ``drained`` and the delivery summary.
- ``GET /_simulator/webhooks``: the webhook consumers, and every message with its consumer and attempts.
- ``POST /_simulator/webhooks/{webhookId}/disable``: Codat disables the consumer, as it does after days of failed
  deliveries (nothing more is sent to it; Codat's API can only delete it); answers it as ``GET /webhooks`` lists it.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from .api import SimRequest
from .consumers import WebhookConsumer, consumer_json
from .deliveries import Delivery, WebhookMessage
from .responses import CodatError, SimResponse, json_response

CONTROL_PREFIX = "/_simulator/"
MAX_FLUSH_WAIT = 30.0
_DEFAULT_FLUSH_WAIT = 5.0
_SERVICE = "CodatSimulator"

_DEAUTHORIZE = re.compile(
    r"/_simulator/companies/(?P<company_id>[^/]+)/connections/(?P<connection_id>[^/]+)/deauthorize/?"
)
_DISABLE_CONSUMER = re.compile(r"/_simulator/webhooks/(?P<consumer_id>[^/]+)/disable/?")


class ConnectionStateError(Exception):
    """The connection is not in a status the requested change applies to."""


class Controlled(Protocol):
    """What the control routes act on and report: the simulator (a Protocol, as the simulator imports this)."""

    @property
    def deliveries(self) -> list[Delivery]: ...

    @property
    def webhook_messages(self) -> list[WebhookMessage]: ...

    @property
    def webhook_consumers(self) -> list[WebhookConsumer]: ...

    @property
    def webhook_url(self) -> str | None: ...

    @property
    def delivering(self) -> bool: ...

    def deauthorize(self, company_id: str, connection_id: str) -> object: ...

    def get_connection(self, company_id: str, connection_id: str) -> dict[str, Any]: ...

    def disable_webhook_consumer(self, consumer_id: str) -> WebhookConsumer: ...

    def flush_deliveries(self, timeout: float = 5.0, *, hurry: bool = False) -> bool: ...


def is_control_path(path: str) -> bool:
    return path == CONTROL_PREFIX.rstrip("/") or path.startswith(CONTROL_PREFIX)


def handle_control(sim: Controlled, request: SimRequest) -> SimResponse:
    """Serve one control request; called without the simulator's lock (a flush waits for the worker)."""
    deauthorize = _DEAUTHORIZE.fullmatch(request.path)
    path = request.path.rstrip("/")
    if deauthorize is not None:
        if request.method != "POST":
            return _error(405, "Use POST.", {"Allow": "POST"})
        company_id, connection_id = deauthorize["company_id"], deauthorize["connection_id"]
        try:
            sim.deauthorize(company_id, connection_id)
        except KeyError:
            return _error(404, f"No connection {connection_id} in company {company_id}")
        except ConnectionStateError as error:
            return _error(409, str(error))
        return json_response(200, sim.get_connection(company_id, connection_id))
    disable = _DISABLE_CONSUMER.fullmatch(request.path)
    if disable is not None:
        if request.method != "POST":
            return _error(405, "Use POST.", {"Allow": "POST"})
        try:
            return json_response(200, consumer_json(sim.disable_webhook_consumer(disable["consumer_id"])))
        except KeyError:
            return _error(404, f"No webhook consumer {disable['consumer_id']}")
    if path == "/_simulator/webhooks/flush":
        if request.method != "POST":
            return _error(405, "Use POST.", {"Allow": "POST"})
        try:
            timeout = min(float(request.query.get("timeout", _DEFAULT_FLUSH_WAIT)), MAX_FLUSH_WAIT)
        except ValueError:
            return _error(400, "timeout must be a number of seconds")
        drained = sim.flush_deliveries(max(timeout, 0.0), hurry=True)
        return json_response(200, {"drained": drained, **webhooks_summary(sim)})
    if path == "/_simulator/webhooks":
        if request.method != "GET":
            return _error(405, "Use GET.", {"Allow": "GET"})
        return json_response(200, webhooks_summary(sim))
    return _error(404, f"No simulator control route at {request.path}")


def webhooks_summary(sim: Controlled) -> dict[str, Any]:
    attempts: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for delivery in sim.deliveries:
        attempts.setdefault((delivery.message_id, delivery.consumer_id), []).append(
            {
                "attempt": delivery.attempt,
                "at": delivery.at.isoformat(),
                "url": delivery.url,
                "status": delivery.status,
                "error": delivery.error,
                "seconds": round(delivery.duration, 3),
            }
        )
    messages = [
        {
            "messageId": message.message_id,
            "eventId": message.event.id,
            "eventType": message.event.event_type,
            "consumerId": message.consumer_id,
            "status": message.status,
            "attempts": attempts.get((message.message_id, message.consumer_id), []),
        }
        for message in sim.webhook_messages
    ]
    return {
        "url": sim.webhook_url,
        "delivering": sim.delivering,
        "consumers": [consumer_json(consumer) for consumer in sim.webhook_consumers],
        "messages": messages,
    }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> SimResponse:
    return CodatError(status, message, service=_SERVICE, headers=headers).response()
