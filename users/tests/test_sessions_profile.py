"""Profile read/update per role, and the session list and revocation."""

import uuid

import pytest
from rest_framework import status

from users.models import SessionEndReason, UserSession, UserType

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


class TestProfile:
    @pytest.mark.parametrize(
        ("role", "profile_key"),
        [("hod", "department"), ("staff", "employee_id"), ("student", "student_id")],
    )
    def test_get_returns_the_role_profile(self, request, client_for, role, profile_key):
        user = request.getfixturevalue(role)

        response = client_for(user).get(f"{API}/profile/")

        assert response.status_code == status.HTTP_200_OK
        body = response.json()
        assert body["id"] == user.pk
        assert body["role"] == role
        assert profile_key in body["profile"]

    def test_get_query_count(self, client_for, student, django_assert_max_num_queries):
        client = client_for(student)
        client.get(f"{API}/profile/")  # warm the session-state cache

        with django_assert_max_num_queries(2):  # the user, then the user joined with its profile
            assert client.get(f"{API}/profile/").status_code == status.HTTP_200_OK

    def test_patch_names_and_own_profile_fields(self, client_for, student):
        body = {"first_name": "Ada", "profile": {"phone_number": "+254700000001", "guardian_name": "Grace"}}

        response = client_for(student).patch(f"{API}/profile/", body, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert response.json()["first_name"] == "Ada"
        assert response.json()["profile"]["guardian_name"] == "Grace"
        student.student_profile.refresh_from_db()
        assert student.student_profile.phone_number == "+254700000001"

    @pytest.mark.parametrize(
        "body",
        [
            {"user_type": UserType.HOD},
            {"username": "renamed"},
            {"is_active": False},
            {"is_staff": True},
            {"email_verified": True},
            {"profile": {"student_id": "S-1"}},
            {"profile": {"course_id": 9}},
            {"profile": {"user": 1}},
        ],
    )
    def test_patch_refuses_fields_the_user_may_not_change(self, client_for, student, body):
        response = client_for(student).patch(f"{API}/profile/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        student.refresh_from_db()
        assert student.user_type == UserType.STUDENT
        assert student.username == "student"
        assert student.is_active is True

    def test_staff_cannot_change_department_or_employee_id(self, client_for, staff):
        response = client_for(staff).patch(f"{API}/profile/", {"profile": {"department": "X"}}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "profile.department" in response.json()

    def test_email_change_resets_verification_and_checks_uniqueness(self, client_for, student, staff):
        client = client_for(student)

        taken = client.patch(f"{API}/profile/", {"email": staff.email.upper()}, format="json")
        changed = client.patch(f"{API}/profile/", {"email": "new-address@school.test"}, format="json")

        assert taken.status_code == status.HTTP_400_BAD_REQUEST
        assert "email" in taken.json()
        assert changed.status_code == status.HTTP_200_OK
        assert changed.json()["email"] == "new-address@school.test"
        assert changed.json()["email_verified"] is False

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "nope"},
            {"first_name": "x" * 151},
            {"profile": "not-an-object"},
            {"profile": {"phone_number": "9" * 40}},
        ],
    )
    def test_patch_bad_values(self, client_for, student, body):
        assert client_for(student).patch(f"{API}/profile/", body, format="json").status_code == 400

    def test_anonymous(self, api_client):
        assert api_client.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        assert api_client.patch(f"{API}/profile/", {}, format="json").status_code == status.HTTP_401_UNAUTHORIZED

    def test_unsupported_method(self, client_for, student):
        assert client_for(student).delete(f"{API}/profile/").status_code == status.HTTP_405_METHOD_NOT_ALLOWED


class TestSessions:
    def test_lists_open_sessions_with_the_current_flag(self, client_for, student, staff):
        first, second = client_for(student), client_for(student)
        client_for(staff)  # someone else's session is not listed

        response = second.get(f"{API}/sessions/", HTTP_USER_AGENT="pytest-agent")

        assert response.status_code == status.HTTP_200_OK
        sessions = response.json()
        assert len(sessions) == 2
        assert [s["is_current"] for s in sessions] == [True, False]
        assert set(sessions[0]) == {
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "ip",
            "user_agent",
            "is_current",
            "apps",
        }
        assert sessions[0]["apps"] == []
        first.post(f"{API}/logout/", {}, format="json")
        assert len(second.get(f"{API}/sessions/").json()) == 1

    def test_revoke_one_session(self, client_for, student):
        phone, laptop = client_for(student), client_for(student)
        laptop_id = next(s["id"] for s in laptop.get(f"{API}/sessions/").json() if s["is_current"])

        response = phone.delete(f"{API}/sessions/{laptop_id}/")

        assert response.status_code == status.HTTP_204_NO_CONTENT
        assert laptop.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        assert phone.get(f"{API}/profile/").status_code == status.HTTP_200_OK
        assert UserSession.objects.get(pk=laptop_id).end_reason == SessionEndReason.REVOKED

    def test_cannot_revoke_another_users_session(self, client_for, student, staff):
        theirs = client_for(staff)
        their_id = theirs.get(f"{API}/sessions/").json()[0]["id"]

        response = client_for(student).delete(f"{API}/sessions/{their_id}/")

        assert response.status_code == status.HTTP_404_NOT_FOUND
        assert theirs.get(f"{API}/profile/").status_code == status.HTTP_200_OK

    def test_unknown_and_malformed_ids(self, client_for, student):
        client = client_for(student)

        assert client.delete(f"{API}/sessions/{uuid.uuid4()}/").status_code == status.HTTP_404_NOT_FOUND
        assert client.delete(f"{API}/sessions/not-a-uuid/").status_code == status.HTTP_404_NOT_FOUND

    def test_anonymous(self, api_client):
        assert api_client.get(f"{API}/sessions/").status_code == status.HTTP_401_UNAUTHORIZED
        assert api_client.delete(f"{API}/sessions/{uuid.uuid4()}/").status_code == status.HTTP_401_UNAUTHORIZED

    def test_list_query_count(self, client_for, student, django_assert_max_num_queries):
        clients = [client_for(student) for _ in range(5)]
        clients[0].get(f"{API}/sessions/")

        with django_assert_max_num_queries(3):  # the user, the sessions, and the apps of all of them at once
            assert len(clients[0].get(f"{API}/sessions/").json()) == 5
