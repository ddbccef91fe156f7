"""Settings: every environment variable the package reads, parsed once into a typed model."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SettingsError(RuntimeError):
    """The function's environment is missing or has a malformed setting (a deployment error)."""


# The environment variable behind each field: the template sets these, and a test checks that every
# function that reads settings gets every one that has no default.
ENVIRONMENT = {
    "table_name": "CONSENT_TABLE_NAME",
    "topic_arn": "CONSENT_TOPIC_ARN",
    "codat_base_url": "CODAT_BASE_URL",
    "codat_api_key_secret": "CODAT_API_KEY_SECRET_NAME",
    "codat_api_key": "CODAT_API_KEY",
    "codat_connect_timeout": "CODAT_CONNECT_TIMEOUT_SECONDS",
    "codat_read_timeout": "CODAT_READ_TIMEOUT_SECONDS",
    "codat_retry_budget": "CODAT_RETRY_BUDGET_SECONDS",
    "codat_max_attempts": "CODAT_MAX_ATTEMPTS",
    "webhook_secret_name": "CODAT_WEBHOOK_SECRET_NAME",
    "webhook_secret": "CODAT_WEBHOOK_SECRET",
    "webhook_url": "CODAT_WEBHOOK_URL",
    "customer_ref_key_secret": "CUSTOMER_REF_KEY_SECRET_NAME",
    "customer_ref_key": "CUSTOMER_REF_KEY",
    "journeys_file": "JOURNEYS_FILE",
    "identity_claim": "IDENTITY_CLAIM",
    "secrets_cache_seconds": "SECRETS_CACHE_SECONDS",
    "idempotency_ttl_hours": "IDEMPOTENCY_TTL_HOURS",
    "integrations_cache_seconds": "INTEGRATIONS_CACHE_SECONDS",
    "event_source": "EVENT_SOURCE",
    "problem_type_base_uri": "PROBLEM_TYPE_BASE_URI",
    "max_companies_per_customer": "MAX_COMPANIES_PER_CUSTOMER",
    "customer_codat_requests_per_minute": "CUSTOMER_CODAT_REQUESTS_PER_MINUTE",
    "customer_codat_requests_per_day": "CUSTOMER_CODAT_REQUESTS_PER_DAY",
    "event_schema_base_uri": "EVENT_SCHEMA_BASE_URI",
    "reconcile_codat_budget": "RECONCILE_CODAT_BUDGET",
    "pending_auth_max_age_hours": "PENDING_AUTH_MAX_AGE_HOURS",
    "keep_alive_daily_codat_budget": "KEEP_ALIVE_DAILY_CODAT_BUDGET",
}


# Where each consent event's `dataschema` points unless the deployment says otherwise: an identifier only.
DEFAULT_SCHEMA_BASE_URI = "urn:consent-journey:schemas:"


class Settings(BaseModel):
    """The deployment's configuration. Secrets are referenced by name; their values never live here,
    except the local-only overrides `codat_api_key` / `webhook_secret` used by `make dev` and tests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table_name: str = Field(min_length=3, max_length=255)
    topic_arn: str | None = None
    codat_base_url: str = "https://api.codat.io"
    codat_api_key_secret: str | None = None
    codat_api_key: str | None = Field(default=None, repr=False)
    codat_connect_timeout: float = Field(default=3.0, gt=0, le=30)
    codat_read_timeout: float = Field(default=8.0, gt=0, le=60)
    # Total time the Codat client may spend on one logical call, retries and back-off included. It must
    # stay inside the function's timeout (the template gives API functions 29 s, API Gateway's own limit).
    codat_retry_budget: float = Field(default=20.0, gt=0, le=25)
    codat_max_attempts: int = Field(default=4, ge=1, le=8)
    webhook_secret_name: str | None = None
    webhook_secret: str | None = Field(default=None, repr=False)
    # Our webhook route as Codat must call it: reconciliation checks Codat's consumer for it on each run.
    webhook_url: str | None = Field(default=None, min_length=1, max_length=2000, pattern=r"^https?://[^\s/]+")
    # The key of the customer reference Codat keeps as a company tag (an HMAC of the customer id, never the id).
    customer_ref_key_secret: str | None = None
    customer_ref_key: str | None = Field(default=None, repr=False)
    journeys_file: Path | None = None
    identity_claim: str = Field(default="sub", min_length=1, max_length=64)
    secrets_cache_seconds: int = Field(default=300, ge=0, le=3600)
    idempotency_ttl_hours: int = Field(default=24, ge=1, le=24 * 7)
    # Codat's integration list changes rarely; a busy app must not spend quota on it.
    integrations_cache_seconds: int = Field(default=300, ge=0, le=86400)
    # CloudEvents `source` of every consent event this deployment publishes.
    event_source: str = Field(default="urn:consent-journey:codat", min_length=1, max_length=200)
    # The prefix of each error's `type` (RFC 9457), + its `code`.
    problem_type_base_uri: str = Field(
        default="https://consent.example/problems/",
        min_length=1,
        max_length=200,
        pattern=r"^[a-zA-Z][a-zA-Z0-9+.-]*:.*$",
    )
    # The prefix of each event's `dataschema` (an absolute URI): + `<type>.v<major>.json`.
    event_schema_base_uri: str = Field(
        default=DEFAULT_SCHEMA_BASE_URI, min_length=1, max_length=200, pattern=r"^[a-zA-Z][a-zA-Z0-9+.-]*:.*$"
    )
    # Per customer, so that one customer cannot spend the bank's shared Codat quota (1,000 x (1 + connected
    # companies) requests a day): companies at once, and the requests of the routes that may call Codat.
    max_companies_per_customer: int = Field(default=20, ge=1, le=10_000)
    customer_codat_requests_per_minute: int = Field(default=30, ge=1, le=100_000)
    customer_codat_requests_per_day: int = Field(default=1000, ge=1, le=10_000_000)
    # Reconciliation: the Codat requests one run may send (retries and pages included). Codat's daily quota is
    # 1,000 x (1 + connected companies); a run every 15 minutes at the default stays well inside it.
    reconcile_codat_budget: int = Field(default=500, ge=1, le=10_000)
    # A connection still PendingAuth after this long is expired (and deleted in Codat): its link URL died with the
    # day, and the customer starts again cleanly.
    pending_auth_max_age_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Keep-alive: the Codat requests the lifecycle runs may send in a UTC day to refresh idle connections (0: none).
    keep_alive_daily_codat_budget: int = Field(default=200, ge=0, le=100_000)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {field: env[name] for field, name in ENVIRONMENT.items() if env.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            fields = ", ".join(ENVIRONMENT[str(e["loc"][0])] for e in error.errors() if e["loc"])
            raise SettingsError(f"invalid or missing settings: {fields}") from error


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, parsed on first use."""
    return Settings.from_environment()
