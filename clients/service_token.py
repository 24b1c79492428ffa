"""Where outgoing calls get their bearer token: a provider per client, and the client-credentials exchange.

``clients/`` signs nothing itself. A client built with ``token_provider=`` sends that callable's token; one
built without it asks the factory the host installed. The user service installs its own minter
(``users.tokens.ServiceTokenMinter``, from ``UsersConfig.ready``), so its clients send tokens of its own with
the client's scopes. A sibling service (or a gateway) gets its token from the user service with its service
account's credentials: ``ClientCredentialsTokenProvider``, which can also be installed as the factory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import requests

from clients.exceptions import ClientNotConfigured, ServiceError, ServiceResponseInvalid, ServiceUnavailable

__all__ = [
    "SERVICE_TOKEN_PATH",
    "CachedTokenProvider",
    "ClientCredentialsTokenProvider",
    "TokenProvider",
    "TokenProviderFactory",
    "token_provider_factory_install",
    "token_provider_for",
]

TokenProvider = Callable[[], str]

SERVICE_TOKEN_PATH = "/api/v1/users/service-token/"  # noqa: S105 - a URL path
# A cached token is exchanged again this long before it expires, so no call goes out with a dying token.
RENEW_BEFORE_SECONDS = 30.0


class TokenProviderFactory(Protocol):
    """Makes the token provider of one client from its scopes (called once per client instance)."""

    def __call__(self, *, scopes: Sequence[str]) -> TokenProvider: ...


_factory: TokenProviderFactory | None = None


def token_provider_factory_install(factory: TokenProviderFactory | None) -> None:
    """Set (or, with None, remove) the factory of the providers of clients built without ``token_provider=``."""
    global _factory  # one per process, installed at start-up
    _factory = factory


def token_provider_for(scopes: Sequence[str]) -> TokenProvider:
    """The token provider for a client with ``scopes``, from the installed factory."""
    if _factory is None:
        raise ClientNotConfigured(
            "No service-token provider: pass token_provider= to the client, or install a factory with "
            "clients.service_token.token_provider_factory_install()."
        )
    return _factory(scopes=scopes)


class CachedTokenProvider:
    """A token provider that keeps its token until RENEW_BEFORE_SECONDS before it expires, then gets a new one.

    Call it for the token (thread-safe; one renewal at a time). Subclasses say how a token is got: ``_renew(now)``
    answers the token and when it expires (seconds since the epoch on ``clock``). The one cache of service tokens
    for both ends: ``ClientCredentialsTokenProvider`` below and the user service's own ``ServiceTokenMinter``.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def __call__(self) -> str:
        """The cached token, got again when it is within RENEW_BEFORE_SECONDS of expiry."""
        with self._lock:
            now = self._clock()
            if self._token is None or self._expires_at - now <= RENEW_BEFORE_SECONDS:
                self._token, self._expires_at = self._renew(now)
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (a receiver refused it): the next call gets a new one."""
        with self._lock:
            self._token = None

    def _renew(self, now: float) -> tuple[str, float]:
        """A new token and its expiry time."""
        raise NotImplementedError


class ClientCredentialsTokenProvider(CachedTokenProvider):
    """A service token from the user service's ``service-token/`` (client credentials), cached until near expiry.

    Call it for the token (thread-safe; one exchange at a time). The token carries the scopes the service account
    holds. Errors: ``ServiceUnavailable`` (transport failure, timeout, 5xx) and ``ServiceError`` (the
    credentials were refused: 401 ``invalid_client``, or 429); ``ServiceResponseInvalid`` for an unexpected body.
    Redirects are not followed: the secret only goes to ``base_url``.
    """

    service_name = "users"

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        timeout: tuple[float, float] = (1.0, 3.0),
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not base_url or not client_id or not client_secret:
            raise ClientNotConfigured("A service token needs the user service's base_url, a client_id and its secret.")
        self.url = base_url.rstrip("/") + SERVICE_TOKEN_PATH
        self._credentials = {"client_id": client_id, "client_secret": client_secret}
        self.timeout = timeout
        self.session = session or requests.Session()
        super().__init__(clock=clock)

    def factory(self, *, scopes: Sequence[str]) -> TokenProvider:
        """As a TokenProviderFactory: every client shares this token (its scopes are the account's, not ``scopes``)."""
        return self

    def _renew(self, now: float) -> tuple[str, float]:
        """The client-credentials exchange."""
        try:
            response = self.session.post(self.url, json=self._credentials, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise ServiceUnavailable(
                f"users service is unreachable ({type(exc).__name__}).", service=self.service_name
            ) from exc
        if response.status_code >= 500:
            raise ServiceUnavailable(
                f"users service answered {response.status_code}.",
                service=self.service_name,
                status_code=response.status_code,
            )
        body = _json_or_none(response)
        if response.status_code != requests.codes.ok:
            raise ServiceError(
                "users service refused the service credentials.",
                service=self.service_name,
                status_code=response.status_code,
                body=body,
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise ServiceResponseInvalid(
                "users service answered service-token/ without access_token and expires_in.",
                service=self.service_name,
                status_code=response.status_code,
            )
        return token, now + float(expires_in)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
