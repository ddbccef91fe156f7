"""The simulator's own control routes under ``/_simulator/``: not Codat's API, so no API key and no spec checks.

- ``POST /_simulator/companies/{companyId}/connections/{connectionId}/deauthorize``: the platform revokes access
  (Deauthorized, ``connection.disconnected``), to rehearse re-consent; answers the connection as Codat shows it.
- ``POST /_simulator/webhooks/flush?timeout=5``: complete pending reads and deliver every pending webhook now,
  retrying without Codat's waits until each is delivered or out of attempts (at most ``timeout`` seconds, ≤ 30);
  answers ``drained`` and the delivery summary.
- ``GET /_simulator/webhooks``: the webhook consumers, and every message with its consumer and attempts.
- ``POST /_simulator/webhooks/{webhookId}/disable``: Codat disables the consumer, as it does after days of failed
  deliveries (nothing more is sent to it; Codat's API can only delete it); answers it as ``GET /webhooks`` lists it.
- ``POST /_simulator/sdk-faults`` (JSON, all optional: ``{"status": 503, "times": 1, "message": "…"}``; ``times``
  null: until cleared): the Link/Connections SDK stand-in's next calls to its API fail with that status and Codat's
  error body, so the components call ``onError``; ``DELETE /_simulator/sdk-faults`` clears them.
- ``POST /_simulator/companies/{companyId}/data/{dataType}/fail`` (JSON, all optional: ``{"status": "FetchError",
  "times": 1}``): the company's next ``times`` reads of that data type end with ``status`` (a pull operation status
  other than Complete or one of a read under way), in ``dataStatus`` and ``read.completed``; answers 201 with what
  was armed. ``DELETE`` on the same route disarms it (204).
- ``POST /_simulator/reads/complete``: complete every pending read now (first reads and queued ones), each with its
  ``read.completed(.initial)``; answers ``{"completed": [pull operations]}``.
- ``GET /_simulator/companies/{companyId}/data``: the company's ``queueRequests`` (``{"total", "byDataType"}``: every
  queue request received, refused and faulted ones too), ``dataStatus``, ``datasets`` (pull operations),
  ``pendingReads`` and ``failNext`` (the endings armed per data type).
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
_FAIL_READ = re.compile(r"/_simulator/companies/(?P<company_id>[^/]+)/data/(?P<data_type>[^/]+)/fail/?")
_COMPANY_DATA = re.compile(r"/_simulator/companies/(?P<company_id>[^/]+)/data/?")


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

    def inject_sdk_fault(self, status: int = 503, *, times: int | None = 1, message: str | None = None) -> object: ...

    def clear_sdk_faults(self) -> None: ...

    def fail_next_read(
        self, company_id: str, data_type: str, status: str = "FetchError", *, times: int = 1
    ) -> None: ...

    def clear_read_failures(self, company_id: str, data_type: str | None = None) -> None: ...

    def complete_reads(self) -> list[dict[str, Any]]: ...

    def data_summary(self, company_id: str) -> dict[str, Any]: ...


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
    fail_read = _FAIL_READ.fullmatch(request.path)
    if fail_read is not None:
        return _fail_read(sim, request, fail_read["company_id"], fail_read["data_type"])
    company_data = _COMPANY_DATA.fullmatch(request.path)
    if company_data is not None:
        if request.method != "GET":
            return _error(405, "Use GET.", {"Allow": "GET"})
        try:
            return json_response(200, sim.data_summary(company_data["company_id"]))
        except KeyError:
            return _error(404, f"No company {company_data['company_id']}")
    if path == "/_simulator/reads/complete":
        if request.method != "POST":
            return _error(405, "Use POST.", {"Allow": "POST"})
        return json_response(200, {"completed": sim.complete_reads()})
    if path == "/_simulator/sdk-faults":
        return _sdk_faults(sim, request)
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


def _sdk_faults(sim: Controlled, request: SimRequest) -> SimResponse:
    if request.method == "DELETE":
        sim.clear_sdk_faults()
        return SimResponse(204, {"Content-Length": "0"}, b"")
    if request.method != "POST":
        return _error(405, "Use POST or DELETE.", {"Allow": "POST, DELETE"})
    body = request.json if request.body else {}
    if request.json_error or not isinstance(body, dict):
        return _error(400, 'Send a JSON object: {"status": 503, "times": 1, "message": "..."}')
    status, times, message = body.get("status", 503), body.get("times", 1), body.get("message")
    problems = []
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        problems.append("status must be an HTTP error status (400-599)")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        problems.append("times must be a positive whole number, or null (until cleared)")
    if message is not None and not isinstance(message, str):
        problems.append("message must be a string")
    if problems:
        return _error(400, "; ".join(problems))
    sim.inject_sdk_fault(status, times=times, message=message)
    return json_response(201, {"status": status, "times": times, "message": message})


def _fail_read(sim: Controlled, request: SimRequest, company_id: str, data_type: str) -> SimResponse:
    if request.method not in ("POST", "DELETE"):
        return _error(405, "Use POST or DELETE.", {"Allow": "POST, DELETE"})
    try:
        if request.method == "DELETE":
            sim.clear_read_failures(company_id, data_type)
            return SimResponse(204, {"Content-Length": "0"}, b"")
        body = request.json if request.body else {}
        if request.json_error or not isinstance(body, dict):
            return _error(400, 'Send a JSON object: {"status": "FetchError", "times": 1}')
        status, times = body.get("status", "FetchError"), body.get("times", 1)
        if not isinstance(status, str) or not isinstance(times, int) or isinstance(times, bool):
            return _error(400, "status must be a string and times a whole number")
        sim.fail_next_read(company_id, data_type, status, times=times)
    except KeyError:
        return _error(404, f"No company {company_id}")
    except ValueError as error:
        return _error(400, str(error))
    return json_response(201, {"companyId": company_id, "dataType": data_type, "status": status, "times": times})


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
