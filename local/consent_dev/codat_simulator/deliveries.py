"""Codat's webhook deliveries as Svix makes them: signed POSTs from a worker thread, retried on Codat's schedule,
one message per event and consumer."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import httpx

from consent_dev.codat_webhooks import signed

from .state import SimEvent

# Svix's schedule: the first attempt at once, then each wait follows the failure of the attempt before it.
CODAT_RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
DEFAULT_TIMEOUT = 15.0
# The worker looks for newly due work at least this often (e.g. after a test advanced the simulator's clock).
_IDLE_POLL = 0.25
_USER_AGENT = "Svix-Webhooks/1.0 (codat-simulator)"

log = logging.getLogger("consent_dev.codat_simulator")

MessageStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt: the receiver's HTTP status, or the error when there was no answer."""

    message_id: str
    event_id: str
    event_type: str
    attempt: int
    at: datetime
    status: int | None
    error: str | None
    duration: float
    consumer_id: str = ""
    url: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class WebhookMessage:
    """One event on its way to one consumer; ``message_id`` is the ``webhook-id`` of every attempt (the same for
    each consumer of the event, as Svix's message id is)."""

    message_id: str
    event: SimEvent
    body: bytes
    consumer_id: str
    status: MessageStatus = "pending"
    attempts: int = 0
    next_attempt: float = field(default=0.0, repr=False)  # time.monotonic()


@dataclass(frozen=True)
class WebhookSettings:
    """How to deliver: ``schedule[n]`` is the wait before attempt n+1, already scaled. Where: each message's
    consumer says."""

    secret: str
    schedule: tuple[float, ...]
    timeout: float
    transport: httpx.BaseTransport | None = None


def scaled_schedule(schedule: Sequence[float] | None, time_scale: float) -> tuple[float, ...]:
    waits = tuple(float(s) * time_scale for s in (CODAT_RETRY_SCHEDULE if schedule is None else schedule))
    if not waits or any(wait < 0 for wait in waits):
        raise ValueError("a retry schedule needs at least one wait, none negative")
    return waits


class WebhookDispatcher:
    """Queues events and delivers each independently, oldest due first, one attempt at a time. Thread-safe.

    ``tick`` runs on the worker before it looks for work (the simulator completes due reads there, which may queue
    more events); it returns how long until it has more to do, or None. ``endpoint`` gives a consumer's URL at the
    time of an attempt, or None once it is deleted or disabled: its pending messages then end failed, unsent."""

    def __init__(
        self,
        settings: WebhookSettings,
        tick: Callable[[], float | None] = lambda: None,
        endpoint: Callable[[str], str | None] = lambda consumer_id: None,
    ) -> None:
        self._settings = settings
        self._tick = tick
        self._endpoint = endpoint
        self._changed = threading.Condition()
        self._messages: list[WebhookMessage] = []
        self._deliveries: list[Delivery] = []
        self._in_flight = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- control ------------------------------------------------------------------------------------------------

    def configure(self, settings: WebhookSettings) -> None:
        """New delivery settings, for the messages still pending too."""
        with self._changed:
            self._settings = settings
            self._changed.notify_all()

    @property
    def settings(self) -> WebhookSettings:
        with self._changed:
            return self._settings

    def start(self) -> None:
        with self._changed:
            self._stopping = False  # also keeps a worker that a timed-out stop() left finishing its attempt
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="codat-simulator-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the attempt in flight (if any); pending messages stay pending until the next ``start``."""
        with self._changed:
            thread, self._stopping = self._thread, True
            self._changed.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._changed:
            if self._thread is thread and (thread is None or not thread.is_alive()):
                self._thread = None

    @property
    def running(self) -> bool:
        with self._changed:
            return self._thread is not None and self._thread.is_alive()

    def clear(self) -> None:
        """Drop every message and the record of attempts."""
        with self._changed:
            self._messages.clear()
            self._deliveries.clear()

    def hurry(self) -> None:
        """Make every pending message due now, whatever its retry wait."""
        now = time.monotonic()
        with self._changed:
            for message in self._messages:
                if message.status == "pending":
                    message.next_attempt = min(message.next_attempt, now)
            self._changed.notify_all()

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def advance(self, seconds: float) -> None:
        """As if ``seconds`` more had passed: every pending message's wait is that much shorter (the simulator's
        clock moved forward), so a retry due by then is attempted now, in the order they were due."""
        with self._changed:
            for message in self._messages:
                if message.status == "pending":
                    message.next_attempt -= seconds
            self._changed.notify_all()

    # --- queue and records --------------------------------------------------------------------------------------

    def enqueue(self, event: SimEvent, consumer_ids: Sequence[str]) -> list[WebhookMessage]:
        """One message for each consumer the event goes to, under one message id."""
        body = json.dumps(event.body, separators=(",", ":")).encode()
        message_id = f"msg_{uuid.uuid4().hex}"
        messages = [WebhookMessage(message_id, event, body, consumer_id) for consumer_id in consumer_ids]
        with self._changed:
            for message in messages:
                message.next_attempt = time.monotonic() + self._settings.schedule[0]
                self._messages.append(message)
            self._changed.notify_all()
        return messages

    @property
    def deliveries(self) -> list[Delivery]:
        with self._changed:
            return list(self._deliveries)

    @property
    def messages(self) -> list[WebhookMessage]:
        """Copies: the worker keeps changing the originals."""
        with self._changed:
            return [replace(message) for message in self._messages]

    @property
    def busy(self) -> bool:
        """Whether a message is still pending or an attempt is in flight."""
        with self._changed:
            return self._in_flight or any(m.status == "pending" for m in self._messages)

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    # --- the worker ---------------------------------------------------------------------------------------------

    def _run(self) -> None:
        client: httpx.Client | None = None
        client_for: WebhookSettings | None = None
        try:
            while True:
                more_in = self._safe_tick()
                with self._changed:
                    if self._stopping:
                        return
                    self._drop_orphans()
                    message, wait = self._next_due(time.monotonic())
                    if message is None:
                        waits = [w for w in (wait, more_in, _IDLE_POLL) if w is not None]
                        self._changed.wait(max(0.0, min(waits)))
                        continue
                    url = self._endpoint(message.consumer_id)
                    if url is None:
                        continue  # its consumer went since _drop_orphans: dropped on the next turn
                    message.attempts += 1
                    attempt, settings = message.attempts, self._settings
                    self._in_flight = True
                if client is None or client_for is not settings:
                    if client is not None:
                        client.close()
                    client, client_for = _client(settings), settings
                delivery = _attempt(client, settings, message, attempt, url)
                self._record(message, delivery, settings)
        finally:
            if client is not None:
                client.close()

    def _safe_tick(self) -> float | None:
        # Outside our lock: the tick takes the simulator's lock, under which enqueue() is called.
        try:
            return self._tick()
        except Exception:  # a bug there must not stop deliveries
            log.exception("the simulator's delivery tick failed")
            return None

    def _drop_orphans(self) -> None:
        # Under our lock. Codat sends nothing more to a consumer once it is deleted or disabled: its pending
        # messages end failed, unsent, now rather than at their next attempt. (`endpoint` takes the consumers' own
        # lock, never the simulator's.)
        for message in self._messages:
            if message.status == "pending" and self._endpoint(message.consumer_id) is None:
                message.status = "failed"
                self._changed.notify_all()
                log.info(
                    "webhook %s %s: its consumer is deleted or disabled, not sent",
                    message.event.event_type,
                    message.message_id,
                )

    def _next_due(self, now: float) -> tuple[WebhookMessage | None, float | None]:
        pending = [m for m in self._messages if m.status == "pending"]
        if not pending:
            return None, None
        first = min(pending, key=lambda m: m.next_attempt)  # min() keeps the oldest of equals: generation order
        if first.next_attempt <= now:
            return first, None
        return None, first.next_attempt - now

    def _record(self, message: WebhookMessage, delivery: Delivery, settings: WebhookSettings) -> None:
        with self._changed:
            self._deliveries.append(delivery)
            self._in_flight = False
            if delivery.succeeded:
                message.status = "delivered"
            elif delivery.attempt >= len(settings.schedule):
                message.status = "failed"
            else:
                message.next_attempt = time.monotonic() + settings.schedule[delivery.attempt]
            self._changed.notify_all()
        outcome = delivery.status if delivery.status is not None else delivery.error
        if message.status == "failed":
            log.warning(
                "webhook %s %s: attempt %d → %s; no attempts left, marked failed",
                message.event.event_type, message.message_id, delivery.attempt, outcome,
            )  # fmt: skip
        else:
            log.info(
                "webhook %s %s: attempt %d → %s",
                message.event.event_type,
                message.message_id,
                delivery.attempt,
                outcome,
            )


def _client(settings: WebhookSettings) -> httpx.Client:
    # Redirects are not followed: Svix counts a 3xx as a failed attempt.
    return httpx.Client(timeout=settings.timeout, follow_redirects=False, transport=settings.transport)


def _attempt(
    client: httpx.Client, settings: WebhookSettings, message: WebhookMessage, attempt: int, url: str
) -> Delivery:
    # Same webhook-id on every attempt; a fresh timestamp and signature each time, as Svix signs per attempt.
    body, headers = signed(message.body, settings.secret, message_id=message.message_id)
    headers["user-agent"] = _USER_AGENT
    at, started = datetime.now(UTC), time.monotonic()
    status: int | None = None
    error: str | None = None
    try:
        status = client.post(url, content=body, headers=headers).status_code
    except httpx.TimeoutException as timeout:
        error = f"timeout after {settings.timeout:g} s ({type(timeout).__name__})"
    except httpx.HTTPError as failure:
        error = f"{type(failure).__name__}: {failure}"
    except Exception as failure:  # e.g. an unusable URL: a failed attempt, not a dead worker
        error = f"{type(failure).__name__}: {failure}"
    event = message.event
    return Delivery(
        message.message_id,
        event.id,
        event.event_type,
        attempt,
        at,
        status,
        error,
        time.monotonic() - started,
        message.consumer_id,
        url,
    )
