"""Codat's webhook consumer for our receiver: is there one, enabled, for every event type it handles (`check`)?
Make it so (`ensure`): Codat has no update call, so a new consumer is created first, then the stale ones deleted.

Only consumers for exactly our webhook URL are ever looked at or touched: the client's others are someone else's."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from consent.codat.client import CodatClient
from consent.codat.errors import CodatError, CodatNotFound
from consent.codat.models import WebhookConsumer
from consent.usecases.webhooks import HANDLED_EVENT_TYPES


class ConsumerStatus(StrEnum):
    HEALTHY = "healthy"  # an enabled consumer for the URL receives every handled event type of every company
    MISSING = "missing"  # Codat has no consumer for the URL
    DISABLED = "disabled"  # every consumer for the URL is disabled (Codat does so after days of failed deliveries)
    SHORT_OF_EVENT_TYPES = "short_of_event_types"  # enabled, but lacking some handled event types
    FILTERED = "filtered_by_company_tags"  # enabled with every type, but only for companies with certain tags


def _receives_everything(consumer: WebhookConsumer) -> bool:
    # An empty `eventTypes` is not taken to mean "every event": Codat's spec does not say so. Such a consumer is
    # short of every type, and replaced by one that names them (which is right whatever Codat makes of it).
    return set(consumer.event_types) >= HANDLED_EVENT_TYPES


def _healthy(consumer: WebhookConsumer) -> bool:
    return not consumer.disabled and not consumer.company_tags and _receives_everything(consumer)


@dataclass(frozen=True)
class ConsumerCheck:
    """What Codat has for our webhook URL. `consumers` are those for exactly this URL, as Codat listed them."""

    url: str
    consumers: tuple[WebhookConsumer, ...]
    handled: frozenset[str] = HANDLED_EVENT_TYPES

    @property
    def healthy(self) -> tuple[WebhookConsumer, ...]:
        return tuple(c for c in self.consumers if _healthy(c))

    @property
    def stale(self) -> tuple[WebhookConsumer, ...]:
        """The URL's consumers that are not healthy: what `ensure` deletes once a healthy one exists."""
        return tuple(c for c in self.consumers if not _healthy(c))

    @property
    def status(self) -> ConsumerStatus:
        if self.healthy:
            return ConsumerStatus.HEALTHY
        if not self.consumers:
            return ConsumerStatus.MISSING
        enabled = [c for c in self.consumers if not c.disabled]
        if not enabled:
            return ConsumerStatus.DISABLED
        if any(_receives_everything(c) for c in enabled):
            return ConsumerStatus.FILTERED
        return ConsumerStatus.SHORT_OF_EVENT_TYPES

    @property
    def is_healthy(self) -> bool:
        return self.status is ConsumerStatus.HEALTHY

    @property
    def missing(self) -> bool:
        return self.status is ConsumerStatus.MISSING

    @property
    def disabled(self) -> tuple[str, ...]:
        """The ids of the URL's disabled consumers."""
        return tuple(c.id for c in self.consumers if c.disabled)

    @property
    def short_of(self) -> frozenset[str]:
        """The handled event types that the URL's best enabled consumer lacks (none when healthy, missing or all
        disabled): the one with most of them, the first listed of equals."""
        if self.status is not ConsumerStatus.SHORT_OF_EVENT_TYPES:
            return frozenset()
        enabled = [c for c in self.consumers if not c.disabled]
        best = max(enabled, key=lambda c: len(self.handled & set(c.event_types)))
        return frozenset(self.handled - set(best.event_types))

    @property
    def several(self) -> bool:
        """More than one consumer for the URL. Healthy ones are never deleted (any of them may be the one whose
        signing secret the stack holds): an operator removes the extra ones in Codat's Portal."""
        return len(self.consumers) > 1

    def to_dict(self) -> dict[str, object]:
        """For logs and reports: the URL, ids, flags and event type names (Codat's API holds no secret)."""
        return {
            "url": self.url,
            "status": self.status.value,
            "consumers": [c.id for c in self.consumers],
            "healthy": [c.id for c in self.healthy],
            "disabled": list(self.disabled),
            "short_of": sorted(self.short_of),
            "several": self.several,
        }


def check(codat: CodatClient, webhook_url: str) -> ConsumerCheck:
    """One `GET /webhooks`: Codat's consumers for exactly `webhook_url`, judged. Codat's failures are raised."""
    return ConsumerCheck(webhook_url, tuple(c for c in codat.list_webhook_consumers() if c.url == webhook_url))


@dataclass
class ConsumerSetup:
    """What `ensure` found and did. `failure` is the Codat error that stopped it: what is listed was done, and
    running `ensure` again finishes the rest (it creates only when no healthy consumer exists)."""

    url: str
    found: ConsumerCheck | None = None
    created: WebhookConsumer | None = None
    deleted: list[WebhookConsumer] = field(default_factory=list)
    failure: CodatError | None = None

    @property
    def done(self) -> bool:
        return self.failure is None

    @property
    def changed(self) -> bool:
        return self.created is not None or bool(self.deleted)


def ensure(codat: CodatClient, webhook_url: str) -> ConsumerSetup:
    """A healthy consumer for `webhook_url`, and no stale one beside it. Idempotent: with a healthy consumer and
    no stale one, nothing is sent but the listing. Otherwise a consumer with exactly the handled event types is
    created first (so deliveries never stop), then the URL's stale consumers (disabled, short of types, filtered by
    company tags) are deleted. Consumers for other URLs are never touched."""
    setup = ConsumerSetup(webhook_url)
    try:
        setup.found = found = check(codat, webhook_url)
        if not found.is_healthy:
            # A key of this run only: the client's retries of the POST are then safe, and a later run whose
            # listing finds this consumer does not create another.
            setup.created = codat.create_webhook_consumer(
                url=webhook_url, event_types=sorted(HANDLED_EVENT_TYPES), idempotency_key=str(uuid.uuid4())
            )
        for stale in found.stale:
            # Gone already (deleted in the Portal, or by an earlier run whose answer was lost): as good.
            with contextlib.suppress(CodatNotFound):
                codat.delete_webhook_consumer(stale.id)
            setup.deleted.append(stale)
    except CodatError as error:
        setup.failure = error
    return setup
