"""The Flask gateway of clients/README.md ("The gateway's integration"), run as written against a live user service."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from werkzeug import Request, Response

from conftest import TEST_PASSWORD
from users.services.service_accounts import service_account_create

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def readme_gateway_source() -> str:
    """The first Python block under the README's "The gateway's integration" heading."""
    text = README.read_text()
    section = text[text.index("## The gateway's integration") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("\n```", start)]


@pytest.fixture
def gateway(tmp_path, monkeypatch, live_server, server, settings):
    """The README's gateway module, configured by its environment: the live user service and a sibling stub."""
    account, secret = service_account_create(name="gateway", scopes=["users:read"])
    monkeypatch.setenv("USER_SERVICE_URL", live_server.url)
    monkeypatch.setenv("USER_SERVICE_JWT_ISSUER", settings.JWT_ISSUER)
    monkeypatch.setenv("ACADEMIC_SERVICE_URL", server.url_for("").rstrip("/"))
    monkeypatch.setenv("ATTENDANCE_SERVICE_URL", server.url_for("").rstrip("/"))
    monkeypatch.setenv("GATEWAY_CLIENT_ID", account.client_id)
    monkeypatch.setenv("GATEWAY_CLIENT_SECRET", secret)
    path = tmp_path / "readme_gateway.py"
    path.write_text(readme_gateway_source())
    spec = importlib.util.spec_from_file_location("readme_gateway", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    module.poller.stop()
    # Closing the gateway's keep-alive connections ends the live server's threads, and their database connections
    for session in (module.upstream, module.poller.session, module.service_token.session):
        session.close()


def test_the_readme_gateway_signs_in_proxies_calls_and_honours_logout(gateway, server, make_user):
    # Given a person of the user service, and an academic service behind the gateway that records what it gets
    person = make_user(username="gw-alice")
    seen: list[dict[str, str]] = []

    def course(request: Request) -> Response:
        seen.append(dict(request.headers))
        return Response('{"id": 7, "name": "Physics"}', content_type="application/json")

    server.expect_request("/api/v1/academic/courses/7/").respond_with_handler(course)
    client = gateway.app.test_client()

    # When they sign in through the gateway, then the user service answers with its own tokens
    login = client.post("/api/v1/users/login/", json={"username": "gw-alice", "password": TEST_PASSWORD})
    assert login.status_code == 200
    assert login.json["user"]["id"] == person.id
    bearer = {"Authorization": f"Bearer {login.json['access_token']}"}

    # And a call to a sibling without a token stops at the gateway with 401 JSON
    refused = client.get("/api/v1/academic/courses/7/")
    assert refused.status_code == 401
    assert refused.json["code"] == "not_authenticated"
    assert seen == []

    # And with the token it reaches the sibling, carrying the person's token and identity
    proxied = client.get("/api/v1/academic/courses/7/", headers=bearer)
    assert proxied.status_code == 200
    assert proxied.json == {"id": 7, "name": "Physics"}
    assert seen[0]["Authorization"] == bearer["Authorization"]
    assert (seen[0]["X-User-Id"], seen[0]["X-User-Role"]) == (str(person.id), "student")

    # And the gateway's own call (its service token, scope users:read) reads the person's profile
    me = client.get("/api/v1/me", headers=bearer)
    assert me.status_code == 200
    assert me.json["username"] == "gw-alice"

    # When the person logs out through the gateway, then within seconds the gateway refuses the token itself
    assert client.post("/api/v1/users/logout/", json={}, headers=bearer).status_code == 204
    deadline = time.monotonic() + 5
    while (answer := client.get("/api/v1/academic/courses/7/", headers=bearer)).status_code == 200:
        assert time.monotonic() < deadline, "the gateway still accepts a logged-out token"
        time.sleep(0.1)
    assert answer.status_code == 401
    assert answer.json == {"valid": False, "detail": "Token has been revoked.", "code": "token_revoked"}
