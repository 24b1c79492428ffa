"""The hot paths of a morning rush stay cheap: index use and statement counts (behaviour is tested elsewhere)."""

import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from conftest import TEST_PASSWORD
from users.models import SecurityEvent, ServiceAccount, SessionEndReason, UserSession
from users.selectors import user_for_login
from users.services.service_accounts import service_account_create, service_token_issue

API = "/api/v1/users"

pytestmark = pytest.mark.django_db


def _plan(sql: str, params) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny test table would be scanned anyway
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


class TestLoginLookup:
    @pytest.mark.parametrize(
        ("identifier", "indexes"),
        [
            ("Some.One", {"users_user_username_ci_unique"}),
            ("Some.One@Example.COM", {"users_user_username_ci_unique", "users_user_email_ci_unique"}),
        ],
    )
    def test_served_by_the_case_insensitive_indexes(self, identifier, indexes):
        with CaptureQueriesContext(connection) as captured:
            user_for_login(identifier)
        plan = _plan(captured.captured_queries[-1]["sql"], None)

        for index in indexes:
            assert index in plan, plan
        assert "Seq Scan on users_customuser" not in plan, plan

    def test_finds_the_account_in_any_case(self, student):
        assert user_for_login(student.username.upper()) == student
        assert user_for_login(student.email.title()) == student
        assert user_for_login(f"x{student.username}") is None


@pytest.mark.django_db(transaction=True)
class TestRefreshStatements:
    """token/refresh/: one SQL statement, its own transaction (one round trip, one commit, one WAL flush)."""

    def test_one_statement(self, api_client, student, login, django_assert_max_num_queries):
        refresh_token = login(student)["refresh_token"]
        cold = api_client.post(f"{API}/token/refresh/", {"refresh_token": refresh_token}, format="json")
        refresh_token = cold.json()["refresh_token"]  # the person's JSON is cached now, as user/{id}/ caches it

        with django_assert_max_num_queries(1) as captured:  # no BEGIN or COMMIT either: autocommit
            response = api_client.post(f"{API}/token/refresh/", {"refresh_token": refresh_token}, format="json")

        assert response.status_code == 200, response.content
        assert [query["sql"].split(None, 1)[0] for query in captured.captured_queries] == ["WITH"]
        assert response.json()["user"] == cold.json()["user"] == login(student)["user"]
        assert response.json()["user"]["id"] == student.pk
        again = api_client.post(
            f"{API}/token/refresh/", {"refresh_token": response.json()["refresh_token"]}, format="json"
        )
        assert again.status_code == 200

    def test_reuse_still_ends_the_session(self, api_client, student, login):
        refresh_token = login(student)["refresh_token"]
        first = api_client.post(f"{API}/token/refresh/", {"refresh_token": refresh_token}, format="json")

        reused = api_client.post(f"{API}/token/refresh/", {"refresh_token": refresh_token}, format="json")

        assert (first.status_code, reused.status_code, reused.json()["code"]) == (200, 401, "token_reused")
        rotated = api_client.post(
            f"{API}/token/refresh/", {"refresh_token": first.json()["refresh_token"]}, format="json"
        )
        assert rotated.status_code == 401
        assert UserSession.objects.get(user=student).end_reason == SessionEndReason.REFRESH_REUSE

    def test_an_ended_session_keeps_its_token_unclaimed(self, api_client, student, login):
        refresh_token = login(student)["refresh_token"]
        UserSession.objects.filter(user=student).update(ended_at=timezone.now())

        response = api_client.post(f"{API}/token/refresh/", {"refresh_token": refresh_token}, format="json")

        assert (response.status_code, response.json()["code"]) == (401, "session_ended")
        assert not BlacklistedToken.objects.exists()  # rolled back with the refusal


class TestServiceGrant:
    def test_last_used_is_written_once_per_resolution(self, settings, django_assert_num_queries):
        settings.SERVICE_ACCOUNT_LAST_USED_SECONDS = 60
        account, secret = service_account_create(name="gateway", scopes=["users:read"])

        service_token_issue(client_id="gateway", client_secret=secret)
        first = ServiceAccount.objects.get(pk=account.pk).last_used_at
        # the next grant: the lockout check, the account, the audit record; no write of last_used_at
        with django_assert_num_queries(3) as captured:
            service_token_issue(client_id="gateway", client_secret=secret)

        assert first is not None
        assert not any(q["sql"].startswith("UPDATE") for q in captured.captured_queries)
        assert ServiceAccount.objects.get(pk=account.pk).last_used_at == first
        ServiceAccount.objects.filter(pk=account.pk).update(last_used_at=first - timedelta(seconds=61))
        service_token_issue(client_id="gateway", client_secret=secret)
        assert ServiceAccount.objects.get(pk=account.pk).last_used_at > first


@pytest.mark.django_db(transaction=True)  # a real handler: request_started closes the connection
class TestAPIHandler:
    """user_service.wsgi: the API's handler leaves out only the admin's middleware; pages keep all of it."""

    def _get(self, path: str, **headers: str) -> tuple[str, dict[str, str], bytes]:
        from user_service.wsgi import application

        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": io.StringIO(),
            **{f"HTTP_{key.upper()}": value for key, value in headers.items()},
        }
        answer: dict = {}

        def start_response(status, response_headers, exc_info=None):
            answer["status"], answer["headers"] = status, dict(response_headers)

        body = b"".join(application(environ, start_response))
        return answer["status"], answer["headers"], body

    def test_the_api_keeps_request_ids_and_security_headers(self, student, login):
        access = login(student)["access_token"]

        status, headers, body = self._get(
            f"{API}/validate-token/", authorization=f"Bearer {access}", x_request_id="r-1"
        )

        assert status.startswith("200"), body
        assert headers["X-Request-ID"] == "r-1"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert "Set-Cookie" not in headers

    def test_the_admin_keeps_its_session_and_csrf(self):
        status, headers, _ = self._get("/admin/login/")

        assert status.startswith("200")
        assert "csrftoken=" in headers.get("Set-Cookie", "")
        assert headers["X-Frame-Options"] == "DENY"


class TestCheaperParsing:
    """The faster checks refuse exactly what the library checks they replace refuse."""

    SEGMENTS = [
        b"",
        b"e30",
        b"e30=",
        b"e30==",
        b"e30===",
        b"eyJhbGciOiJSUzI1NiJ9",
        b"eyJhbGciOiJSUzI1NiJ9=",
        b"abcd",
        b"abcde",
        b"abc=",
        b"ab==",
        b"ab=",
        b"a===",
        b"ab+/",
        b"ab!!",
        b"ab d",
        b"ab\n",
        b"YQ",
        b"YR",
        b"YR==",
        b"_-_-",
        b"\xff\xfe",
        b"=",
        b"==",
        b"e3=0",
    ]

    @pytest.mark.parametrize("segment", SEGMENTS)
    def test_jws_segments_as_pyjwt(self, segment):
        import jwt

        from users.tokens import _JWS

        def outcome(decode):
            try:
                return decode(segment, "payload")
            except jwt.DecodeError as exc:
                return ("refused", str(exc))

        assert outcome(_JWS._decode_base64url_segment) == outcome(jwt.api_jws.PyJWS._decode_base64url_segment)

    @pytest.mark.parametrize("value", ["abc.def-ghi_j", "a\ud800b", "\udfff", "ok" * 900])
    def test_token_field_as_drf(self, value):
        from rest_framework import serializers

        from users.api.serializers import TokenField

        def outcome(field):
            try:
                return field.run_validation(value)
            except serializers.ValidationError as exc:
                return ("refused", exc.detail)

        assert outcome(TokenField()) == outcome(serializers.CharField(max_length=4096))


class TestRouteOrder:
    def test_the_hot_routes_first_change_no_answer(self):
        """Every route's own URL resolves to the route the declared order would have chosen."""
        import uuid

        from django.urls import resolve

        from users.api import urls

        samples = {"int": "7", "uuid": str(uuid.uuid4()), "str": "x", "slug": "x", "path": "x"}
        assert [route.name for route in urls.urlpatterns[: len(urls.HOT_ROUTES)]] == list(urls.HOT_ROUTES)
        for route in urls._routes:
            pattern = str(route.pattern)
            for name, converter in route.pattern.converters.items():
                kind = type(converter).__name__.removesuffix("Converter").lower()
                pattern = pattern.replace(f"<{kind}:{name}>", samples[kind])
            first_in_declared_order = next(r for r in urls._routes if r.pattern.match(pattern))
            assert resolve(f"{API}/{pattern}").url_name == first_in_declared_order.name, pattern


class TestContentNegotiation:
    @pytest.mark.parametrize(
        "accept",
        [None, "*/*", "application/json", "text/html", "application/json; indent=4", "*/*;q=0.8", "", "text/*"],
    )
    @pytest.mark.parametrize("query", ["", "format=json", "format=api", "a=1"])
    @pytest.mark.parametrize("browsable", [False, True])
    def test_answers_as_drf(self, rf, accept, query, browsable):
        from django.http import Http404
        from rest_framework import exceptions
        from rest_framework.negotiation import DefaultContentNegotiation
        from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
        from rest_framework.request import Request

        from users.api.negotiation import ContentNegotiation

        renderers = [JSONRenderer(), BrowsableAPIRenderer()] if browsable else [JSONRenderer()]
        headers = {} if accept is None else {"HTTP_ACCEPT": accept}

        def outcome(negotiation):
            request = Request(rf.get(f"/x/?{query}", **headers))
            try:
                renderer, media_type = negotiation.select_renderer(request, renderers)
            except (exceptions.NotAcceptable, Http404) as exc:
                return type(exc).__name__
            return type(renderer).__name__, media_type

        assert outcome(ContentNegotiation()) == outcome(DefaultContentNegotiation())


@pytest.mark.django_db(transaction=True)
class TestLoginCommits:
    def test_a_password_login_commits_three_times(self, api_client, student, django_assert_max_num_queries):
        """The lockout's slot and its release (each must be seen by other processes at once), then the session
        with its tokens, last_login and the audit record together."""
        with django_assert_max_num_queries(20) as captured:
            response = api_client.post(
                f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
            )
        assert response.status_code == 200, response.content

        commits, in_block = 0, False
        for query in captured.captured_queries:
            verb = query["sql"].split(None, 1)[0].upper()
            if verb == "BEGIN":
                in_block = True
            elif verb == "COMMIT":
                in_block, commits = False, commits + 1
            elif verb in {"INSERT", "UPDATE", "DELETE", "WITH"} and not in_block:
                commits += 1
        assert commits == 3, [query["sql"][:60] for query in captured.captured_queries]
        assert SecurityEvent.objects.filter(type="login_succeeded", user=student).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_refresh_answers_the_session_and_person_as_stored(student, login):
    """tokens_refresh builds its answer from the one statement's row: the same values the database holds."""
    from users.services.auth import tokens_refresh

    refresh_token = login(student)["refresh_token"]

    refreshed = tokens_refresh(refresh_token=refresh_token)

    stored = UserSession.objects.get(pk=refreshed.session.pk)
    for name in ("user_id", "created_at", "last_used_at", "expires_at", "amr", "auth_time"):
        assert getattr(refreshed.session, name) == getattr(stored, name), name
    assert (refreshed.user.pk, refreshed.user.username, refreshed.user.user_type) == (
        student.pk,
        student.username,
        student.user_type,
    )
    assert refreshed.user.role == student.role
