"""Local verification of the user service's tokens for sibling services: cached JWKS, deny-list, DRF auth class.

A sibling service verifies our RS256 access tokens without calling us on every request::

    verifier = TokenVerifier(jwks_url="http://users:8000/api/v1/users/.well-known/jwks.json",
                             issuer="http://users:8000")
    claims = verifier.verify(raw_token)          # or TokenRejected(reason, code=...)

Keys are fetched once, parsed once and kept as key objects; an unknown ``kid`` (a rotated key) triggers a refetch
at most once per ``refetch_interval_seconds``. Revocation: ``verifier.deny(session_ids=..., user_ids=...)`` feeds a
bounded in-memory deny-list that every verification consults (the feed from ``GET revocations/`` or the Redis
channel calls it). This module needs Django settings only for ``TokenVerifier.from_settings()`` and the DRF class.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jwt
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from jwt.types import Options
from rest_framework import authentication, exceptions, status
from rest_framework.request import Request

from clients import claims as contract
from clients.claims import ACCESS, ALGORITHM
from clients.conf import client_setting
from clients.deny_list import DenyList
from clients.exceptions import KeySetUnavailable, TokenRejected
from clients.jwks import JwksKeySet

__all__ = [
    "DenyList",
    "JwksKeySet",
    "KeySetUnavailable",
    "TokenRejected",
    "TokenUser",
    "TokenVerifier",
    "VerifiedTokenAuthentication",
    "default_verifier",
]

logger = logging.getLogger(__name__)

JWKS_PATH = "/api/v1/users/.well-known/jwks.json"
TOKEN_MAX_CHARS = 8192


class TokenVerifier:
    """Verifies the user service's RS256 tokens locally with its published JWKS; thread-safe, one per process.

    Checks, in order: size and shape; header ``alg`` is exactly RS256 (``none``, HS256 and the rest are refused
    before any key is touched); ``kid`` names a published key; signature; required claims; ``iss``; ``exp``,
    ``iat`` within ``leeway_seconds``; then the shared claim contract (``clients.claims.claims_check``):
    ``token_type`` (``access`` by default) and the claims of that type (``sub`` digits and ``sid`` a UUID for
    access tokens, a ``scope`` list for service tokens); the deny-list. Any failure raises ``TokenRejected``.
    If no key could ever be fetched it raises ``KeySetUnavailable`` (a 503, not the caller's fault).
    """

    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str,
        token_type: str = ACCESS,
        leeway_seconds: float = 10,
        refetch_interval_seconds: float = 30,
        fetch_retry_seconds: float = 5,
        keys_max_age_seconds: float = 3600,
        fetch_timeout: tuple[float, float] = (1.0, 3.0),
        deny_list: DenyList | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if token_type not in contract.TOKEN_TYPES:
            raise ValueError(f"token_type must be one of {', '.join(contract.TOKEN_TYPES)}, not {token_type!r}.")
        self.issuer = issuer
        self.token_type = token_type
        self._token_types = (token_type,)
        self.leeway_seconds = leeway_seconds
        self.keys = JwksKeySet(
            url=jwks_url,
            refetch_interval_seconds=refetch_interval_seconds,
            fetch_retry_seconds=fetch_retry_seconds,
            max_age_seconds=keys_max_age_seconds,
            timeout=fetch_timeout,
            clock=clock,
        )
        self.deny_list = deny_list or DenyList()
        self._decode_options: Options = {"require": list(contract.REQUIRED_CLAIMS), "verify_aud": False}

    @classmethod
    def from_settings(cls, **overrides: Any) -> TokenVerifier:
        """A verifier configured from the USER_SERVICE_* settings (see clients/README.md)."""
        jwks_url = client_setting("USER_SERVICE_JWKS_URL") or ""
        issuer = client_setting("USER_SERVICE_JWT_ISSUER") or client_setting("JWT_ISSUER")
        if not jwks_url or not issuer:
            raise ImproperlyConfigured(
                "USER_SERVICE_JWKS_URL (e.g. http://users:8000" + JWKS_PATH + ") and USER_SERVICE_JWT_ISSUER "
                "must be set to verify the user service's tokens."
            )
        options: dict[str, Any] = {
            "jwks_url": jwks_url,
            "issuer": issuer,
            "leeway_seconds": float(client_setting("USER_SERVICE_JWT_LEEWAY_SECONDS")),
            "refetch_interval_seconds": float(client_setting("USER_SERVICE_JWKS_REFETCH_SECONDS")),
            "keys_max_age_seconds": float(client_setting("USER_SERVICE_JWKS_MAX_AGE_SECONDS")),
            "fetch_timeout": (
                float(client_setting("SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS")),
                float(client_setting("SERVICE_HTTP_READ_TIMEOUT_SECONDS")),
            ),
            "deny_list": DenyList(max_entries=int(client_setting("USER_SERVICE_DENY_LIST_MAX_ENTRIES"))),
        }
        options.update(overrides)
        return cls(**options)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims if it is valid, else TokenRejected with a reason."""
        if not isinstance(token, str) or not token or len(token) > TOKEN_MAX_CHARS:
            raise TokenRejected("Token is malformed.", code="token_malformed")
        try:
            header = _unverified_header(token)
        except ValueError as exc:
            raise TokenRejected("Token is malformed.", code="token_malformed") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenRejected("Token algorithm is not allowed.", code="algorithm_not_allowed")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenRejected("Token was signed with an unknown key.", code="unknown_key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options=self._decode_options,
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("Token has expired.", code="token_expired") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRejected("Token issuer is not trusted.", code="wrong_issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("Token signature is invalid.", code="bad_signature") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRejected("Token is invalid.") from exc
        try:
            contract.claims_check(claims, token_types=self._token_types)
        except contract.WrongTokenType as exc:
            raise TokenRejected(exc.reason, code="wrong_token_type") from exc
        except contract.ClaimsInvalid as exc:
            raise TokenRejected(exc.reason) from exc
        if self.deny_list.refuses(claims):
            raise TokenRejected("Token has been revoked.", code="token_revoked")
        return claims

    def deny(
        self, *, session_ids: Iterable[object] = (), user_ids: Iterable[object] = (), revoked_at: float | None = None
    ) -> None:
        """Refuse from now on tokens of these sessions and of these users (see DenyList.deny)."""
        self.deny_list.deny(session_ids=session_ids, user_ids=user_ids, revoked_at=revoked_at)

    def refresh_keys(self) -> bool:
        """Fetch the JWKS now (e.g. at start-up, to warm the cache); True on success. Not rate-limited."""
        return self.keys.refresh()

    @property
    def key_ids(self) -> frozenset[str]:
        """The ``kid`` of every key currently trusted."""
        return self.keys.kids


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, only to pick the key and refuse other algorithms early; PyJWT re-checks it strictly.

    Not ``jwt.get_unverified_header``: in PyJWT 2.15 it validates every segment character by character in Python,
    which doubled the cost of a verification.
    """
    head, dot, _ = token.partition(".")
    if not dot:
        raise ValueError("not a JWS")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    if not isinstance(header, dict):
        raise ValueError("JWS header is not an object")
    return header


@lru_cache(maxsize=1)
def default_verifier() -> TokenVerifier:
    """The process-wide verifier built from settings, used by VerifiedTokenAuthentication by default."""
    return TokenVerifier.from_settings()


@receiver(setting_changed)
def _reset_default_verifier(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(("USER_SERVICE_", "SERVICE_HTTP_", "JWT_ISSUER")):
        default_verifier.cache_clear()


@dataclass(frozen=True)
class TokenUser:
    """The user a verified access token speaks for, built from its claims alone (no database)."""

    id: int
    username: str
    user_type: int | None
    role: str
    session_id: str
    claims: Mapping[str, Any] = field(repr=False, compare=False)

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    @property
    def pk(self) -> int:
        return self.id

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> TokenUser:
        """Build from the claims of a verified access token."""
        user_type = claims.get("user_type")
        return cls(
            id=int(claims["sub"]),
            username=str(claims.get("username", "")),
            user_type=user_type if isinstance(user_type, int) and not isinstance(user_type, bool) else None,
            role=str(claims.get("role", "")),
            session_id=str(claims.get("sid", "")),
            claims=claims,
        )

    def __str__(self) -> str:
        return self.username or str(self.id)


class AuthenticationUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Token verification is temporarily unavailable."
    default_code = "authentication_unavailable"


class VerifiedTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication for sibling services: ``Authorization: Bearer <our access token>``, verified locally.

    ``request.user`` is a TokenUser (id, username, user_type, role; no database), ``request.auth`` the claims.
    Uses ``default_verifier()`` (settings) unless a subclass sets ``verifier``.
    """

    verifier: TokenVerifier | None = None
    www_authenticate_realm = "api"

    def get_verifier(self) -> TokenVerifier:
        """The verifier this class checks tokens with."""
        return self.verifier or default_verifier()

    def authenticate(self, request: Request) -> tuple[TokenUser, dict[str, Any]] | None:
        """(TokenUser, claims) for a valid bearer token, None without one; 401 for a bad one, 503 without keys."""
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Token is malformed.", code="token_malformed") from exc
        try:
            claims = self.get_verifier().verify(raw)
        except TokenRejected as exc:
            raise exceptions.AuthenticationFailed(exc.reason, code=exc.code) from exc
        except KeySetUnavailable as exc:
            raise AuthenticationUnavailable() from exc
        return TokenUser.from_claims(claims), claims

    def authenticate_header(self, request: Request) -> str:
        """Makes DRF answer 401 (not 403) with a Bearer challenge."""
        return f'Bearer realm="{self.www_authenticate_realm}"'
