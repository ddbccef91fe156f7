"""In-memory fakes of the product's I/O ports (Codat, the event publisher; the store's is
`consent_dev.fake_store`), so that the bench can time a handler's own work: everything a request costs except its
network calls."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from consent.codat.errors import CodatNotFound
from consent.codat.models import CodatCompany, CodatConnection, CodatIntegration, CompanyAccessToken
from consent.events import CloudEvent
from consent.publisher import EventPublisher, PublishFailure
from consent_dev.codat_simulator.catalogue import default_integrations

# -- Codat -------------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeCodat:
    """Codat's API as the product's `CodatClient` presents it, in memory. It also plays the customer's side
    that `consent_dev.budget.World` needs (`integrations`, `set_connection_status`), like the simulator."""

    def __init__(self) -> None:
        self.integrations = default_integrations()
        self._companies: dict[str, CodatCompany] = {}
        self._connections: dict[tuple[str, str], CodatConnection] = {}
        self._by_key: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self.calls = 0

    def _id(self) -> str:
        return str(uuid.UUID(int=next(self._ids)))

    def create_company(
        self, *, name: str, description: str | None, tags: Mapping[str, str], idempotency_key: str
    ) -> CodatCompany:
        self.calls += 1
        if idempotency_key not in self._by_key:
            company = CodatCompany(id=self._id(), name=name, description=description, tags=dict(tags))
            self._companies[company.id] = company
            self._by_key[idempotency_key] = company
        found: CodatCompany = self._by_key[idempotency_key]
        return found

    def find_companies_by_tags(self, tags: Mapping[str, str]) -> list[CodatCompany]:
        self.calls += 1
        return [c for c in self._companies.values() if all(c.tags.get(k) == v for k, v in tags.items())]

    def get_company(self, company_id: str) -> CodatCompany:
        self.calls += 1
        return self._company(company_id)

    def delete_company(self, company_id: str) -> None:
        self.calls += 1
        self._companies.pop(self._company(company_id).id)

    def get_access_token(self, company_id: str) -> CompanyAccessToken:
        self.calls += 1
        self._company(company_id)
        return CompanyAccessToken(access_token=uuid.uuid4().hex, expires_in=3600)

    def create_connection(self, company_id: str, *, platform_key: str, idempotency_key: str) -> CodatConnection:
        self.calls += 1
        if idempotency_key not in self._by_key:
            integration = self.integrations[platform_key]
            connection = CodatConnection(
                id=self._id(),
                integration_key=platform_key,
                source_type=integration.source_type,
                platform_name=integration.name,
                link_url=f"https://link.example.test/{company_id}",
                status="PendingAuth",
                created=datetime.now(UTC),
            )
            self._connections[(self._company(company_id).id, connection.id)] = connection
            self._by_key[idempotency_key] = connection
        found: CodatConnection = self._by_key[idempotency_key]
        return found

    def get_connection(self, company_id: str, connection_id: str) -> CodatConnection:
        self.calls += 1
        return self._connection(company_id, connection_id)

    def list_connections(self, company_id: str) -> list[CodatConnection]:
        self.calls += 1
        return [c for (owner, _), c in self._connections.items() if owner == company_id]

    def unlink_connection(
        self, company_id: str, connection_id: str, *, idempotency_key: str | None = None
    ) -> CodatConnection:
        self.calls += 1
        return self.set_connection_status(company_id, connection_id, "Unlinked")

    def list_integrations(self, source_type: str | None = None) -> list[CodatIntegration]:
        self.calls += 1
        return [
            CodatIntegration(key=i.key, name=i.name, logo_url="", enabled=i.enabled, source_type=i.source_type)
            for i in self.integrations.values()
            if source_type is None or i.source_type == source_type
        ]

    def set_connection_status(self, company_id: str, connection_id: str, status: str) -> CodatConnection:
        """What the customer does on Codat's link page (or in their accounting software)."""
        changed = self._connection(company_id, connection_id).model_copy(update={"status": status})
        self._connections[(company_id, connection_id)] = changed
        return changed

    def _company(self, company_id: str) -> CodatCompany:
        if company_id not in self._companies:
            raise CodatNotFound(f"no company {company_id}", status=404)
        return self._companies[company_id]

    def _connection(self, company_id: str, connection_id: str) -> CodatConnection:
        if (company_id, connection_id) not in self._connections:
            raise CodatNotFound(f"no connection {connection_id}", status=404)
        return self._connections[(company_id, connection_id)]


# -- events out --------------------------------------------------------------------------------------------


class FakePublisher(EventPublisher):
    """Takes every event; keeps only the count."""

    def __init__(self) -> None:
        self.published = 0

    def publish(self, events: Sequence[CloudEvent]) -> list[PublishFailure]:
        self.published += len(events)
        return []
