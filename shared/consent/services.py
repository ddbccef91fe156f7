"""Wiring: the ports a use case needs, built once per Lambda container from the settings.

Handlers take an optional `Services` so that tests and the local server can pass their own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import time
from collections.abc import Callable
from datetime import datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from consent.domain.journeys import JourneyCatalog, load_catalog
from consent.domain.resources import utc_now
from consent.settings import Settings, SettingsError, get_settings
from consent.store import ConsentStore

if TYPE_CHECKING:
    from consent.codat.client import CodatClient
    from consent.publisher import EventPublisher
    from consent.usecases.integrations import IntegrationCatalog


# SHA-256 of the key of `make dev`'s documented webhook secret (consent_dev.codat_webhooks.DEV_WEBHOOK_SECRET).
_DEV_WEBHOOK_KEY_SHA256 = "3ce2a8ee278d392d6c8aca5f8c2fc9c4a1c6184c416337b7956f9d89bc2253b6"


def _in_aws_lambda() -> bool:
    """Deployed: Lambda's own runtime sets AWS_EXECUTION_ENV (`make dev` and the tests do not)."""
    return os.environ.get("AWS_EXECUTION_ENV", "").startswith("AWS_Lambda_")


class Services:
    """The ports of one process. Each is built on first use, so a function pays only for what it uses
    (the status function never creates an HTTP client); tests and the local server pass their own."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ConsentStore | None = None,
        codat: CodatClient | None = None,
        catalog: JourneyCatalog | None = None,
        publisher: EventPublisher | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.clock = clock
        # Seconds the current invocation has left; set per request from the Lambda context.
        self.time_left: Callable[[], float] | None = None
        self._webhook_secret_seen: str | None = None
        self._webhook_keys: list[bytes] = []
        if store is not None:
            self.store = store
        if codat is not None:
            self.codat = codat
        if catalog is not None:
            self.catalog = catalog
        if publisher is not None:
            self.publisher = publisher

    @cached_property
    def store(self) -> ConsentStore:
        from consent.store.dynamodb import DynamoDBConsentStore  # noqa: PLC0415 - first use only

        return DynamoDBConsentStore(
            aws_client("dynamodb"),
            self.settings.table_name,
            idempotency_ttl_hours=self.settings.idempotency_ttl_hours,
        )

    @cached_property
    def codat(self) -> CodatClient:
        from consent.codat.client import CodatClient  # noqa: PLC0415 - httpx only where Codat is called

        settings = self.settings
        return CodatClient(
            base_url=settings.codat_base_url,
            api_key=codat_api_key_provider(settings, self.secrets),
            connect_timeout=settings.codat_connect_timeout,
            read_timeout=settings.codat_read_timeout,
            retry_budget=settings.codat_retry_budget,
            max_attempts=settings.codat_max_attempts,
            time_left=lambda: self.time_left() if self.time_left is not None else None,
        )

    @cached_property
    def integrations(self) -> IntegrationCatalog:
        from consent.usecases.integrations import IntegrationCatalog  # noqa: PLC0415

        return IntegrationCatalog(self.codat, ttl=self.settings.integrations_cache_seconds)

    @cached_property
    def secrets(self) -> SecretReader:
        return SecretReader(lambda: aws_client("secretsmanager"), max_age=self.settings.secrets_cache_seconds)

    def webhook_keys(self) -> list[bytes]:
        """The HMAC keys of Codat's webhook secret(s): CODAT_WEBHOOK_SECRET locally, else Secrets Manager
        (cached for `secrets_cache_seconds`; a rotation holds two secrets, space-separated)."""
        from consent.webhooks.signature import parse_secrets  # noqa: PLC0415

        value = self.settings.webhook_secret
        if not value:
            if not self.settings.webhook_secret_name:
                raise SettingsError("set CODAT_WEBHOOK_SECRET_NAME (or CODAT_WEBHOOK_SECRET for local runs)")
            value = self.secrets(self.settings.webhook_secret_name)
        if value != self._webhook_secret_seen:
            keys = parse_secrets(value)
            if _in_aws_lambda() and any(hashlib.sha256(key).hexdigest() == _DEV_WEBHOOK_KEY_SHA256 for key in keys):
                # Anyone can sign with the documented development secret: a deployed stack never accepts it.
                raise SettingsError("the webhook secret is the documented development one: put Codat's own")
            self._webhook_keys = keys
            self._webhook_secret_seen = value
        return self._webhook_keys

    def customer_ref(self, customer_id: str) -> str:
        """What Codat keeps of our customer on her company (a tag): HMAC-SHA256 of her id under a key of this
        deployment (CUSTOMER_REF_KEY locally, else the Secrets Manager secret, cached). Her id (a JWT claim, often
        an e-mail address) never leaves the bank, and nobody without the key can tell whose company it is."""
        key = self.settings.customer_ref_key
        if not key:
            if not self.settings.customer_ref_key_secret:
                raise SettingsError("set CUSTOMER_REF_KEY_SECRET_NAME (or CUSTOMER_REF_KEY for local runs)")
            key = self.secrets(self.settings.customer_ref_key_secret).strip()
        return hmac.new(key.encode(), customer_id.encode(), hashlib.sha256).hexdigest()

    @cached_property
    def catalog(self) -> JourneyCatalog:
        return load_catalog(self.settings.journeys_file)

    @cached_property
    def publisher(self) -> EventPublisher:
        from consent.publisher import SnsEventPublisher  # noqa: PLC0415 - only the outbox relay publishes

        if not self.settings.topic_arn:
            raise SettingsError("set CONSENT_TOPIC_ARN")
        return SnsEventPublisher(aws_client("sns"), self.settings.topic_arn)


def aws_client(service: str) -> Any:
    """A boto3 client with short timeouts and botocore's standard retry mode (3 attempts, throttling
    included), so that AWS trouble ends well inside an API function's timeout."""
    import boto3  # noqa: PLC0415 - first use only
    from botocore.config import Config  # noqa: PLC0415

    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
    return boto3.client(service, config=config)  # type: ignore[call-overload]


class SecretReader:
    """Secrets Manager values, each cached for `max_age` seconds, read with the product's own client.

    Not Powertools' `get_secret`: it builds a second botocore session (loading botocore's endpoint and model
    files again) and imports every parameter provider, about 100 ms of each cold start (`make bench`)."""

    def __init__(
        self, client: Callable[[], Any], *, max_age: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._max_age = max_age
        self._clock = clock
        self._cached: dict[str, tuple[str, float]] = {}

    @cached_property
    def _secretsmanager(self) -> Any:
        return self._client()

    def __call__(self, name: str) -> str:
        now = self._clock()
        cached = self._cached.get(name)
        if cached is not None and now - cached[1] < self._max_age:
            return cached[0]
        value = self._secretsmanager.get_secret_value(SecretId=name).get("SecretString")
        if not isinstance(value, str):
            raise SettingsError(f"the secret {name} holds no text")
        self._cached[name] = (value, now)
        return value


def codat_api_key_provider(settings: Settings, read_secret: Callable[[str], str]) -> Callable[[], str]:
    """Codat's `Authorization: Basic` credential: base64 of the API key, read from Secrets Manager
    (cached for `secrets_cache_seconds`) or, for local runs, from CODAT_API_KEY."""
    if settings.codat_api_key:
        encoded = base64.b64encode(settings.codat_api_key.encode()).decode()
        return lambda: encoded
    secret_name = settings.codat_api_key_secret

    def from_secrets_manager() -> str:
        if not secret_name:
            raise SettingsError("set CODAT_API_KEY_SECRET_NAME (or CODAT_API_KEY for local runs)")
        return base64.b64encode(read_secret(secret_name).strip().encode()).decode()

    return from_secrets_manager


@lru_cache(maxsize=1)
def default_services() -> Services:
    """This container's services, built on first use (clients are reused across invocations)."""
    return Services(get_settings())


# SnapStart (the template's SnapStart parameter): Lambda initializes the function once when a version is
# published, snapshots its memory, and starts every new environment from that snapshot. What the snapshot holds
# must not outlive it: network clients (their sockets and credentials belong to the snapshotted environment),
# cached secrets (possibly days old, perhaps rotated since) and the random generator's state (every restored
# environment would draw the same retry jitter). The runtime provides `snapshot_restore_py` on python3.12+.
SNAPSTART_INITIALIZATION = "snap-start"


def prepare_snapshot() -> None:
    """Before the snapshot: the work every environment would repeat and none needs redone (settings parsed,
    the journeys file read, boto3 imported). No client is made and nothing is sent anywhere."""
    import boto3  # noqa: F401, PLC0415 - imported into the snapshot, the largest part of a cold start

    services = default_services()
    _ = services.catalog


def after_restore() -> None:
    """After a restore: forget the snapshot's services (clients, cached secrets, the integrations cache), so the
    first invocation builds clients and reads secrets afresh, and reseed the random generator."""
    default_services.cache_clear()
    random.seed()


def register_snapstart_hooks(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Register `prepare_snapshot` and `after_restore` with the runtime when this environment is being
    initialized for SnapStart; elsewhere nothing is imported. True when registered."""
    if environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != SNAPSTART_INITIALIZATION:
        return False
    from snapshot_restore_py import (  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415
        register_after_restore,
        register_before_snapshot,
    )

    register_before_snapshot(prepare_snapshot)
    register_after_restore(after_restore)
    return True


register_snapstart_hooks()
