"""HTTP hardening: body limits, content types, methods, security headers, CORS, no tracebacks."""

import pytest
from rest_framework import status

from conftest import TEST_PASSWORD

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


def test_oversized_json_body_is_refused_before_parsing(api_client, settings):
    body = '{"username": "' + "x" * (settings.REQUEST_MAX_BYTES + 10) + '", "password": "y"}'

    response = api_client.post(f"{API}/login/", body, content_type="application/json")

    assert response.status_code == status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "payload_too_large"


def test_wrong_content_type_is_415(api_client):
    response = api_client.post(f"{API}/login/", "username=a&password=b", content_type="text/plain")

    assert response.status_code == status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    assert response.json()["code"] == "unsupported_media_type"


def test_unsupported_method_is_405(api_client):
    response = api_client.put(f"{API}/login/", {}, format="json")

    assert response.status_code == status.HTTP_405_METHOD_NOT_ALLOWED
    assert "detail" in response.json()


def test_unknown_url_is_json_404(client):
    response = client.get("/api/v1/users/nope/")

    assert response.status_code == status.HTTP_404_NOT_FOUND
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_security_headers(api_client):
    response = api_client.get(f"{API}/health/live/")

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_cors_only_for_configured_origins(api_client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.school.example"]

    allowed = api_client.options(
        f"{API}/login/", HTTP_ORIGIN="https://app.school.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    other = api_client.options(
        f"{API}/login/", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )

    assert allowed["Access-Control-Allow-Origin"] == "https://app.school.example"
    assert "Access-Control-Allow-Origin" not in other


def test_unhandled_error_is_a_generic_json_500_without_traceback(api_client, monkeypatch, caplog):
    from users.api import views

    def explode(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(views.user_services, "user_register", explode)

    response = api_client.post(
        f"{API}/register/",
        {"username": "boom", "email": "boom@school.test", "password": "Quiet-river-stones-2024"},
        format="json",
        HTTP_X_REQUEST_ID="trace-me",
    )

    assert response.status_code == status.HTTP_500_INTERNAL_SERVER_ERROR
    assert response.json() == {"detail": "Internal server error.", "code": "server_error"}
    assert "secret internal detail" not in response.content.decode()
    assert response["X-Request-ID"] == "trace-me"
    (logged,) = [r for r in caplog.records if r.exc_info]  # logged with the request id, not shown
    assert "secret internal detail" in str(logged.exc_info[1])
    assert logged.request_id == "trace-me"


class TestCookieMachineryOnlyOutsideTheAPI:
    """The bearer-token API skips the admin's session, auth and messages middleware; the admin keeps them."""

    def test_api_answers_ignore_and_set_no_cookies(self, client, hod, login):
        from django.conf import settings

        client.force_login(hod)  # a valid admin session cookie rides along
        client.cookies[settings.CSRF_COOKIE_NAME] = "x" * 32

        response = client.get("/api/v1/users/profile/")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED  # a session never authenticates the API
        assert not response.cookies
        assert "Cookie" not in response.get("Vary", "")

    def test_api_posts_need_no_csrf_token(self, hod, login):
        from django.test import Client

        client = Client(enforce_csrf_checks=True)
        token = login(hod)["access_token"]

        response = client.post(
            "/api/v1/users/logout/", {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )

        assert response.status_code == status.HTTP_204_NO_CONTENT

    def test_the_admin_still_has_sessions_and_csrf(self, hod):
        from django.test import Client

        client = Client(enforce_csrf_checks=True)
        login_page = client.get("/admin/login/")
        assert login_page.status_code == status.HTTP_200_OK
        token = login_page.cookies["csrftoken"].value

        refused = client.post("/admin/login/", {"username": "hod", "password": "x"})
        accepted = client.post(
            "/admin/login/?next=/admin/",
            {"username": "hod", "password": TEST_PASSWORD, "csrfmiddlewaretoken": token},
        )

        assert refused.status_code == status.HTTP_403_FORBIDDEN  # no CSRF token
        assert accepted.status_code == status.HTTP_302_FOUND
        assert client.get("/admin/").status_code == status.HTTP_200_OK  # the session carries the login

    @pytest.mark.parametrize(("path", "built"), [("/api/v1/users/profile/", False), ("/admin/", True)])
    def test_the_session_user_and_messages_are_built_only_outside_the_api(self, rf, path, built):
        from django.http import HttpResponse

        from user_service.middleware import AuthenticationMiddleware, MessageMiddleware, SessionMiddleware

        seen = {}

        def view(request):
            seen.update({name: hasattr(request, name) for name in ("session", "user", "_messages")})
            return HttpResponse()

        chain = SessionMiddleware(AuthenticationMiddleware(MessageMiddleware(view)))
        chain(rf.get(path))

        assert seen == {"session": built, "user": built, "_messages": built}
