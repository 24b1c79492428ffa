"""Tests of the token-provider hook: clients sign nothing, they take the provider the host installs."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from clients import service_token
from clients.exceptions import ClientNotConfigured, ServiceError, ServiceResponseInvalid, ServiceUnavailable
from clients.service_token import (
    SERVICE_TOKEN_PATH,
    ClientCredentialsTokenProvider,
    TokenProvider,
    token_provider_factory_install,
    token_provider_for,
)


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


class TestClientCredentials:
    """A sibling's own service token, exchanged at the user service's service-token/ (served on loopback)."""

    @pytest.fixture
    def provider(self, server, clock):
        return ClientCredentialsTokenProvider(
            base_url=server.url_for("/"), client_id="gateway", client_secret="s3cret", clock=clock
        )

    def grant(self, server, token: str, expires_in: int = 300) -> None:
        server.expect_oneshot_request(
            SERVICE_TOKEN_PATH, method="POST", json={"client_id": "gateway", "client_secret": "s3cret"}
        ).respond_with_json({"access_token": token, "token_type": "Bearer", "expires_in": expires_in, "scope": ""})

    def test_the_token_is_exchanged_once_and_again_near_expiry(self, server, provider, clock):
        # Given the user service grants one token, then another
        self.grant(server, "first")
        self.grant(server, "second")

        # When the provider is asked repeatedly, then it reuses the first until 30 s before it expires
        assert [provider() for _ in range(3)] == ["first"] * 3
        clock.advance(269)
        assert provider() == "first"
        clock.advance(1)
        assert provider() == "second"
        assert len(server.log) == 2

    def test_invalidate_forces_a_new_exchange(self, server, provider):
        self.grant(server, "first")
        self.grant(server, "second")

        assert provider() == "first"
        provider.invalidate()
        assert provider() == "second"

    def test_refused_credentials_are_a_service_error_with_the_answer(self, server, provider):
        server.expect_request(SERVICE_TOKEN_PATH).respond_with_json(
            {"detail": "Invalid client credentials.", "code": "invalid_client"}, status=401
        )

        with pytest.raises(ServiceError) as caught:
            provider()
        assert caught.value.status_code == 401
        assert caught.value.body["code"] == "invalid_client"

    def test_the_service_down_is_service_unavailable(self, refused_url):
        provider = ClientCredentialsTokenProvider(base_url=refused_url, client_id="gateway", client_secret="s")

        with pytest.raises(ServiceUnavailable):
            provider()

    def test_a_redirect_is_not_followed_with_the_secret(self, server, provider):
        server.expect_request(SERVICE_TOKEN_PATH).respond_with_data("", status=307, headers={"Location": "/steal"})

        with pytest.raises(ServiceError):
            provider()
        assert [request.path for request, _ in server.log] == [SERVICE_TOKEN_PATH]

    def test_a_body_without_a_token_is_service_response_invalid(self, server, provider):
        server.expect_request(SERVICE_TOKEN_PATH).respond_with_json({"token_type": "Bearer"})

        with pytest.raises(ServiceResponseInvalid):
            provider()

    def test_missing_credentials_are_refused_at_construction(self):
        with pytest.raises(ClientNotConfigured, match="client_id"):
            ClientCredentialsTokenProvider(base_url="http://users:8000", client_id="gateway", client_secret="")

    @pytest.mark.usefixtures("no_factory")
    def test_installed_as_the_factory_every_client_sends_it(self, server, provider, make_client):
        # Given a sibling that installs its service-account token as the clients' provider
        self.grant(server, "the-gateway-token")
        token_provider_factory_install(provider.factory)
        server.expect_request("/ping", headers={"Authorization": "Bearer the-gateway-token"}).respond_with_json({})

        # When a client built without token_provider= calls, then it sends that token
        assert make_client().request("GET", "/ping").json() == {}
