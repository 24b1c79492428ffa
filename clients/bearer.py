"""The bearer-token check of one incoming request, shared by the Django, Flask and WSGI adapters.

An adapter hands over the ``Authorization`` header and gets either the token's claims (with a ``TokenUser`` for
a person's access token) or ``AuthenticationDenied``, which carries the whole answer: 401 with
``{"valid": false, "detail", "code"}`` and ``WWW-Authenticate: Bearer`` (no token, a malformed header, a refused
token), or 503 when the token cannot be checked now (no signing keys, the user service unreachable). The check
itself is a ``TokenChecker``: the local ``TokenVerifier`` or the remote ``RemoteTokenVerifier``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from clients.claims import ACCESS, TOKEN_TYPE
from clients.conf import VerifierConfig
from clients.exceptions import ServiceClientError, TokenRejected
from clients.remote import RemoteTokenVerifier
from clients.tokens import TokenUser, TokenVerifier

__all__ = [
    "AuthenticationDenied",
    "Authenticated",
    "BearerAuthenticator",
    "TokenChecker",
    "bearer_token",
    "token_checker_from",
]

NOT_AUTHENTICATED_DETAIL = "Authentication credentials were not provided."
UNAVAILABLE_DETAIL = "Token verification is temporarily unavailable."
UNAVAILABLE_CODE = "authentication_unavailable"


class TokenChecker(Protocol):
    """Anything that turns a raw token into its claims or raises TokenRejected (TokenVerifier, RemoteTokenVerifier)."""

    def verify(self, token: str) -> dict[str, Any]: ...


def token_checker_from(config: VerifierConfig) -> TokenChecker:
    """The checker ``config`` asks for: a local TokenVerifier, or a RemoteTokenVerifier for ``verification=remote``."""
    if config.checked().verification == "remote":
        return RemoteTokenVerifier.from_config(config)
    return TokenVerifier.from_config(config)


class AuthenticationDenied(Exception):
    """The request may not pass; ``status`` (401 or 503), ``body()`` and ``headers()`` are the answer to send."""

    def __init__(
        self, detail: str, *, code: str, status: int = 401, realm: str = "api", challenge_error: bool = True
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.status = status
        self.realm = realm
        self._challenge_error = challenge_error

    @classmethod
    def missing(cls, *, realm: str = "api") -> AuthenticationDenied:
        """No bearer token at all (RFC 6750 §3.1: the challenge then names no error)."""
        return cls(NOT_AUTHENTICATED_DETAIL, code="not_authenticated", realm=realm, challenge_error=False)

    @classmethod
    def unavailable(cls, *, realm: str = "api") -> AuthenticationDenied:
        """The token cannot be checked now: not the caller's fault."""
        return cls(UNAVAILABLE_DETAIL, code=UNAVAILABLE_CODE, status=503, realm=realm)

    def body(self) -> dict[str, Any]:
        """The JSON answer, shaped like the user service's own ``validate-token/`` refusal."""
        return {"valid": False, "detail": self.detail, "code": self.code}

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()

    def headers(self) -> list[tuple[str, str]]:
        """Content type, no caching, and for a 401 the Bearer challenge."""
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        if self.status == 401:
            challenge = f'Bearer realm="{self.realm}"'
            if self._challenge_error:
                challenge += ', error="invalid_token"'
            headers.append(("WWW-Authenticate", challenge))
        return headers


@dataclass(frozen=True)
class Authenticated:
    """A request whose bearer token passed: its claims, and the person it speaks for (None for a service token)."""

    claims: dict[str, Any]
    user: TokenUser | None


def bearer_token(authorization: str | None, *, realm: str = "api") -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None without one (or with another scheme).

    A Bearer header that is not exactly two parts, or whose token is not ASCII, raises AuthenticationDenied.
    """
    parts = (authorization or "").split()
    if not parts or parts[0].lower() != "bearer":
        return None
    if len(parts) != 2:
        raise AuthenticationDenied(
            "Authorization header must be 'Bearer <token>'.", code="token_malformed", realm=realm
        )
    if not parts[1].isascii():
        raise AuthenticationDenied("Token is malformed.", code="token_malformed", realm=realm)
    return parts[1]


class BearerAuthenticator:
    """Checks the bearer token of a request with ``checker``; thread-safe, one per application."""

    def __init__(self, checker: TokenChecker, *, realm: str = "api") -> None:
        self.checker = checker
        self.realm = realm

    @classmethod
    def from_config(cls, config: VerifierConfig, *, realm: str = "api") -> BearerAuthenticator:
        return cls(token_checker_from(config), realm=realm)

    def require(self, authorization: str | None) -> Authenticated:
        """The verdict on a request that must carry a token: Authenticated, or AuthenticationDenied (401/503)."""
        verdict = self.authenticate(authorization)
        if verdict is None:
            raise AuthenticationDenied.missing(realm=self.realm)
        return verdict

    def authenticate(self, authorization: str | None) -> Authenticated | None:
        """The verdict on a request's ``Authorization`` header: Authenticated, None when it carries no bearer token,
        or AuthenticationDenied (401 for a malformed or refused token, 503 when it cannot be checked now)."""
        token = bearer_token(authorization, realm=self.realm)
        if token is None:
            return None
        try:
            claims = self.checker.verify(token)
        except TokenRejected as exc:
            raise AuthenticationDenied(exc.reason, code=exc.code, realm=self.realm) from exc
        except ServiceClientError as exc:  # KeySetUnavailable, the user service unreachable or answering oddly
            raise AuthenticationDenied.unavailable(realm=self.realm) from exc
        user = TokenUser.from_claims(claims) if claims.get(TOKEN_TYPE) == ACCESS else None
        return Authenticated(claims=claims, user=user)
