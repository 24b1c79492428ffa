"""The Django adapter: settings as the clients' source, the default verifier's configuration, the middleware."""

from __future__ import annotations

import json
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import RequestFactory

from clients import conf
from clients.conf import JWKS_PATH, client_setting
from clients.django import BearerTokenMiddleware, config_from_settings, django_settings_source, token_required
from clients.tests.token_support import claims_for
from clients.tokens import TokenVerifier
from users import tokens


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.token_user  # type: ignore[attr-defined]
    return JsonResponse({"user_id": user.id if user else None, "claims": request.token_claims is not None})  # type: ignore[attr-defined]


def middleware_with(checker, view=whoami) -> BearerTokenMiddleware:
    class Middleware(BearerTokenMiddleware):
        pass

    Middleware.checker = checker
    return Middleware(view)


def request_with(token: str | None = None, header: str | None = None) -> HttpRequest:
    if token is not None:
        header = f"Bearer {token}"
    return RequestFactory().get("/whoami/", headers={"Authorization": header} if header is not None else None)


class TestSettingsSource:
    def test_the_app_config_makes_django_settings_the_source(self, settings):
        # Given the project lists clients.django.ClientsConfig (the user service does)
        assert conf._source is django_settings_source

        # When a setting changes, then the clients read the new value; a name the project lacks has its default
        settings.ACADEMIC_SERVICE_URL = "http://academic.test:8000"
        assert client_setting("ACADEMIC_SERVICE_URL") == "http://academic.test:8000"
        assert not hasattr(settings, "USER_SERVICE_TOKEN_CHECK")
        assert client_setting("USER_SERVICE_TOKEN_CHECK") == "local"

    def test_the_verifier_configuration_comes_from_settings(self, settings):
        settings.USER_SERVICE_URL = "http://users:8000/"
        settings.USER_SERVICE_JWT_LEEWAY_SECONDS = "5"

        config = config_from_settings()

        assert config.resolved_jwks_url == "http://users:8000" + JWKS_PATH
        assert config.issuer == settings.JWT_ISSUER  # USER_SERVICE_JWT_ISSUER unset: the project's own JWT_ISSUER
        assert config.leeway_seconds == 5.0

    def test_an_incomplete_configuration_is_improperly_configured(self, settings):
        settings.USER_SERVICE_TOKEN_CHECK = "remote"
        settings.USER_SERVICE_URL = ""

        with pytest.raises(ImproperlyConfigured, match="USER_SERVICE_URL"):
            config_from_settings()


class TestMiddleware:
    def test_a_valid_token_puts_the_person_on_the_request(self, verifier, settings):
        response = middleware_with(verifier)(request_with(tokens.encode(claims_for(settings))))

        assert response.status_code == 200
        assert json.loads(response.content) == {"user_id": 42, "claims": True}

    def test_no_token_passes_anonymous(self, verifier):
        response = middleware_with(verifier)(request_with())

        assert json.loads(response.content) == {"user_id": None, "claims": False}

    def test_a_refused_token_is_401_json(self, verifier, settings):
        now = int(time.time())
        expired = tokens.encode(claims_for(settings, iat=now - 400, exp=now - 60))

        response = middleware_with(verifier)(request_with(expired))

        assert response.status_code == 401
        assert json.loads(response.content) == {"valid": False, "detail": "Token has expired.", "code": "token_expired"}
        assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
        assert response["Content-Type"] == "application/json"

    def test_a_denied_session_is_401(self, verifier, settings):
        claims = claims_for(settings)
        verifier.deny(session_ids=[claims["sid"]])

        response = middleware_with(verifier)(request_with(tokens.encode(claims)))

        assert response.status_code == 401
        assert json.loads(response.content)["code"] == "token_revoked"

    def test_no_signing_keys_is_503(self, server, settings):
        server.expect_request(JWKS_PATH).respond_with_data("down", status=503)
        checker = TokenVerifier(jwks_url=server.url_for(JWKS_PATH), issuer=settings.JWT_ISSUER)

        response = middleware_with(checker)(request_with(tokens.encode(claims_for(settings))))

        assert response.status_code == 503

    def test_the_default_checker_comes_from_settings(self, server, jwks, settings):
        settings.USER_SERVICE_JWKS_URL = server.url_for(JWKS_PATH)

        response = BearerTokenMiddleware(whoami)(request_with(tokens.encode(claims_for(settings))))

        assert json.loads(response.content) == {"user_id": 42, "claims": True}


class TestTokenRequired:
    def test_a_view_that_requires_a_token_is_401_without_one(self, verifier):
        response = middleware_with(verifier, token_required(whoami))(request_with())

        assert response.status_code == 401
        assert json.loads(response.content)["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'

    def test_and_runs_with_one(self, verifier, settings):
        response = middleware_with(verifier, token_required(whoami))(request_with(tokens.encode(claims_for(settings))))

        assert json.loads(response.content) == {"user_id": 42, "claims": True}
