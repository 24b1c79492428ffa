"""The clients' settings outside Django: the environment as the default source, VerifierConfig from any source."""

from __future__ import annotations

import pytest

from clients import conf
from clients.conf import JWKS_PATH, VerifierConfig, client_setting, environ_source, settings_source_install
from clients.exceptions import ClientNotConfigured
from clients.tests.conftest import EchoClient


@pytest.fixture
def environment_source(monkeypatch):
    """The source a process without Django has: its environment (the Django source is restored afterwards)."""
    monkeypatch.setattr(conf, "_source", conf._source)
    settings_source_install(None)
    assert conf._source is environ_source


@pytest.mark.usefixtures("environment_source")
class TestEnvironmentSource:
    def test_a_variable_is_read_and_cast_to_the_defaults_type(self, monkeypatch):
        monkeypatch.setenv("SERVICE_HTTP_MAX_RETRIES", "4")
        monkeypatch.setenv("SERVICE_HTTP_READ_TIMEOUT_SECONDS", "2.5")

        assert client_setting("SERVICE_HTTP_MAX_RETRIES") == 4
        assert client_setting("SERVICE_HTTP_READ_TIMEOUT_SECONDS") == 2.5

    def test_an_unset_variable_takes_the_default(self, monkeypatch):
        monkeypatch.delenv("SERVICE_CIRCUIT_FAILURE_THRESHOLD", raising=False)

        assert client_setting("SERVICE_CIRCUIT_FAILURE_THRESHOLD") == 5

    def test_a_value_that_does_not_cast_names_the_variable(self, monkeypatch):
        monkeypatch.setenv("SERVICE_HTTP_MAX_RETRIES", "many")

        with pytest.raises(ClientNotConfigured, match="SERVICE_HTTP_MAX_RETRIES must be a whole number"):
            client_setting("SERVICE_HTTP_MAX_RETRIES")

    def test_an_unknown_name_is_a_key_error(self):
        with pytest.raises(KeyError):
            client_setting("NO_SUCH_SETTING")

    def test_a_client_built_without_arguments_reads_the_environment(self, monkeypatch, server):
        monkeypatch.setenv("SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS", "0.3")
        monkeypatch.setenv("SERVICE_HTTP_MAX_RETRIES", "0")

        with EchoClient(server.url_for("/"), token_provider=lambda: "t") as client:
            assert client.timeout == (0.3, 3.0)
            assert client.max_retries == 0

    def test_the_verifier_configuration_reads_the_environment(self, monkeypatch):
        monkeypatch.setenv("USER_SERVICE_URL", "http://users:8000")
        monkeypatch.setenv("USER_SERVICE_JWT_ISSUER", "https://users.school.test")
        monkeypatch.delenv("USER_SERVICE_JWKS_URL", raising=False)

        config = VerifierConfig.from_source().checked()

        assert config.resolved_jwks_url == "http://users:8000" + JWKS_PATH
        assert config.issuer == "https://users.school.test"
        assert config.verification == "local"


class TestVerifierConfig:
    def test_a_mapping_wins_over_the_environment_which_wins_over_defaults(self, monkeypatch):
        monkeypatch.setenv("USER_SERVICE_JWT_ISSUER", "from-env")
        monkeypatch.setenv("USER_SERVICE_JWKS_REFETCH_SECONDS", "12")

        config = VerifierConfig.from_mapping({"USER_SERVICE_URL": "http://users:8000", "USER_SERVICE_JWT_ISSUER": "x"})

        assert (config.user_service_url, config.issuer) == ("http://users:8000", "x")
        assert config.refetch_interval_seconds == 12.0
        assert config.keys_max_age_seconds == 3600.0

    def test_an_explicit_jwks_url_wins_over_the_standard_path(self):
        config = VerifierConfig(jwks_url="http://keys.test/jwks", user_service_url="http://users:8000", issuer="i")

        assert config.checked().resolved_jwks_url == "http://keys.test/jwks"

    @pytest.mark.parametrize(
        ("config", "named"),
        [
            (VerifierConfig(issuer="i"), "USER_SERVICE_JWKS_URL"),
            (VerifierConfig(user_service_url="http://users:8000"), "USER_SERVICE_JWT_ISSUER"),
            (VerifierConfig(verification="remote"), "USER_SERVICE_URL"),
            (VerifierConfig(verification="sometimes"), "USER_SERVICE_TOKEN_CHECK"),
        ],
        ids=["no-jwks", "no-issuer", "remote-without-url", "unknown-mode"],
    )
    def test_an_incomplete_configuration_names_the_setting(self, config, named):
        with pytest.raises(ClientNotConfigured, match=named):
            config.checked()

    def test_a_remote_configuration_needs_no_issuer(self):
        config = VerifierConfig(verification="remote", user_service_url="http://users:8000")

        assert config.checked() is config
