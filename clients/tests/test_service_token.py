"""Tests of the token-provider hook: clients sign nothing, they take the provider the host installs."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from clients import service_token
from clients.exceptions import ClientNotConfigured
from clients.service_token import TokenProvider, token_provider_factory_install, token_provider_for


@pytest.fixture
def no_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    """No factory installed (as in a process that never loaded the users app); restored afterwards."""
    monkeypatch.setattr(service_token, "_factory", None)


@pytest.mark.usefixtures("no_factory")
def test_without_a_factory_a_client_needs_an_explicit_provider():
    # Given no factory installed
    # When a provider is asked for, then the error says how to give one
    with pytest.raises(ClientNotConfigured, match="token_provider="):
        token_provider_for(["echo:read"])


@pytest.mark.usefixtures("no_factory")
def test_the_installed_factory_makes_one_provider_per_client_from_its_scopes(make_client):
    # Given a factory that records the scopes it is asked for
    asked: list[list[str]] = []

    def factory(*, scopes: Sequence[str]) -> TokenProvider:
        asked.append(list(scopes))
        return lambda: f"token-for-{'+'.join(scopes)}"

    token_provider_factory_install(factory)

    # When a client is built without token_provider=
    client = make_client()

    # Then its provider came from the factory, with the client's scopes
    assert asked == [["echo:read"]]
    assert client._token_provider() == "token-for-echo:read"


def test_an_explicit_provider_wins_over_the_factory(make_client, server):
    # Given a client built with its own provider
    server.expect_request("/ping", headers={"Authorization": "Bearer given"}).respond_with_json({"ok": True})
    client = make_client(token_provider=lambda: "given")

    # When it calls, then the request carries that token
    assert client.request("GET", "/ping").json() == {"ok": True}
