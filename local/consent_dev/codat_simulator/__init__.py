"""An in-memory fake of Codat's Platform API (companies, connections, integrations) with fault injection."""

from .core import CodatSimulator, Outcome, RecordedRequest, SimulatedConnectionDrop
from .faults import Fault
from .responses import SimResponse
from .state import Company, Connection, Integration, SimClock, SimEvent
from .transport import SimTransport
from .wsgi import SimServer, make_wsgi_app, serve

__all__ = [
    "CodatSimulator",
    "Company",
    "Connection",
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
    "make_wsgi_app",
    "serve",
]
