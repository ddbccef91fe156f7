"""Which integrations a customer can choose: Codat's enabled ones, cached in memory for minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import Field

from consent.codat.client import CodatClient
from consent.codat.errors import CodatError
from consent.domain.resources import Resource, SourceType
from consent.observability import logger
from consent.usecases import quotas

if TYPE_CHECKING:
    from consent.services import Services

# When Codat fails, a cached list this old is still better than an error (integrations change rarely).
_STALE_FOR_SECONDS = 24 * 3600


class Integration(Resource):
    platform_key: str
    name: str
    source_type: SourceType
    logo_url: str


class IntegrationList(Resource):
    items: list[Integration] = Field(default_factory=list)


class IntegrationCatalog:
    """Codat's enabled integrations of the source types we serve, fetched at most once per `ttl` seconds
    per Lambda container (all pages at once), so a busy app spends almost no Codat quota."""

    def __init__(self, codat: CodatClient, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._codat = codat
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._items: list[Integration] | None = None
        self._fetched_at = 0.0

    def all(self) -> list[Integration]:
        with self._lock:
            age = self._clock() - self._fetched_at
            if self._items is not None and age < self._ttl:
                return self._items
            try:
                self._items = [
                    Integration(platform_key=i.key, name=i.name, source_type=source_type, logo_url=i.logo_url)
                    for i in self._codat.list_integrations()
                    if i.enabled and (source_type := SourceType.from_codat(i.source_type)) is not None
                ]
            except CodatError:
                if self._items is None or age > _STALE_FOR_SECONDS:
                    raise
                logger.warning("serving cached integrations: Codat failed", extra={"age_seconds": round(age)})
                return self._items
            self._fetched_at = self._clock()
            return self._items

    def of_type(self, source_type: SourceType | None) -> list[Integration]:
        return [i for i in self.all() if source_type is None or i.source_type == source_type]

    def get(self, platform_key: str) -> Integration | None:
        return next((i for i in self.all() if i.platform_key == platform_key), None)


def list_integrations(services: Services, customer_id: str, source_type: SourceType | None) -> IntegrationList:
    """The enabled integrations (from the cache; Codat when it is stale): a request that may reach Codat."""
    quotas.spend_codat_allowance(services, customer_id)
    return IntegrationList(items=services.integrations.of_type(source_type))
