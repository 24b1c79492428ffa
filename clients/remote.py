"""Checking a user's token by asking the user service (``GET validate-token/``), for callers that verify remotely.

The local verifier (``clients.tokens``) costs no call per request but accepts a revoked token until its deny-list
hears of the revocation; ``validate-token/`` answers from the user service's own session state, so revocation
is immediate, at the price of one round trip per request. Both have the same ``verify(token) -> claims`` shape,
so the adapters take either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from clients.base import ServiceClient
from clients.claims import ACCESS, ROLE, SID, SUB, TOKEN_TYPE, USER_TYPE, USERNAME
from clients.conf import VerifierConfig
from clients.exceptions import ClientNotConfigured, TokenRejected
from clients.tokens import TOKEN_MAX_CHARS

__all__ = ["VALIDATE_TOKEN_PATH", "RemoteTokenVerifier", "UserServiceClient"]

VALIDATE_TOKEN_PATH = "/api/v1/users/validate-token/"  # noqa: S105 - a URL path


def _no_service_token() -> str:
    raise ClientNotConfigured("This UserServiceClient was built without token_provider=; it only validates tokens.")


class UserServiceClient(ServiceClient):
    """Typed calls to the user service (base URL: setting ``USER_SERVICE_URL``).

    - ``GET /api/v1/users/validate-token/`` with the user's token as bearer → 200 ``{"valid": true, "user",
      "session_id", "expires_at"}`` or 401 ``{"valid": false, "detail", "code"}``.

    Other calls carry the service token of ``token_provider=`` (e.g. a ``ClientCredentialsTokenProvider``).
    """

    service_name: ClassVar[str] = "users"
    base_url_setting: ClassVar[str | None] = "USER_SERVICE_URL"

    def validate_token(self, token: str) -> dict[str, Any]:
        """The claims of a valid token, shaped like a local verification's; TokenRejected with the service's reason.

        The claims are ``sub`` (the user id as text), ``sid``, ``username``, ``user_type``, ``role``, ``exp``
        (epoch seconds) and ``token_type`` ``access``, plus ``user``: the public user JSON the service answered.
        The service being down or answering oddly raises ``ServiceUnavailable`` / ``ServiceError``.
        """
        response = self.request("GET", VALIDATE_TOKEN_PATH, bearer=token, allow_statuses=(401,))
        body = self.json_of(response)
        if response.status_code == 401:
            detail = self.field(response, body, "detail", str, required=False) or "Token is invalid."
            code = self.field(response, body, "code", str, required=False) or "token_not_valid"
            raise TokenRejected(detail, code=code)
        if self.field(response, body, "valid", bool) is not True:
            raise self.invalid_response(response, "200 without valid: true")
        user = self.field(response, body, "user", dict)
        user_id = self.field(response, user, "id", int)
        expires_at = self.field(response, body, "expires_at", str)
        try:
            exp = datetime.fromisoformat(expires_at).timestamp()
        except ValueError as exc:
            raise self.invalid_response(response, f"expires_at is not a date-time: {expires_at!r}") from exc
        return {
            SUB: str(user_id),
            SID: self.field(response, body, "session_id", str),
            USERNAME: self.field(response, user, "username", str),
            USER_TYPE: self.field(response, user, "user_type", int),
            ROLE: self.field(response, user, "role", str),
            "exp": int(exp),
            TOKEN_TYPE: ACCESS,
            "user": user,
        }


class RemoteTokenVerifier:
    """Verifies user tokens by asking ``validate-token/``; the same ``verify`` as ``TokenVerifier``.

    One pooled client with timeouts, retries (a GET) and a circuit breaker: the user service being unreachable
    raises ``ServiceUnavailable`` (the adapters answer 503), a refused token ``TokenRejected`` (401).
    """

    def __init__(self, *, client: UserServiceClient) -> None:
        self.client = client

    @classmethod
    def for_url(cls, base_url: str, **options: Any) -> RemoteTokenVerifier:
        """A verifier asking the user service at ``base_url``; ``options`` go to ``UserServiceClient``."""
        options.setdefault("token_provider", _no_service_token)
        return cls(client=UserServiceClient(base_url, **options))

    @classmethod
    def from_config(cls, config: VerifierConfig, **options: Any) -> RemoteTokenVerifier:
        """A verifier from ``config`` (``user_service_url`` and the timeouts); ``options`` go to the client."""
        config = config.checked()
        options.setdefault("connect_timeout", config.connect_timeout)
        options.setdefault("read_timeout", config.read_timeout)
        return cls.for_url(config.user_service_url, **options)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims (see ``UserServiceClient.validate_token``), else TokenRejected."""
        # Refused here, not sent: a header the HTTP library rejects would count as the user service failing.
        if not isinstance(token, str) or not (0 < len(token) <= TOKEN_MAX_CHARS) or not _visible_ascii(token):
            raise TokenRejected("Token is malformed.", code="token_malformed")
        return self.client.validate_token(token)

    def close(self) -> None:
        """Close the pooled connections."""
        self.client.close()


def _visible_ascii(text: str) -> bool:
    return all("!" <= char <= "~" for char in text)
