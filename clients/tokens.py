"""Local verification of the user service's tokens for sibling services: cached JWKS and a deny-list.

A sibling service verifies our RS256 access tokens without calling us on every request::

    verifier = TokenVerifier(jwks_url="http://users:8000/api/v1/users/.well-known/jwks.json",
                             issuer="http://users:8000")
    claims = verifier.verify(raw_token)          # or TokenRejected(reason, code=...)

Keys are fetched once, parsed once and kept as key objects; an unknown ``kid`` (a rotated key) triggers a refetch
at most once per ``refetch_interval_seconds``. Revocation: ``verifier.deny(session_ids=..., user_ids=...)`` feeds a
bounded in-memory deny-list that every verification consults (the feed from ``GET revocations/`` or the Redis
channel calls it). No framework: the DRF class is in ``clients.drf``, the Django, Flask and WSGI adapters in
``clients.django``, ``clients.flask`` and ``clients.wsgi``.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt.types import Options

from clients import claims as contract
from clients.claims import ACCESS, ALGORITHM
from clients.conf import JWKS_PATH, VerifierConfig
from clients.deny_list import DenyList
from clients.exceptions import KeySetUnavailable, TokenRejected
from clients.jwks import JwksKeySet

__all__ = [
    "JWKS_PATH",
    "DenyList",
    "JwksKeySet",
    "KeySetUnavailable",
    "TokenRejected",
    "TokenUser",
    "TokenVerifier",
]

logger = logging.getLogger(__name__)

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
    def from_config(cls, config: VerifierConfig, **overrides: Any) -> TokenVerifier:
        """A verifier configured by ``config`` (its ``verification`` must be ``local``); ``overrides`` win."""
        config = config.checked()
        if config.verification != "local":
            raise ValueError("TokenVerifier checks tokens locally; use clients.remote for verification 'remote'.")
        options: dict[str, Any] = {
            "jwks_url": config.resolved_jwks_url,
            "issuer": config.issuer,
            "leeway_seconds": config.leeway_seconds,
            "refetch_interval_seconds": config.refetch_interval_seconds,
            "keys_max_age_seconds": config.keys_max_age_seconds,
            "fetch_timeout": (config.connect_timeout, config.read_timeout),
            "deny_list": DenyList(max_entries=config.deny_list_max_entries),
        }
        options.update(overrides)
        return cls(**options)

    @classmethod
    def from_settings(cls, **overrides: Any) -> TokenVerifier:
        """A verifier configured from the USER_SERVICE_* settings of the installed source (see clients/README.md).

        The source is the environment unless the host installed another (``clients.django`` installs Django's
        settings). A missing URL or issuer raises ClientNotConfigured naming the setting.
        """
        return cls.from_config(VerifierConfig.from_source(), **overrides)

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


# The DRF class and the Django default verifier lived here once; settings and imports that name them here keep
# working. Loaded on first use only, so importing this module never imports Django or DRF.
_MOVED = {
    "AuthenticationUnavailable": "clients.drf",
    "VerifiedTokenAuthentication": "clients.drf",
    "default_verifier": "clients.django",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
