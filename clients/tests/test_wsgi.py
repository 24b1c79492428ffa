"""The WSGI middleware around a plain WSGI application, served over real HTTP on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import jwt
import pytest
import requests

from clients.conf import JWKS_PATH
from clients.tests.token_support import claims_for
from clients.tokens import TokenVerifier
from clients.wsgi import ENVIRON_CLAIMS, ENVIRON_USER, BearerTokenMiddleware
from users import tokens


def echo_app(environ, start_response):
    """A plain WSGI application that answers what the middleware left in its environ."""
    claims, user = environ.get(ENVIRON_CLAIMS), environ.get(ENVIRON_USER)
    body = json.dumps(
        {
            "path": environ["PATH_INFO"],
            "sub": claims["sub"] if claims else None,
            "user_id": user.id if user else None,
            "username": user.username if user else None,
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def serve() -> Iterator:
    """Start a wsgiref server on 127.0.0.1 for a WSGI app; returns its base URL."""
    servers: list[WSGIServer] = []

    def start(app) -> str:
        httpd = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_port}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def base_url(serve, verifier) -> str:
    return serve(BearerTokenMiddleware(echo_app, verifier, public_paths={"/health"}))


def get(url: str, token: str | None = None, **headers: str) -> requests.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(url, headers=headers, timeout=5)


def test_a_valid_token_reaches_the_app_with_claims_and_user(base_url, settings):
    response = get(f"{base_url}/api/v1/courses/", tokens.encode(claims_for(settings)))

    assert response.status_code == 200
    assert response.json() == {"path": "/api/v1/courses/", "sub": "42", "user_id": 42, "username": "alice"}


def test_no_token_is_401_json(base_url):
    response = get(f"{base_url}/api/v1/courses/")

    assert response.status_code == 401
    assert response.json() == {
        "valid": False,
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
    }
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda s, key: tokens.encode(claims_for(s, iat=int(time.time()) - 400, exp=int(time.time()) - 60)),
         "token_expired"),
        (lambda s, key: jwt.encode(claims_for(s), key, algorithm="RS256", headers={"kid": tokens.key_ring().kid}),
         "bad_signature"),
        (lambda s, key: jwt.encode(claims_for(s), key, algorithm="RS256", headers={"kid": "not-published"}),
         "unknown_key"),
        (lambda s, key: tokens.encode(claims_for(s, iss="https://evil.example")), "wrong_issuer"),
        (lambda s, key: "not-a-jwt", "token_malformed"),
    ],
    ids=["expired", "wrong-key", "unknown-kid", "wrong-issuer", "garbage"],
)  # fmt: skip
def test_a_refused_token_is_401_with_its_code(base_url, settings, foreign_key, make_token, code):
    response = get(f"{base_url}/api/v1/courses/", make_token(settings, foreign_key))

    assert response.status_code == 401
    assert response.json()["valid"] is False
    assert response.json()["code"] == code
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'


def test_a_denied_session_is_401_token_revoked(base_url, verifier, settings):
    claims = claims_for(settings)
    verifier.deny(session_ids=[claims["sid"]])

    response = get(f"{base_url}/api/v1/courses/", tokens.encode(claims))

    assert response.status_code == 401
    assert response.json() == {"valid": False, "detail": "Token has been revoked.", "code": "token_revoked"}


def test_a_public_path_passes_unchecked(base_url):
    response = get(f"{base_url}/health")

    assert response.status_code == 200
    assert response.json()["sub"] is None


def test_is_public_lets_a_request_through_by_any_rule(serve, verifier):
    preflight_free = BearerTokenMiddleware(
        echo_app, verifier, is_public=lambda environ: environ["REQUEST_METHOD"] == "OPTIONS"
    )
    url = serve(preflight_free)

    assert requests.options(f"{url}/api/v1/courses/", timeout=5).status_code == 200
    assert get(f"{url}/api/v1/courses/").status_code == 401


def test_no_signing_keys_is_503(serve, server, settings):
    server.expect_request(JWKS_PATH).respond_with_data("down", status=503)
    verifier = TokenVerifier(jwks_url=server.url_for(JWKS_PATH), issuer=settings.JWT_ISSUER)
    url = serve(BearerTokenMiddleware(echo_app, verifier))

    response = get(f"{url}/api/v1/courses/", tokens.encode(claims_for(settings)))

    assert response.status_code == 503
    assert response.json()["code"] == "authentication_unavailable"
