"""Register, login, refresh, logout and change-password: success and every error path."""

import pytest
from rest_framework import status

from conftest import TEST_PASSWORD, USER_KEYS
from users.models import AdminHOD, CustomUser, SessionEndReason, Staff, Student, UserSession, UserType

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


def _register(api_client, **overrides):
    body = {
        "username": "newbie",
        "email": "newbie@school.test",
        "password": "Quiet-river-stones-2024",
        "first_name": "New",
        "last_name": "Bie",
        **overrides,
    }
    return api_client.post(f"{API}/register/", body, format="json")


class TestRegister:
    def test_creates_a_student_with_profile(self, api_client):
        response = _register(api_client)

        assert response.status_code == status.HTTP_201_CREATED
        body = response.json()
        assert set(body) == USER_KEYS | {"profile"}
        assert body["user_type"] == UserType.STUDENT
        assert body["role"] == "student"
        assert body["email_verified"] is False
        user = CustomUser.objects.get(username="newbie")
        assert Student.objects.filter(user=user).exists()
        assert not Staff.objects.filter(user=user).exists()
        assert user.check_password("Quiet-river-stones-2024")

    def test_user_type_3_is_accepted(self, api_client):
        assert _register(api_client, user_type=UserType.STUDENT).status_code == status.HTTP_201_CREATED

    @pytest.mark.parametrize("user_type", [UserType.HOD, UserType.STAFF, 0, 4])
    def test_cannot_create_hod_or_staff(self, api_client, user_type):
        response = _register(api_client, user_type=user_type)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "user_type" in response.json()
        assert not CustomUser.objects.exists()
        assert not AdminHOD.objects.exists()

    @pytest.mark.parametrize("field", ["is_staff", "is_superuser", "is_active", "email_verified", "id"])
    def test_privileged_fields_are_refused(self, api_client, field):
        response = _register(api_client, **{field: True})

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert field in response.json()
        assert not CustomUser.objects.exists()

    @pytest.mark.parametrize("missing", ["username", "email", "password"])
    def test_required_fields(self, api_client, missing):
        body = {"username": "x1", "email": "x1@school.test", "password": "Quiet-river-stones-2024"}
        del body[missing]

        response = api_client.post(f"{API}/register/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert missing in response.json()

    @pytest.mark.parametrize(
        "password",
        ["short", "password123456", "12345678901234", "abababababab", "newbie@school.test", "x" * 513],
        ids=["too-short", "common", "sequence", "repetition", "similar-to-email", "too-long"],
    )
    def test_weak_passwords_are_refused(self, api_client, password):
        response = _register(api_client, password=password)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "password" in response.json()

    def test_no_composition_rules(self, api_client):
        # NIST SP 800-63B: no demands on digits, cases or symbols; only predictable values are refused
        response = _register(api_client, password="839274619305")

        assert response.status_code == status.HTTP_201_CREATED

    def test_long_unicode_passphrase_with_spaces_is_accepted(self, api_client):
        password = "ünïcödé passphrase with spaces " * 5  # 150 characters

        response = _register(api_client, password=password)

        assert response.status_code == status.HTTP_201_CREATED
        assert CustomUser.objects.get(username="newbie").check_password(password)

    def test_duplicate_email_differing_in_case(self, api_client, student):
        response = _register(api_client, email=student.email.upper())

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "email" in response.json()

    def test_duplicate_username_differing_in_case(self, api_client, student):
        response = _register(api_client, username=student.username.upper())

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "username" in response.json()

    def test_invalid_email_and_wrong_types(self, api_client):
        assert "email" in _register(api_client, email="not-an-email").json()
        assert _register(api_client, username=["a"]).status_code == status.HTTP_400_BAD_REQUEST
        assert _register(api_client, user_type="hod").status_code == status.HTTP_400_BAD_REQUEST

    def test_oversized_fields(self, api_client):
        response = _register(api_client, username="u" * 151, first_name="f" * 151)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert {"username", "first_name"} <= set(response.json())

    def test_non_object_body_and_non_json(self, api_client):
        assert api_client.post(f"{API}/register/", [1, 2], format="json").status_code == 400
        bad_json = api_client.post(f"{API}/register/", "{not json", content_type="application/json")
        assert bad_json.status_code == 400
        form = api_client.post(f"{API}/register/", {"username": "x"})  # multipart
        assert form.status_code == status.HTTP_415_UNSUPPORTED_MEDIA_TYPE

    def test_closed_when_self_registration_is_disabled(self, api_client, settings):
        settings.ALLOW_SELF_REGISTRATION = False

        response = _register(api_client)

        assert response.status_code == status.HTTP_403_FORBIDDEN
        assert response.json()["code"] == "registration_closed"
        assert not CustomUser.objects.exists()


class TestLogin:
    def test_with_username(self, api_client, student):
        response = api_client.post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )

        assert response.status_code == status.HTTP_200_OK
        body = response.json()
        assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 300
        assert body["user"]["id"] == student.id
        assert body["user"]["profile"]["student_id"] is None
        session = UserSession.objects.get(user=student)
        assert session.ended_at is None
        assert session.ip == "127.0.0.1"

    def test_with_email_in_any_case(self, api_client, student):
        response = api_client.post(
            f"{API}/login/", {"username": student.email.upper(), "password": TEST_PASSWORD}, format="json"
        )

        assert response.status_code == status.HTTP_200_OK

    def test_records_last_login(self, login, student):
        login(student)

        student.refresh_from_db()
        assert student.last_login is not None

    def test_wrong_password_and_unknown_user_get_the_same_answer(self, api_client, student):
        wrong = api_client.post(f"{API}/login/", {"username": student.username, "password": "nope"}, format="json")
        unknown = api_client.post(f"{API}/login/", {"username": "ghost", "password": "nope"}, format="json")

        assert wrong.status_code == unknown.status_code == status.HTTP_401_UNAUTHORIZED
        assert (
            wrong.json()
            == unknown.json()
            == {
                "detail": "Invalid username/e-mail or password.",
                "code": "invalid_credentials",
            }
        )
        assert not UserSession.objects.exists()

    def test_inactive_user_gets_the_same_answer(self, api_client, student):
        CustomUser.objects.filter(pk=student.pk).update(is_active=False)

        response = api_client.post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["code"] == "invalid_credentials"

    def test_user_without_usable_password_cannot_log_in(self, api_client, make_user):
        user = make_user(password="")

        blank = api_client.post(f"{API}/login/", {"username": user.username, "password": ""}, format="json")
        guess = api_client.post(f"{API}/login/", {"username": user.username, "password": "!"}, format="json")

        assert blank.status_code == status.HTTP_400_BAD_REQUEST  # refused at the edge
        assert guess.status_code == status.HTTP_401_UNAUTHORIZED

    @pytest.mark.parametrize("body", [{}, {"username": "a"}, {"password": "b"}, {"username": 1, "password": {}}])
    def test_bad_bodies(self, api_client, body):
        assert api_client.post(f"{API}/login/", body, format="json").status_code == status.HTTP_400_BAD_REQUEST

    def test_query_count_is_bounded(self, api_client, student, django_assert_max_num_queries):
        # three of them the lockout's (check, slot, release), two the MFA policy's (has the person a factor? one
        # indexed EXISTS per kind: an authenticator app, a passkey)
        with django_assert_max_num_queries(12):
            response = api_client.post(
                f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
            )
        assert response.status_code == status.HTTP_200_OK


class TestRefresh:
    def test_rotates_and_keeps_the_session(self, api_client, login, student):
        first = login(student)

        response = api_client.post(f"{API}/token/refresh/", {"refresh_token": first["refresh_token"]}, format="json")

        assert response.status_code == status.HTTP_200_OK
        second = response.json()
        assert set(second) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
        assert second["refresh_token"] != first["refresh_token"]
        assert UserSession.objects.filter(user=student, ended_at__isnull=True).count() == 1

    def test_accepts_the_refresh_alias(self, api_client, login, student):
        tokens = login(student)

        response = api_client.post(f"{API}/token/refresh/", {"refresh": tokens["refresh_token"]}, format="json")

        assert response.status_code == status.HTTP_200_OK

    def test_reuse_ends_the_whole_session(self, api_client, login, student):
        first = login(student)
        second = api_client.post(f"{API}/token/refresh/", {"refresh_token": first["refresh_token"]}, format="json")
        assert second.status_code == status.HTTP_200_OK

        reuse = api_client.post(f"{API}/token/refresh/", {"refresh_token": first["refresh_token"]}, format="json")

        assert reuse.status_code == status.HTTP_401_UNAUTHORIZED
        assert reuse.json()["code"] == "token_reused"
        session = UserSession.objects.get(user=student)
        assert session.end_reason == SessionEndReason.REFRESH_REUSE
        # the thief's and the owner's newest tokens die with the session
        newest = second.json()
        again = api_client.post(f"{API}/token/refresh/", {"refresh_token": newest["refresh_token"]}, format="json")
        assert again.status_code == status.HTTP_401_UNAUTHORIZED
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {newest['access_token']}")
        assert api_client.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED

    def test_access_token_is_refused(self, api_client, login, student):
        tokens = login(student)

        response = api_client.post(f"{API}/token/refresh/", {"refresh_token": tokens["access_token"]}, format="json")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED

    @pytest.mark.parametrize("token", ["garbage", "a.b.c", "", "x" * 5000])
    def test_garbage_is_refused(self, api_client, token):
        response = api_client.post(f"{API}/token/refresh/", {"refresh_token": token}, format="json")

        assert response.status_code in (status.HTTP_400_BAD_REQUEST, status.HTTP_401_UNAUTHORIZED)

    def test_missing_token(self, api_client):
        response = api_client.post(f"{API}/token/refresh/", {}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "refresh_token" in response.json()

    def test_refused_after_logout(self, api_client, client_for, student):
        client = client_for(student)
        assert client.post(f"{API}/logout/", {}, format="json").status_code == status.HTTP_204_NO_CONTENT

        response = api_client.post(
            f"{API}/token/refresh/", {"refresh_token": client.tokens["refresh_token"]}, format="json"
        )

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["code"] == "session_ended"

    def test_refused_for_deactivated_user(self, api_client, login, student):
        tokens = login(student)
        CustomUser.objects.filter(pk=student.pk).update(is_active=False)

        response = api_client.post(f"{API}/token/refresh/", {"refresh_token": tokens["refresh_token"]}, format="json")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED


class TestLogout:
    def test_ends_only_the_current_session(self, client_for, student):
        phone, laptop = client_for(student), client_for(student)

        assert phone.post(f"{API}/logout/", {}, format="json").status_code == status.HTTP_204_NO_CONTENT

        assert phone.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        assert laptop.get(f"{API}/profile/").status_code == status.HTTP_200_OK
        ended = UserSession.objects.get(user=student, ended_at__isnull=False)
        assert ended.end_reason == SessionEndReason.LOGOUT

    def test_all_ends_every_session(self, client_for, student):
        phone, laptop = client_for(student), client_for(student)

        assert phone.post(f"{API}/logout/", {"all": True}, format="json").status_code == status.HTTP_204_NO_CONTENT

        assert phone.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        assert laptop.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        assert not UserSession.objects.filter(user=student, ended_at__isnull=True).exists()

    def test_with_a_refresh_token_of_another_own_session(self, client_for, student):
        phone, laptop = client_for(student), client_for(student)

        response = phone.post(f"{API}/logout/", {"refresh_token": laptop.tokens["refresh_token"]}, format="json")

        assert response.status_code == status.HTTP_204_NO_CONTENT
        assert laptop.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED

    def test_refresh_token_of_another_user_is_refused(self, client_for, student, staff):
        mine, theirs = client_for(student), client_for(staff)

        response = mine.post(f"{API}/logout/", {"refresh_token": theirs.tokens["refresh_token"]}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert theirs.get(f"{API}/profile/").status_code == status.HTTP_200_OK

    def test_invalid_refresh_token_and_bad_types(self, client_for, student):
        client = client_for(student)

        assert client.post(f"{API}/logout/", {"refresh_token": "junk"}, format="json").status_code == 400
        assert client.post(f"{API}/logout/", {"all": "maybe"}, format="json").status_code == 400

    def test_requires_authentication(self, api_client):
        response = api_client.post(f"{API}/logout/", {}, format="json")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response["WWW-Authenticate"].startswith("Bearer")


class TestChangePassword:
    NEW = "Another-long-passphrase-77"

    def _change(self, client, **overrides):
        body = {"old_password": TEST_PASSWORD, "new_password": self.NEW, "confirm_password": self.NEW, **overrides}
        return client.post(f"{API}/change-password/", body, format="json")

    def test_changes_and_ends_other_sessions(self, client_for, api_client, student):
        current, other = client_for(student), client_for(student)

        response = self._change(current)

        assert response.status_code == status.HTTP_200_OK
        assert current.get(f"{API}/profile/").status_code == status.HTTP_200_OK
        assert other.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        refresh = api_client.post(
            f"{API}/token/refresh/", {"refresh_token": other.tokens["refresh_token"]}, format="json"
        )
        assert refresh.status_code == status.HTTP_401_UNAUTHORIZED
        assert UserSession.objects.get(user=student, ended_at__isnull=False).end_reason == "password_changed"
        login_new = api_client.post(
            f"{API}/login/", {"username": student.username, "password": self.NEW}, format="json"
        )
        assert login_new.status_code == status.HTTP_200_OK
        login_old = api_client.post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )
        assert login_old.status_code == status.HTTP_401_UNAUTHORIZED

    def test_wrong_old_password(self, client_for, student):
        response = self._change(client_for(student), old_password="wrong-old-password")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "old_password" in response.json()

    def test_mismatched_confirmation(self, client_for, student):
        response = self._change(client_for(student), confirm_password="something-else-entirely")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "confirm_password" in response.json()

    def test_weak_new_password(self, client_for, student):
        response = self._change(client_for(student), new_password="short", confirm_password="short")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "new_password" in response.json()

    def test_missing_fields_and_anonymous(self, client_for, api_client, student):
        assert client_for(student).post(f"{API}/change-password/", {}, format="json").status_code == 400
        assert api_client.post(f"{API}/change-password/", {}, format="json").status_code == 401
