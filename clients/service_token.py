"""Where outgoing calls get their bearer token: a provider per client, made by the factory the host installs.

``clients/`` signs nothing itself. The user service installs its own minter (``users.tokens.ServiceTokenMinter``,
from ``UsersConfig.ready``), so every ``ServiceClient`` built without ``token_provider=`` sends a token of ours
with the client's scopes; a client built with ``token_provider=`` uses that callable instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured

TokenProvider = Callable[[], str]


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
        raise ImproperlyConfigured(
            "No service-token provider: pass token_provider= to the client, or install a factory with "
            "clients.service_token.token_provider_factory_install()."
        )
    return _factory(scopes=scopes)
