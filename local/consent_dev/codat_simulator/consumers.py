"""Codat's webhook consumers: where each event is delivered (``GET/POST /webhooks``, ``DELETE /webhooks/{id}``).

They are the client's configuration, like its API key: ``CodatSimulator.reset()`` keeps them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

# Codat's spec: "The number of webhook consumers you can create is limited to 50."
MAX_CONSUMERS = 50
MAX_COMPANY_TAGS = 10
MAX_COMPANY_TAG_LENGTH = 128

# The event types of the `webhooks:` section of Codat's spec (a contract test keeps the two the same): what a
# consumer made by `CodatSimulator.configure_webhooks` subscribes to, i.e. every event.
CODAT_EVENT_TYPES: tuple[str, ...] = (
    "company.created",
    "company.deleted",
    "company.product.added",
    "company.product.removed",
    "connection.created",
    "connection.connected",
    "connection.failed",
    "connection.disconnected",
    "connection.reconnected",
    "connection.deleted",
    "read.completed",
    "read.completed.initial",
    "{dataType}.write.successful",
    "{dataType}.write.unsuccessful",
    "client.rateLimit.reached",
    "client.rateLimit.reset",
)


class Announced(Protocol):
    """What a consumer's subscription is matched against: an event's type and its company's tags (``SimEvent``)."""

    @property
    def event_type(self) -> str: ...

    @property
    def company_tags(self) -> Mapping[str, str]: ...


@dataclass
class WebhookConsumer:
    id: str
    url: str
    event_types: list[str]
    disabled: bool = False
    company_tags: list[str] | None = None

    def receives(self, event: Announced) -> bool:
        """Whether Codat sends ``event`` to this consumer.

        Where Codat's spec is silent, the conservative reading (the one that delivers less, so nothing built on
        this simulator comes to rely on more): an empty ``eventTypes`` subscribes to nothing (the spec does not say
        it means "every event"), and with ``companyTags`` ("only messages from companies with matching tags") the
        event's company must carry every one of them, case-sensitively, as ``tagKey:tagValue``."""
        if self.disabled or event.event_type not in self.event_types:
            return False
        if self.company_tags:
            carried = {f"{key}:{value}" for key, value in event.company_tags.items()}
            return set(self.company_tags) <= carried
        return True


def consumer_json(consumer: WebhookConsumer) -> dict[str, Any]:
    """The consumer as ``GET /webhooks`` lists it (no secret: Codat shows that in its Portal only)."""
    out: dict[str, Any] = {
        "id": consumer.id,
        "url": consumer.url,
        "eventTypes": list(consumer.event_types),
        "disabled": consumer.disabled,
    }
    if consumer.company_tags is not None:
        out["companyTags"] = list(consumer.company_tags)
    return out


class WebhookConsumers:
    """The consumers, in creation order. Thread-safe, with a lock of its own: the delivery worker looks a
    consumer up while it holds the dispatcher's lock, never the simulator's."""

    def __init__(self) -> None:
        self._consumers: dict[str, WebhookConsumer] = {}
        self._lock = threading.Lock()

    def add(
        self,
        url: str,
        event_types: Sequence[str],
        *,
        disabled: bool = False,
        company_tags: Sequence[str] | None = None,
    ) -> WebhookConsumer:
        consumer = WebhookConsumer(
            str(uuid.uuid4()), url, list(event_types), disabled, None if company_tags is None else list(company_tags)
        )
        with self._lock:
            self._consumers[consumer.id] = consumer
        return replace(consumer)

    def all(self) -> list[WebhookConsumer]:
        """Copies, in creation order."""
        with self._lock:
            return [replace(consumer) for consumer in self._consumers.values()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._consumers)

    def get(self, consumer_id: str) -> WebhookConsumer | None:
        with self._lock:
            consumer = self._consumers.get(consumer_id)
            return None if consumer is None else replace(consumer)

    def delete(self, consumer_id: str) -> bool:
        with self._lock:
            return self._consumers.pop(consumer_id, None) is not None

    def disable(self, consumer_id: str) -> WebhookConsumer:
        """What Codat does after days of failed deliveries (KeyError if absent)."""
        with self._lock:
            consumer = self._consumers[consumer_id]
            consumer.disabled = True
            return replace(consumer)

    def point(self, consumer_id: str, url: str, event_types: Sequence[str]) -> WebhookConsumer:
        """The simulator's own change of a consumer (Codat's API has no update call): enabled, at ``url``."""
        with self._lock:
            consumer = self._consumers[consumer_id]
            consumer.url, consumer.event_types, consumer.disabled = url, list(event_types), False
            return replace(consumer)

    def receiving(self, event: Announced) -> list[str]:
        """The ids of the consumers ``event`` goes to."""
        with self._lock:
            return [consumer.id for consumer in self._consumers.values() if consumer.receives(event)]

    def endpoint(self, consumer_id: str) -> str | None:
        """Where a message for the consumer goes now: None once it is deleted or disabled (Codat stops sending)."""
        with self._lock:
            consumer = self._consumers.get(consumer_id)
            return None if consumer is None or consumer.disabled else consumer.url
