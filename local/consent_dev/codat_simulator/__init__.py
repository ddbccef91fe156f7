"""A fake of Codat: its Platform API (companies, connections, integrations) with fault injection, its Link pages,
and its signed webhook deliveries."""

from .control import ConnectionStateError
from .core import CodatSimulator, Outcome, RecordedRequest, SimulatedConnectionDrop
from .deliveries import CODAT_RETRY_SCHEDULE, Delivery, WebhookMessage
from .faults import Fault
from .responses import SimResponse
from .state import Company, Connection, Integration, SimClock, SimEvent
from .transport import SimTransport
from .wsgi import SimServer, make_wsgi_app, serve

__all__ = [
    "CODAT_RETRY_SCHEDULE",
    "CodatSimulator",
    "Company",
    "Connection",
    "ConnectionStateError",
    "Delivery",
    "Fault",
    "Integration",
    "Outcome",
    "RecordedRequest",
    "SimClock",
    "SimEvent",
    "SimResponse",
    "SimServer",
    "SimTransport",
    "SimulatedConnectionDrop",
    "WebhookMessage",
    "make_wsgi_app",
    "serve",
]
