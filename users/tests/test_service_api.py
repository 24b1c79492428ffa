"""Service accounts, service-token, introspection, bulk_info, revocations, and the key commands."""

import base64
import io
from urllib.parse import quote_plus

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from rest_framework import status

from users import tokens
from users.models import ServiceAccount, UserType
from users.services.service_accounts import service_account_create

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


class TestServiceAccounts:
    def test_command_prints_the_secret_once_and_stores_a_hash(self):
        out = io.StringIO()

        call_command(
            "create_service_account", "Academic Service", "--scopes", "users:read", stdout=out, stderr=io.StringIO()
        )

        lines = dict(line.split("=", 1) for line in out.getvalue().splitlines())
        account = ServiceAccount.objects.get(client_id="academic-service")
        assert lines["client_id"] == "academic-service"
        assert account.scopes == ["users:read"]
        assert lines["client_secret"] not in account.secret_hash
        assert account.secret_hash.startswith("sha256$")

    def test_command_refuses_unknown_scopes_and_duplicates(self):
        with pytest.raises(CommandError, match="Unknown scope"):
            call_command("create_service_account", "x", "--scopes", "root", stdout=io.StringIO())
        service_account_create(name="dup", scopes=[])
        with pytest.raises(CommandError, match="already exists"):
            call_command("create_service_account", "dup", stdout=io.StringIO())


class TestServiceToken:
    @pytest.fixture
    def credentials(self):
        account, secret = service_account_create(name="gateway", scopes=["users:read", "tokens:introspect"])
        return account.client_id, secret

    def _assert_token(self, response, client_id):
        assert response.status_code == status.HTTP_200_OK, response.content
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 300
        assert body["scope"] == "tokens:introspect users:read"
        claims = tokens.decode(body["access_token"], token_type=tokens.SERVICE)
        assert claims["sub"] == client_id
        assert claims["scope"] == ["tokens:introspect", "users:read"]
        assert response["Cache-Control"] == "no-store"

    def test_json(self, api_client, credentials):
        client_id, secret = credentials

        response = api_client.post(
            f"{API}/service-token/", {"client_id": client_id, "client_secret": secret}, format="json"
        )

        self._assert_token(response, client_id)

    def test_form(self, api_client, credentials):
        client_id, secret = credentials

        response = api_client.post(
            f"{API}/service-token/",
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )  # multipart is not accepted; send urlencoded below
        urlencoded = api_client.post(
            f"{API}/service-token/",
            f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}",
            content_type="application/x-www-form-urlencoded",
        )

        assert response.status_code == status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
        self._assert_token(urlencoded, client_id)

    def test_http_basic(self, api_client, credentials):
        client_id, secret = credentials
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()

        response = api_client.post(f"{API}/service-token/", {}, format="json", HTTP_AUTHORIZATION=f"Basic {basic}")

        self._assert_token(response, client_id)

    @pytest.mark.parametrize(
        "body",
        [
            {"client_id": "gateway", "client_secret": "wrong"},
            {"client_id": "nobody", "client_secret": "wrong"},
            {"client_id": "gateway"},
            {},
        ],
    )
    def test_wrong_or_missing_credentials(self, api_client, credentials, body):
        response = api_client.post(f"{API}/service-token/", body, format="json")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["code"] == "invalid_client"

    def test_inactive_account(self, api_client, credentials):
        client_id, secret = credentials
        ServiceAccount.objects.filter(client_id=client_id).update(is_active=False)

        response = api_client.post(
            f"{API}/service-token/", {"client_id": client_id, "client_secret": secret}, format="json"
        )

        assert response.status_code == status.HTTP_401_UNAUTHORIZED

    def test_bad_basic_header_and_grant_type(self, api_client, credentials):
        bad_basic = api_client.post(f"{API}/service-token/", {}, format="json", HTTP_AUTHORIZATION="Basic !!!")
        bad_grant = api_client.post(f"{API}/service-token/", {"grant_type": "password"}, format="json")

        assert bad_basic.status_code == status.HTTP_401_UNAUTHORIZED
        assert bad_grant.status_code == status.HTTP_400_BAD_REQUEST

    def test_throttled(self, api_client, credentials, service_token_rate):
        service_token_rate("3/min")

        codes = [
            api_client.post(f"{API}/service-token/", {"client_id": "x", "client_secret": "y"}, format="json")
            for _ in range(4)
        ]

        assert [r.status_code for r in codes] == [401, 401, 401, 429]
        assert int(codes[-1]["Retry-After"]) > 0


TOKEN_ENDPOINTS = [f"{API}/service-token/", "/oidc/token/"]


@pytest.fixture
def service_token_rate(settings):
    """Set the ``service_token`` scope's rate for one test."""

    def set_rate(rate: str) -> None:
        rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "service_token": rate}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    return set_rate


def _grant(client, endpoint: str, **headers: str):
    """A client-credentials grant as an OAuth client sends it: form-encoded, credentials in ``headers`` (Basic)."""
    return client.post(
        endpoint, "grant_type=client_credentials", content_type="application/x-www-form-urlencoded", **headers
    )


def _basic(client_id: str, secret: str) -> str:
    """HTTP Basic client authentication (RFC 6749 2.3.1): each part form-urlencoded, then base64."""
    return "Basic " + base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()


def _error_code(response) -> str:
    """The error code in the endpoint's own format: the API's ``code``, the OAuth token endpoint's ``error``."""
    body = response.json()
    return body["code"] if "code" in body else body["error"]


@pytest.mark.parametrize("endpoint", TOKEN_ENDPOINTS)
class TestClientCredentialsGrant:
    """service-token/ and /oidc/token/'s client-credentials grant: one parser, one answer, one counter, one rate."""

    def test_basic_credentials_are_percent_decoded(self, client, endpoint):
        account, secret = service_account_create(name="odd", client_id="svc:a b+c%", scopes=["users:read"])

        response = _grant(client, endpoint, HTTP_AUTHORIZATION=_basic(account.client_id, secret))

        assert response.status_code == status.HTTP_200_OK, response.content
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 300, "users:read")
        assert tokens.decode(body["access_token"], token_type=tokens.SERVICE)["sub"] == "svc:a b+c%"
        assert response["Cache-Control"] == "no-store"

    @pytest.mark.parametrize(
        "header",
        [
            "Basic !!!",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe:secret").decode(),
            "Basic",
        ],
    )
    def test_malformed_basic_is_an_invalid_client(self, client, endpoint, header):
        response = _grant(client, endpoint, HTTP_AUTHORIZATION=header)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert _error_code(response) == "invalid_client"
        assert "Malformed HTTP Basic" in response.content.decode()

    def test_a_grant_is_counted_in_the_metrics(self, client, endpoint):
        from prometheus_client import REGISTRY

        account, secret = service_account_create(name="counted", scopes=[])
        before = REGISTRY.get_sample_value("ums_tokens_issued_total", {"type": "service"}) or 0

        response = _grant(client, endpoint, HTTP_AUTHORIZATION=_basic(account.client_id, secret))

        assert response.status_code == status.HTTP_200_OK
        assert REGISTRY.get_sample_value("ums_tokens_issued_total", {"type": "service"}) == before + 1

    def test_both_endpoints_share_one_counter_per_client_ip(self, client, endpoint, service_token_rate):
        service_token_rate("3/min")
        other = next(e for e in TOKEN_ENDPOINTS if e != endpoint)
        wrong = {"HTTP_AUTHORIZATION": _basic("nobody", "wrong")}

        counted = [_grant(client, e, **wrong).status_code for e in (endpoint, other, endpoint)]
        over = [_grant(client, e, **wrong) for e in (other, endpoint)]
        elsewhere = _grant(client, other, REMOTE_ADDR="10.9.9.9", **wrong)

        assert counted == [401, 401, 401]
        assert [r.status_code for r in over] == [429, 429]
        assert all(int(r["Retry-After"]) > 0 for r in over)
        assert all(_error_code(r) == "throttled" for r in over)
        oauth = next(r for r in over if r.request["PATH_INFO"] == "/oidc/token/").json()
        assert set(oauth) == {"error", "error_description"}
        assert elsewhere.status_code == status.HTTP_401_UNAUTHORIZED


class TestIntrospection:
    def test_active_access_token(self, service_client, login, student):
        access = login(student)["access_token"]

        response = service_client("tokens:introspect").post(
            f"{API}/token/introspect/", {"token": access}, format="json"
        )

        assert response.status_code == status.HTTP_200_OK
        body = response.json()
        assert body["active"] is True
        assert body["sub"] == str(student.pk)
        assert body["token_type"] == "access"
        assert body["username"] == student.username

    def test_form_encoded(self, service_client, login, student):
        access = login(student)["access_token"]

        response = service_client("tokens:introspect").post(
            f"{API}/token/introspect/", f"token={access}", content_type="application/x-www-form-urlencoded"
        )

        assert response.json()["active"] is True

    def test_service_token(self, service_client):
        client = service_client("tokens:introspect")
        own = client._credentials["HTTP_AUTHORIZATION"].split()[1]

        body = client.post(f"{API}/token/introspect/", {"token": own}, format="json").json()

        assert body["active"] is True
        assert body["client_id"] == "attendance"
        assert body["scope"] == "tokens:introspect"

    @pytest.mark.parametrize("kind", ["garbage", "refresh", "logged_out", "expired"])
    def test_inactive(self, service_client, client_for, student, kind):
        user_client = client_for(student)
        token = {
            "garbage": "not.a.token",
            "refresh": user_client.tokens["refresh_token"],
            "logged_out": user_client.tokens["access_token"],
            "expired": tokens.encode(
                {
                    "sub": "1",
                    "sid": "00000000-0000-0000-0000-000000000000",
                    "jti": "j",
                    "iat": 1,
                    "exp": 2,
                    "iss": "http://127.0.0.1:8000",
                    "token_type": "access",
                }
            ),
        }[kind]
        if kind == "logged_out":
            user_client.post(f"{API}/logout/", {}, format="json")

        response = service_client("tokens:introspect").post(f"{API}/token/introspect/", {"token": token}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert response.json() == {"active": False}

    def test_requires_the_scope(self, service_client, client_for, staff, api_client):
        no_scope = service_client("users:read")
        body = {"token": "x"}

        assert no_scope.post(f"{API}/token/introspect/", body, format="json").status_code == 403
        assert client_for(staff).post(f"{API}/token/introspect/", body, format="json").status_code == 403
        assert api_client.post(f"{API}/token/introspect/", body, format="json").status_code == 401

    def test_missing_token(self, service_client):
        response = service_client("tokens:introspect").post(f"{API}/token/introspect/", {}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST


class TestBulkInfo:
    def test_returns_known_users_in_one_query(self, service_client, make_user, django_assert_num_queries):
        users = [make_user() for _ in range(5)]
        client = service_client("users:read")
        client.post(f"{API}/bulk_info/", {"user_ids": []}, format="json")  # warm service-account state

        ids = [u.pk for u in users] + [999_999]
        with django_assert_num_queries(1):
            response = client.post(f"{API}/bulk_info/", {"user_ids": ids}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert [u["id"] for u in response.json()] == sorted(u.pk for u in users)
        assert set(response.json()[0]) >= {"id", "username", "email", "user_type", "role", "is_active"}

    def test_rows_are_exactly_the_shared_user_json(self, service_client, make_user):
        from users.selectors import user_public_data

        users = [make_user(user_type=t) for t in (UserType.HOD, UserType.STAFF, UserType.STUDENT)]

        body = service_client("users:read").post(
            f"{API}/bulk_info/", {"user_ids": [u.pk for u in users]}, format="json"
        )

        assert body.json() == [user_public_data(u) for u in users]

    @pytest.mark.parametrize("role", ["hod", "staff"])
    def test_staff_and_hod_may_call(self, request, client_for, role, student):
        client = client_for(request.getfixturevalue(role))

        response = client.post(f"{API}/bulk_info/", {"user_ids": [student.pk]}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert response.json()[0]["id"] == student.pk

    def test_students_services_without_scope_and_anonymous_may_not(
        self, client_for, student, service_client, api_client
    ):
        body = {"user_ids": [student.pk]}

        assert client_for(student).post(f"{API}/bulk_info/", body, format="json").status_code == 403
        assert service_client("tokens:introspect").post(f"{API}/bulk_info/", body, format="json").status_code == 403
        assert api_client.post(f"{API}/bulk_info/", body, format="json").status_code == 401

    @pytest.mark.parametrize(
        "body",
        [
            {"user_ids": list(range(1, 1002))},
            {"user_ids": ["a"]},
            {"user_ids": [1.5]},
            {"user_ids": [0]},
            {"user_ids": [2**70]},
            {"user_ids": "1,2"},
            {"user_ids": None},
            {},
            {"user_ids": [1], "extra": True},
        ],
        ids=["too-many", "string", "float", "zero", "huge", "not-a-list", "null", "missing", "unknown-field"],
    )
    def test_bad_input(self, service_client, body):
        response = service_client("users:read").post(f"{API}/bulk_info/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST

    def test_exactly_the_limit_is_accepted(self, service_client):
        response = service_client("users:read").post(
            f"{API}/bulk_info/", {"user_ids": list(range(1, 1001))}, format="json"
        )

        assert response.status_code == status.HTTP_200_OK


def users_bulk_public_json(*, user_ids: list[int]) -> bytes:
    """What ``bulk_info/`` answers: the users' cached JSON, misses read from the database."""
    from users.cache import users_public_json_get
    from users.selectors import users_public_json_rows

    return users_public_json_get(user_ids, load=users_public_json_rows)


class TestBulkInfoJson:
    """On PostgreSQL the database writes bulk_info's JSON; it must be exactly the shared user JSON."""

    @pytest.fixture
    def awkward_users(self, make_user):
        from datetime import UTC, datetime

        from users.models import CustomUser

        names = ['Quote " and \\ backslash', "Émile Zoë 漢字", "tab\tand\nnewline", "</script>"]
        users = [
            make_user(user_type=t, first_name=n)
            for t, n in zip((UserType.HOD, UserType.STAFF, UserType.STUDENT, UserType.STUDENT), names, strict=True)
        ]
        CustomUser.objects.filter(pk=users[0].pk).update(date_joined=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
        CustomUser.objects.filter(pk=users[1].pk).update(date_joined=datetime(2024, 1, 2, 3, 4, 5, 60, tzinfo=UTC))
        CustomUser.objects.filter(pk=users[2].pk).update(is_active=False, email_verified=True, last_name="")
        return list(CustomUser.objects.filter(pk__in=[u.pk for u in users]).order_by("pk"))

    def test_database_json_equals_the_python_json_cold_and_warm(self, awkward_users):
        import json

        from users.selectors import user_public_data, users_bulk_public, users_public_json_rows

        ids = [u.pk for u in awkward_users] + [987_654_321]
        expected = [user_public_data(u) for u in awkward_users]

        cold = json.loads(users_bulk_public_json(user_ids=ids))
        warm = json.loads(users_bulk_public_json(user_ids=ids))

        assert cold == warm == users_bulk_public(user_ids=ids) == expected
        assert [json.loads(text) for _, text in users_public_json_rows([u.pk for u in awkward_users])] == expected
        assert cold[0]["date_joined"] == "2024-01-02T03:04:05Z"
        assert cold[1]["date_joined"] == "2024-01-02T03:04:05.000060Z"

    def test_no_known_id_gives_an_empty_list(self):
        assert users_bulk_public_json(user_ids=[987_654_321]) == b"[]"
        assert users_bulk_public_json(user_ids=[]) == b"[]"

    def test_a_warm_lookup_makes_no_query_and_a_change_shows_at_once(
        self, service_client, awkward_users, django_assert_num_queries
    ):
        client = service_client("users:read")
        ids = [u.pk for u in awkward_users]
        client.post(f"{API}/bulk_info/", {"user_ids": ids}, format="json")

        with django_assert_num_queries(0):
            warm = client.post(f"{API}/bulk_info/", {"user_ids": ids}, format="json").json()
        changed = awkward_users[2]
        changed.first_name = "Changed"
        changed.save()
        with django_assert_num_queries(1):  # only the changed user is read again
            after = client.post(f"{API}/bulk_info/", {"user_ids": ids}, format="json").json()

        assert [row["first_name"] for row in after] == [
            *(row["first_name"] for row in warm[:2]),
            "Changed",
            warm[3]["first_name"],
        ]

    def test_unknown_ids_are_looked_up_every_time(self, service_client, django_assert_num_queries):
        client = service_client("users:read")
        client.post(f"{API}/bulk_info/", {"user_ids": [987_654_321]}, format="json")

        with django_assert_num_queries(1):
            assert client.post(f"{API}/bulk_info/", {"user_ids": [987_654_321]}, format="json").json() == []

    def test_redis_unreachable_the_database_answers(self, cache_unreachable, awkward_users):
        import json

        from users.selectors import user_public_data

        written = json.loads(users_bulk_public_json(user_ids=[u.pk for u in awkward_users]))

        assert written == [user_public_data(u) for u in awkward_users]

    def test_duplicate_ids_give_one_row(self, service_client, awkward_users):
        pk = awkward_users[0].pk

        response = service_client("users:read").post(f"{API}/bulk_info/", {"user_ids": [pk, pk, pk]}, format="json")

        assert [row["id"] for row in response.json()] == [pk]
        assert response["Content-Type"] == "application/json"

    def test_ids_as_digit_strings_are_still_accepted(self, service_client, awkward_users):
        pk = awkward_users[0].pk

        response = service_client("users:read").post(f"{API}/bulk_info/", {"user_ids": [str(pk)]}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert [row["id"] for row in response.json()] == [pk]

    def test_booleans_are_not_ids(self, service_client):
        response = service_client("users:read").post(f"{API}/bulk_info/", {"user_ids": [True]}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST


class TestUserDetailCache:
    """user/{id}/ is served from the cache when warm, and every write to the user or its profile shows at once."""

    @pytest.fixture
    def reader(self, service_client):
        client = service_client("users:read")
        client.get(f"{API}/user/0/")  # warms the service account's state
        return client

    def test_warm_lookup_makes_no_query(self, reader, student, django_assert_num_queries):
        cold = reader.get(f"{API}/user/{student.pk}/").json()

        with django_assert_num_queries(0):
            warm = reader.get(f"{API}/user/{student.pk}/")

        assert warm.status_code == status.HTTP_200_OK
        assert warm.json() == cold
        assert warm.json()["profile"]["id"] == student.student_profile.pk

    def test_profile_edit_through_the_api_is_seen_at_once(self, reader, student, client_for, hod):
        reader.get(f"{API}/user/{student.pk}/")
        url = f"{API}/students/{student.student_profile.pk}/"

        client_for(hod).patch(url, {"address": "9 Elm Row", "user": {"first_name": "Renamed"}}, format="json")

        body = reader.get(f"{API}/user/{student.pk}/").json()
        assert (body["first_name"], body["profile"]["address"]) == ("Renamed", "9 Elm Row")

    def test_own_profile_edit_is_seen_at_once(self, reader, student, client_for):
        reader.get(f"{API}/user/{student.pk}/")

        client_for(student).patch(f"{API}/profile/", {"last_name": "Changed"}, format="json")

        assert reader.get(f"{API}/user/{student.pk}/").json()["last_name"] == "Changed"

    def test_deactivation_is_seen_at_once(self, reader, student, client_for, hod):
        reader.get(f"{API}/user/{student.pk}/")

        client_for(hod).delete(f"{API}/students/{student.student_profile.pk}/")

        assert reader.get(f"{API}/user/{student.pk}/").json()["is_active"] is False

    def test_a_profile_saved_anywhere_is_seen_at_once(self, reader, staff):
        reader.get(f"{API}/user/{staff.pk}/")
        profile = staff.staff_profile
        profile.department = "Physics"
        profile.save()

        assert reader.get(f"{API}/user/{staff.pk}/").json()["profile"]["department"] == "Physics"

    def test_a_deleted_user_is_gone_at_once(self, reader, make_user):
        user = make_user()
        assert reader.get(f"{API}/user/{user.pk}/").status_code == status.HTTP_200_OK

        user.delete()

        assert reader.get(f"{API}/user/{user.pk}/").status_code == status.HTTP_404_NOT_FOUND

    def test_a_student_still_cannot_read_a_cached_stranger(self, reader, student, staff, client_for):
        assert reader.get(f"{API}/user/{staff.pk}/").status_code == status.HTTP_200_OK  # now cached

        assert client_for(student).get(f"{API}/user/{staff.pk}/").status_code == status.HTTP_404_NOT_FOUND


class TestRevocations:
    def test_logout_appears_in_the_feed(self, service_client, client_for, student):
        service = service_client("users:read")
        first = service.get(f"{API}/revocations/").json()
        user_client = client_for(student)
        sid = jwt.decode(user_client.tokens["access_token"], options={"verify_signature": False})["sid"]
        user_client.post(f"{API}/logout/", {}, format="json")

        feed = service.get(f"{API}/revocations/", {"since": first["cursor"]}).json()

        assert sid in feed["session_ids"]
        assert feed["cursor"] >= first["cursor"]
        assert feed["truncated"] is False

    def test_only_services(self, client_for, hod, api_client):
        assert client_for(hod).get(f"{API}/revocations/").status_code == status.HTTP_403_FORBIDDEN
        assert api_client.get(f"{API}/revocations/").status_code == status.HTTP_401_UNAUTHORIZED

    def test_any_service_token_reads_the_feed_without_a_scope(self, service_client):
        assert service_client().get(f"{API}/revocations/").status_code == status.HTTP_200_OK

    def test_there_is_no_revocations_scope_to_grant(self):
        with pytest.raises(ValidationError, match="revocations:read"):
            service_account_create(name="poller", scopes=["revocations:read"])

    @pytest.mark.parametrize("since", ["abc", "nan", "inf", "1e400"])
    def test_bad_cursor(self, service_client, since):
        assert service_client().get(f"{API}/revocations/", {"since": since}).status_code == 400

    @pytest.mark.parametrize("since", ["-62135596799", "-62135596800", "253402300799"])
    def test_a_cursor_at_the_ends_of_the_calendar_is_answered(self, service_client, since):
        # given a cursor at the first or last second datetime can hold
        # when the feed is asked for it
        response = service_client().get(f"{API}/revocations/", {"since": since})

        # then it answers with the feed (the window clamps the start), not a 500 from date arithmetic
        assert response.status_code == status.HTTP_200_OK
        assert response.json()["truncated"] is False

    def test_logout_is_published_on_redis(self, client_for, student, settings, django_capture_on_commit_callbacks):
        import redis

        pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
        pubsub.subscribe(settings.REVOCATION_CHANNEL)
        pubsub.get_message(timeout=1)  # subscription confirmation
        user_client = client_for(student)
        sid = jwt.decode(user_client.tokens["access_token"], options={"verify_signature": False})["sid"]

        with django_capture_on_commit_callbacks(execute=True):
            user_client.post(f"{API}/logout/", {}, format="json")

        message = pubsub.get_message(timeout=2)
        pubsub.close()
        assert message is not None
        assert sid in message["data"].decode()


class TestRotateSigningKey:
    def test_rotation_keeps_old_tokens_valid(self, settings, tmp_path, login, student, api_client):
        old_access = login(student)["access_token"]
        new_key, old_public = tmp_path / "new.pem", tmp_path / "old.pub.pem"

        call_command(
            "rotate_signing_key", "--out", str(new_key), "--previous-out", str(old_public), stdout=io.StringIO()
        )
        settings.JWT_PRIVATE_KEY_FILE = str(new_key)
        settings.JWT_PREVIOUS_PUBLIC_KEY_FILES = [str(old_public)]

        kids = [k["kid"] for k in api_client.get(f"{API}/.well-known/jwks.json").json()["keys"]]
        assert len(kids) == 2
        assert jwt.get_unverified_header(old_access)["kid"] == kids[1]
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {old_access}")
        assert api_client.get(f"{API}/profile/").status_code == status.HTTP_200_OK
        assert jwt.get_unverified_header(login(student)["access_token"])["kid"] == kids[0]

    def test_configured_key_needs_explicit_paths(self):
        with pytest.raises(CommandError, match="--out"):
            call_command("rotate_signing_key", stdout=io.StringIO())


def test_discovery_lists_the_service_endpoints(api_client):
    body = api_client.get("/.well-known/openid-configuration").json()

    assert body["service_token_endpoint"].endswith("/api/v1/users/service-token/")
    assert body["token_endpoint"].endswith("/oidc/token/")  # serves client credentials too
    assert body["introspection_endpoint"].endswith("/api/v1/users/token/introspect/")
