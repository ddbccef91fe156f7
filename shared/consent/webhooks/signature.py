"""Standard Webhooks (Svix) signature verification, over the raw body, before anything is parsed.

Signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature header is a space-separated
list of `v1,<base64 HMAC-SHA256>`; the secret is `whsec_<base64 key>`. Any matching `v1` entry with any
configured secret is accepted (rotation), within ±5 minutes of the timestamp."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

TOLERANCE_SECONDS = 5 * 60
_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_MAX_ID_LENGTH = 256
_MAX_SIGNATURE_HEADER = 4096
_MAX_SIGNATURES = 16


class SignatureError(Exception):
    """The request is not provably from Codat: answered 401, never processed."""


@dataclass(frozen=True)
class VerifiedMessage:
    message_id: str
    timestamp: int
    body: bytes


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret (the prefix is optional)."""
    encoded = secret.strip()
    encoded = encoded.removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("a webhook secret must be base64 after its whsec_ prefix") from error
    if not key:
        raise ValueError("empty webhook secret")
    return key


def parse_secrets(value: str) -> list[bytes]:
    """One or more secrets (space, comma or newline separated: two during rotation) as HMAC keys."""
    parts = [p for p in value.replace(",", " ").split() if p]
    if not parts:
        raise ValueError("no webhook secret configured")
    return [decode_secret(part) for part in parts]


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<signature>` entry for a message (used by the local simulator and tests)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Header names are case-insensitive; Codat sends `webhook-*`, Svix's own `svix-*` names are equivalent.
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get(f"webhook-{name}") or lowered.get(f"svix-{name}")


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[bytes],
    *,
    now: Callable[[], float] = time.time,
) -> VerifiedMessage:
    """Check the message against every key; raise SignatureError unless one `v1` signature matches."""
    message_id = _header(headers, "id")
    timestamp_text = _header(headers, "timestamp")
    signatures = _header(headers, "signature")
    if not message_id or not timestamp_text or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    if len(message_id) > _MAX_ID_LENGTH or len(signatures) > _MAX_SIGNATURE_HEADER:
        raise SignatureError("oversized webhook headers")
    if not timestamp_text.isascii() or not timestamp_text.isdigit() or len(timestamp_text) > 12:
        raise SignatureError("webhook-timestamp is not a Unix time")
    timestamp = int(timestamp_text)
    if abs(now() - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    offered = []
    for entry in signatures.split(" ")[:_MAX_SIGNATURES]:
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        try:
            offered.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    try:
        signed_id = message_id.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as error:  # a lone surrogate (a JSON event can carry one): no signer sent it
        raise SignatureError("webhook-id is not text") from error
    signed = signed_id + b"." + timestamp_text.encode() + b"." + body
    for key in keys:
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        # Compare against every entry, in constant time each.
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return VerifiedMessage(message_id, timestamp, body)
    raise SignatureError("no matching signature")
