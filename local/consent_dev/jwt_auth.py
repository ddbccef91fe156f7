"""The local stacks' identity: a local issuer of customer tokens, and an authorizer that checks them as the deployed
HTTP API's JWT authorizer does (template.yaml: `CustomerJwt`), so that a token AWS would refuse is refused here
(`consent_dev.gateway` puts it in front of the routes that have it, for `make dev` and `LocalApi` alike).

The issuer makes an RSA key when the stack starts and serves its JWKS; it signs RS256 tokens for any customer id
(dev only: there are no passwords). The authorizer verifies the signature against that JWKS, then `iss`, `aud` (or
`client_id`, as API Gateway accepts), `exp` and `nbf`; an unsigned (`alg: none`), expired, wrongly signed, foreign
or malformed token is refused before any function runs. Like API Gateway's, it does not look for the customer: the
function reads the template's `IdentityClaim` from the claims and refuses a token without it itself."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "consent-app"  # make dev's JwtAudience (a deployment sets its own)
TOKEN_SECONDS = 3600
ALGORITHMS = ["RS256"]  # what the issuer signs with; API Gateway takes the algorithms its issuer's JWKS publishes


@dataclass
class LocalIssuer:
    """An OpenID issuer at `url` for `make dev`: its signing key, its JWKS, and tokens for customers."""

    url: str
    audience: str = AUDIENCE
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def jwks(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/.well-known/jwks.json",
            "id_token_signing_alg_values_supported": ALGORITHMS,
        }

    def token(self, customer_id: str, *, claim: str = "sub", lifetime: int = TOKEN_SECONDS, **overrides: Any) -> str:
        """A signed access token for `customer_id` (in `claim`); `overrides` replace or add claims (tests)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "scope": "openid",
            claim: customer_id,
            **overrides,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})


class Unauthorized(Exception):
    """The token is missing or is not one the authorizer accepts (the reason is for logs, never the caller)."""


@dataclass(frozen=True)
class JwtAuthorizer:
    """API Gateway's HTTP API JWT authorizer, for one issuer and its audiences."""

    issuer: LocalIssuer
    audiences: tuple[str, ...]
    leeway_seconds: int = 0

    def claims(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims, verified, with every value a string as API Gateway passes them to the function."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise Unauthorized("no bearer token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthorized(f"malformed token: {type(error).__name__}") from error
        # The issuer's one key, as its JWKS publishes it (no JWK round trip per request).
        if header.get("kid") != self.issuer.kid or header.get("alg") not in ALGORITHMS:
            raise Unauthorized("unknown key or algorithm")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.issuer.public_key,
                algorithms=ALGORITHMS,
                issuer=self.issuer.url,
                options={"require": ["exp", "iss"], "verify_aud": False},
                leeway=self.leeway_seconds,
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(f"invalid token: {type(error).__name__}") from error
        audiences = claims.get("aud")
        offered = set(audiences if isinstance(audiences, list) else [audiences]) | {claims.get("client_id")}
        if not offered & set(self.audiences):
            raise Unauthorized("audience")
        return {name: value if isinstance(value, str) else str(value) for name, value in claims.items()}
