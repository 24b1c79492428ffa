"""The Flask adapter in a real Flask app: valid tokens reach the view with their claims, the rest get 401 JSON."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests
from flask import Flask, g

from clients.conf import JWKS_PATH
from clients.flask import init_app, require_token
from clients.tests.token_support import claims_for
from clients.tokens import TokenVerifier
from conftest import TEST_PASSWORD
from users import tokens


def make_app(checker=None, **config) -> Flask:
    """A gateway-like app: one view behind ``require_token`` that shows what it was given, one public view."""
    app = Flask("gateway")
    app.config.update(config)
    init_app(app, checker)

    @app.get("/whoami")
    @require_token
    def whoami():
        user = g.token_user
        return {"sub": g.token_claims["sub"], "sid": g.token_claims["sid"], "id": user.id, "role": user.role}

    @app.get("/public")
    def public():
        return {"ok": True}

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(verifier):
    return make_app(verifier).test_client()


class TestLocalVerification:
    def test_a_valid_token_reaches_the_view_with_its_claims(self, client, settings):
        # Given a token the user service issued for a login session
        session_id = uuid.uuid4()
        claims = claims_for(settings, sid=str(session_id))

        # When the gateway is called with it
        response = client.get("/whoami", headers=bearer(tokens.encode(claims)))

        # Then the view ran, and saw the claims and the person
        assert response.status_code == 200
        assert response.json == {"sub": "42", "sid": str(session_id), "id": 42, "role": "student"}

    def test_no_token_is_401_json_with_a_bearer_challenge(self, client):
        response = client.get("/whoami")

        assert response.status_code == 401
        assert response.json == {
            "valid": False,
            "detail": "Authentication credentials were not provided.",
            "code": "not_authenticated",
        }
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Cache-Control"] == "no-store"

    def test_another_scheme_counts_as_no_token(self, client):
        response = client.get("/whoami", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})

        assert response.status_code == 401
        assert response.json["code"] == "not_authenticated"

    def test_an_expired_token_is_401(self, client, settings):
        now = int(time.time())
        expired = tokens.encode(claims_for(settings, iat=now - 400, exp=now - 60))

        response = client.get("/whoami", headers=bearer(expired))

        assert response.status_code == 401
        assert response.json == {"valid": False, "detail": "Token has expired.", "code": "token_expired"}
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'

    def test_a_token_signed_with_another_key_is_401(self, client, settings, foreign_key):
        forged = jwt.encode(
            claims_for(settings), foreign_key, algorithm="RS256", headers={"kid": tokens.key_ring().kid}
        )

        response = client.get("/whoami", headers=bearer(forged))

        assert response.status_code == 401
        assert response.json["code"] == "bad_signature"

    def test_a_token_of_a_denied_session_is_401(self, client, verifier, settings):
        # Given a valid token, whose session the revocation feed then reports as ended
        claims = claims_for(settings)
        token = tokens.encode(claims)
        assert client.get("/whoami", headers=bearer(token)).status_code == 200
        verifier.deny(session_ids=[claims["sid"]])

        # When it is presented again, then it is refused as revoked
        response = client.get("/whoami", headers=bearer(token))
        assert response.status_code == 401
        assert response.json == {"valid": False, "detail": "Token has been revoked.", "code": "token_revoked"}

    @pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer \u00e9t\u00e9"])
    def test_a_malformed_header_is_401(self, client, header):
        response = client.get("/whoami", headers={"Authorization": header})

        assert response.status_code == 401
        assert response.json["code"] == "token_malformed"

    def test_a_view_without_the_decorator_is_not_checked(self, client):
        assert client.get("/public").json == {"ok": True}

    def test_no_signing_keys_is_503_not_401(self, server, settings):
        server.expect_request(JWKS_PATH).respond_with_data("down", status=503)
        checker = TokenVerifier(jwks_url=server.url_for(JWKS_PATH), issuer=settings.JWT_ISSUER)

        response = make_app(checker).test_client().get("/whoami", headers=bearer(tokens.encode(claims_for(settings))))

        assert response.status_code == 503
        assert response.json == {
            "valid": False,
            "detail": "Token verification is temporarily unavailable.",
            "code": "authentication_unavailable",
        }
        assert "WWW-Authenticate" not in response.headers


class TestConfiguration:
    def test_the_checker_is_built_from_app_config(self, server, jwks, settings):
        # Given an app configured with the user service's URL and issuer only (the JWKS path is the standard one)
        app = make_app(USER_SERVICE_URL=server.url_for("/"), USER_SERVICE_JWT_ISSUER=settings.JWT_ISSUER)

        # When a valid token comes in, then it is verified against the JWKS under that URL
        response = app.test_client().get("/whoami", headers=bearer(tokens.encode(claims_for(settings))))
        assert response.status_code == 200
        assert app.extensions["ums_clients"].checker.keys.url == server.url_for(JWKS_PATH)

    def test_a_missing_setting_is_named_at_start_up(self):
        from clients.exceptions import ClientNotConfigured

        with pytest.raises(ClientNotConfigured, match="USER_SERVICE_JWT_ISSUER"):
            make_app(USER_SERVICE_URL="http://users:8000")

    def test_the_decorator_without_init_app_says_what_is_missing(self):
        app = Flask("bare")

        @app.get("/x")
        @require_token
        def view():
            return {}

        app.testing = True
        with pytest.raises(RuntimeError, match="init_app"):
            app.test_client().get("/x")


@pytest.mark.django_db(transaction=True)
class TestRemoteValidation:
    """The gateway asking the real user service's validate-token/ (a live server) instead of verifying locally."""

    @pytest.fixture
    def app(self, live_server):
        app = make_app(USER_SERVICE_TOKEN_CHECK="remote", USER_SERVICE_URL=live_server.url)
        yield app
        app.extensions["ums_clients"].checker.close()  # ends the live server's keep-alive threads and their DB links

    def test_a_logged_in_user_passes_and_is_refused_at_once_after_logout(self, app, live_server, make_user):
        # Given a person logged in at the user service
        make_user(username="remote-alice")
        api = f"{live_server.url}/api/v1/users"
        login = requests.post(f"{api}/login/", json={"username": "remote-alice", "password": TEST_PASSWORD}, timeout=10)
        assert login.status_code == 200
        access = login.json()["access_token"]
        client = app.test_client()

        # When the gateway checks the token with validate-token/, then the view sees the person
        response = client.get("/whoami", headers=bearer(access))
        assert response.status_code == 200
        assert response.json["id"] == login.json()["user"]["id"]
        assert response.json["role"] == "student"

        # And once they log out, the very next request is refused (no deny-list feed needed)
        assert requests.post(f"{api}/logout/", json={}, headers=bearer(access), timeout=10).status_code == 204
        response = client.get("/whoami", headers=bearer(access))
        assert response.status_code == 401
        assert response.json["valid"] is False
        assert response.json["code"] == "session_ended"
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")

    def test_a_forged_token_is_refused_with_the_services_reason(self, app, settings, foreign_key):
        forged = jwt.encode(
            claims_for(settings), foreign_key, algorithm="RS256", headers={"kid": tokens.key_ring().kid}
        )

        response = app.test_client().get("/whoami", headers=bearer(forged))

        assert response.status_code == 401
        assert response.json["valid"] is False
        assert response.json["code"] == "token_not_valid"

    def test_the_user_service_unreachable_is_503(self, refused_url):
        app = make_app(USER_SERVICE_TOKEN_CHECK="remote", USER_SERVICE_URL=refused_url)

        response = app.test_client().get("/whoami", headers=bearer("a.b.c"))

        assert response.status_code == 503
        assert response.json["code"] == "authentication_unavailable"
