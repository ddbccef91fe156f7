"""A fake of Codat: its Platform API (companies, connections, integrations, webhook consumers, reads of data types and
their status) with fault injection, its Link pages, and its signed webhook deliveries."""

from .consumers import CODAT_EVENT_TYPES, WebhookConsumer
from .control import ConnectionStateError
from .core import CodatSimulator, RecordedRequest, SimulatedConnectionDrop
from .deliveries import CODAT_RETRY_SCHEDULE, Delivery, WebhookMessage
from .faults import Fault
from .responses import SimResponse
from .serving import Outcome
from .state import Company, Connection, Integration, SimClock, SimEvent
from .transport import SimTransport
from .wsgi import SimServer, make_wsgi_app, serve

__all__ = [
    "CODAT_EVENT_TYPES",
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
    "WebhookConsumer",
    "WebhookMessage",
    "make_wsgi_app",
    "serve",
]
