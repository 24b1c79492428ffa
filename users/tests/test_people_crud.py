"""Creating, changing, deactivating and reactivating students, staff and HODs through the API."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework import status
from rest_framework.test import APIClient

from conftest import USER_KEYS
from users.models import (
    AdminHOD,
    CustomUser,
    OutboxMessage,
    SecurityEvent,
    SessionEndReason,
    Staff,
    Student,
    UserSession,
    UserType,
)
from users.services.people import PersonChangeRefused, phone_number_validate, user_deactivate
from users.tests.principals import bearer_client

API = "/api/v1/users"
pytestmark = pytest.mark.django_db
STUDENT_KEYS = {
    "id",
    "gender",
    "date_of_birth",
    "address",
    "phone_number",
    "student_id",
    "guardian_name",
    "guardian_phone",
    "profile_pic",
    "course_id",
    "session_year_id",
    "created_at",
    "updated_at",
    "user",
}


@pytest.fixture
def hod_client(hod) -> APIClient:
    return bearer_client(hod)


def student_body(**overrides) -> dict:
    user = {"username": "ada", "email": "ada@school.test", "first_name": "Ada", "last_name": "Lovelace"}
    user.update(overrides.pop("user", {}))
    return {
        "user": user,
        "student_id": "S-0001",
        "gender": "F",
        "date_of_birth": "2005-12-10",
        "phone_number": "+44 20 7946 0958",
        "guardian_name": "Anne",
        "guardian_phone": "020-7946-0000",
        "address": "12 St James's Square",
        "course_id": 3,
        "session_year_id": 2,
        **overrides,
    }


def outbox(user_id: int, kind: str | None = None) -> list[tuple[str, str]]:
    rows = OutboxMessage.objects.filter(payload__user_id=user_id).order_by("created_at")
    if kind:
        rows = rows.filter(kind=kind)
    return [(row.kind, row.topic) for row in rows]


class TestCreate:
    def test_student_without_password_gets_an_invitation(self, hod_client, hod):
        response = hod_client.post(f"{API}/students/", student_body(), format="json")

        assert response.status_code == status.HTTP_201_CREATED, response.content
        body = response.json()
        assert set(body) == STUDENT_KEYS
        assert set(body["user"]) == USER_KEYS
        assert body["user"]["role"] == "student"
        assert body["user"]["is_active"] is True
        assert body["student_id"] == "S-0001"
        assert body["phone_number"] == "+44 20 7946 0958"
        user = CustomUser.objects.get(username="ada")
        assert user.user_type == UserType.STUDENT
        assert not user.has_usable_password()
        assert Student.objects.get(pk=body["id"]).user_id == user.pk
        assert outbox(user.pk) == [("email", "invitation"), ("event", "user.created")]
        event = SecurityEvent.objects.get(user=user)
        assert (event.type, event.actor_id) == (SecurityEvent.Type.USER_CREATED, hod.pk)

    def test_with_a_password_no_invitation(self, hod_client):
        body = student_body(user={"password": "a-Long-enough-passphrase-9"})

        response = hod_client.post(f"{API}/students/", body, format="json")

        assert response.status_code == status.HTTP_201_CREATED
        user = CustomUser.objects.get(username="ada")
        assert user.check_password("a-Long-enough-passphrase-9")
        assert outbox(user.pk) == [("event", "user.created")]

    @pytest.mark.parametrize("password", ["short", "password12345", "12345678901234", "ada@school.test!"])
    def test_weak_password_is_refused(self, hod_client, password):
        response = hod_client.post(f"{API}/students/", student_body(user={"password": password}), format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["user"]
        assert "password" in response.json()["user"]
        assert not CustomUser.objects.filter(username="ada").exists()

    def test_staff_and_hod(self, hod_client):
        staff = {"user": {"username": "sam", "email": "sam@school.test"}, "employee_id": "E-1", "department": "Maths"}
        hod = {"user": {"username": "hal", "email": "hal@school.test"}, "department": "Physics"}

        staff_response = hod_client.post(f"{API}/staff/", staff, format="json")
        hod_response = hod_client.post(f"{API}/admins/", hod, format="json")

        assert staff_response.status_code == hod_response.status_code == status.HTTP_201_CREATED
        assert staff_response.json()["employee_id"] == "E-1"
        assert staff_response.json()["user"]["role"] == "staff"
        assert Staff.objects.get(employee_id="E-1").user.username == "sam"
        new_hod = AdminHOD.objects.get(pk=hod_response.json()["id"]).user
        assert (new_hod.user_type, new_hod.is_staff, new_hod.has_usable_password()) == (UserType.HOD, True, False)

    @pytest.mark.parametrize(
        ("body", "errors"),
        [
            (student_body(is_staff=True), {"is_staff": ["Unknown or read-only field."]}),
            (student_body(id=5), {"id": ["Unknown or read-only field."]}),
            (student_body(profile_pic="x.png"), {"profile_pic": ["Unknown or read-only field."]}),
            (student_body(created_at="2020-01-01"), {"created_at": ["Unknown or read-only field."]}),
            (student_body(user={"user_type": UserType.HOD}), {"user": {"user_type": ["Unknown or read-only field."]}}),
            (student_body(user={"is_superuser": True}), {"user": {"is_superuser": ["Unknown or read-only field."]}}),
            (student_body(user={"is_active": False}), {"user": {"is_active": ["Unknown or read-only field."]}}),
        ],
    )
    def test_unknown_and_read_only_fields_are_named(self, hod_client, body, errors):
        response = hod_client.post(f"{API}/students/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json() == errors
        assert not CustomUser.objects.filter(username="ada").exists()

    @pytest.mark.parametrize(
        ("body", "path"),
        [
            ({"student_id": "S-1"}, ("user",)),
            (student_body(user={"username": ""}), ("user", "username")),
            (student_body(user={"username": "bad name!"}), ("user", "username")),
            (student_body(user={"username": "u" * 151}), ("user", "username")),
            (student_body(user={"email": "not-an-email"}), ("user", "email")),
            (student_body(user={"first_name": "x" * 151}), ("user", "first_name")),
            (student_body(gender="X"), ("gender",)),
            (student_body(date_of_birth="10/12/2005"), ("date_of_birth",)),
            (student_body(course_id=0), ("course_id",)),
            (student_body(course_id="abc"), ("course_id",)),
            (student_body(session_year_id=2**31), ("session_year_id",)),
            (student_body(student_id="S" * 33), ("student_id",)),
            (student_body(address="a" * 1001), ("address",)),
            ({**student_body(), "user": "ada"}, ("user", "non_field_errors")),
        ],
    )
    def test_malformed_fields_are_named(self, hod_client, body, path):
        response = hod_client.post(f"{API}/students/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        errors = response.json()
        for key in path:
            assert key in errors, errors
            errors = errors[key]

    @pytest.mark.parametrize("body", [[], "text", 5])
    def test_body_that_is_not_an_object(self, hod_client, body):
        response = hod_client.post(f"{API}/students/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST

    def test_form_encoded_body_is_415(self, hod_client):
        response = hod_client.post(f"{API}/students/", {"a": "b"})  # multipart

        assert response.status_code == status.HTTP_415_UNSUPPORTED_MEDIA_TYPE

    def test_future_date_of_birth(self, hod_client):
        tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()

        response = hod_client.post(f"{API}/students/", student_body(date_of_birth=tomorrow), format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json() == {"date_of_birth": ["The date of birth cannot be in the future."]}

    def test_date_of_birth_today_is_accepted(self, hod_client):
        today = timezone.localdate().isoformat()

        response = hod_client.post(f"{API}/students/", student_body(date_of_birth=today), format="json")

        assert response.status_code == status.HTTP_201_CREATED

    @pytest.mark.parametrize("field", ["phone_number", "guardian_phone"])
    @pytest.mark.parametrize(
        "phone", ["123456", "phone", "+", "+44 (20) 7946", "12345678901234567", "555-123-", "--1234567"]
    )
    def test_bad_phone_numbers(self, hod_client, field, phone):
        response = hod_client.post(f"{API}/students/", student_body(**{field: phone}), format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == [field]

    def test_several_errors_are_reported_together(self, hod_client, student):
        body = student_body(user={"username": student.username.upper()}, phone_number="12", date_of_birth="2999-01-01")

        response = hod_client.post(f"{API}/students/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert set(response.json()) == {"user", "phone_number", "date_of_birth"}
        assert set(response.json()["user"]) == {"username"}


@pytest.mark.parametrize(
    "phone", ["+44 20 7946 0958", "555-123-4567", "0712345678", "1234567", "+123456789012345", "  +1 555 0100 22  "]
)
def test_good_phone_numbers(phone):
    assert phone_number_validate(phone) == phone.strip()


class TestUniqueness:
    def test_username_and_email_taken_in_another_case(self, hod_client, student):
        body = student_body(user={"username": student.username.upper(), "email": student.email.upper()})

        response = hod_client.post(f"{API}/students/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json() == {
            "user": {
                "username": ["A user with this username already exists."],
                "email": ["A user with this e-mail address already exists."],
            }
        }

    def test_student_id_taken(self, hod_client, student):
        Student.objects.filter(user=student).update(student_id="S-0001")

        response = hod_client.post(f"{API}/students/", student_body(), format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json() == {"student_id": ["Another person already has this student id."]}

    def test_employee_id_taken(self, hod_client, staff):
        Staff.objects.filter(user=staff).update(employee_id="E-7")
        body = {"user": {"username": "sam", "email": "sam@school.test"}, "employee_id": "E-7"}

        response = hod_client.post(f"{API}/staff/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json() == {"employee_id": ["Another person already has this employee id."]}

    def test_blank_student_ids_do_not_collide(self, hod_client):
        for n in range(2):
            body = student_body(user={"username": f"s{n}", "email": f"s{n}@school.test"}, student_id="  ")
            assert hod_client.post(f"{API}/students/", body, format="json").status_code == status.HTTP_201_CREATED
        assert Student.objects.filter(student_id__isnull=True).count() >= 2

    def test_patch_onto_someone_elses_email(self, hod_client, student, staff):
        url = f"{API}/students/{student.student_profile.pk}/"

        response = hod_client.patch(url, {"user": {"email": staff.email.title()}}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json() == {"user": {"email": ["A user with this e-mail address already exists."]}}

    def test_patch_keeping_own_values_is_fine(self, hod_client, student):
        url = f"{API}/students/{student.student_profile.pk}/"

        response = hod_client.patch(
            url, {"user": {"email": student.email, "username": student.username}}, format="json"
        )

        assert response.status_code == status.HTTP_200_OK


class TestUpdate:
    def test_patch_changes_only_what_is_given(self, hod_client, student):
        Student.objects.filter(user=student).update(guardian_name="Grace", course_id=4)
        url = f"{API}/students/{student.student_profile.pk}/"

        response = hod_client.patch(url, {"user": {"first_name": "Augusta"}, "course_id": 5}, format="json")

        assert response.status_code == status.HTTP_200_OK
        body = response.json()
        assert (body["user"]["first_name"], body["course_id"], body["guardian_name"]) == ("Augusta", 5, "Grace")
        assert OutboxMessage.objects.get(topic="user.updated").payload["data"] == {
            "fields": ["course_id", "first_name"]
        }

    def test_patch_email_resets_verification(self, hod_client, student):
        CustomUser.objects.filter(pk=student.pk).update(email_verified=True)
        url = f"{API}/students/{student.student_profile.pk}/"

        response = hod_client.patch(url, {"user": {"email": "new@school.test"}}, format="json")

        assert response.json()["user"]["email_verified"] is False

    def test_patch_without_changes_writes_no_event(self, hod_client, student):
        url = f"{API}/students/{student.student_profile.pk}/"

        response = hod_client.patch(url, {"user": {"first_name": student.first_name}}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert not OutboxMessage.objects.filter(topic="user.updated").exists()

    def test_put_resets_fields_not_given(self, hod_client, student):
        Student.objects.filter(user=student).update(guardian_name="Grace", course_id=4, student_id="S-9")
        url = f"{API}/students/{student.student_profile.pk}/"

        response = hod_client.put(url, {"user": {"username": "ada2", "email": "ada2@school.test"}}, format="json")

        assert response.status_code == status.HTTP_200_OK
        body = response.json()
        assert (body["guardian_name"], body["course_id"], body["student_id"]) == ("", None, None)
        assert (body["user"]["username"], body["user"]["first_name"], body["user"]["is_active"]) == ("ada2", "", True)

    @pytest.mark.parametrize("body", [{}, {"user": {"username": "x"}}, {"student_id": "S-1"}])
    def test_put_needs_the_whole_user(self, hod_client, student, body):
        url = f"{API}/students/{student.student_profile.pk}/"

        response = hod_client.put(url, body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "user" in response.json()

    @pytest.mark.parametrize(
        ("body", "errors"),
        [
            ({"user": {"password": "x"}}, {"user": {"password": ["Unknown or read-only field."]}}),
            ({"user": {"user_type": UserType.HOD}}, {"user": {"user_type": ["Unknown or read-only field."]}}),
            ({"profile_pic": "a.png"}, {"profile_pic": ["Unknown or read-only field."]}),
            ({"employee_id": "E-1"}, {"employee_id": ["Unknown or read-only field."]}),
            ({"phone_number": "12"}, None),
            ({"user": {"is_active": "maybe"}}, None),
        ],
    )
    def test_patch_refuses_bad_fields(self, hod_client, student, body, errors):
        url = f"{API}/students/{student.student_profile.pk}/"

        response = hod_client.patch(url, body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        if errors:
            assert response.json() == errors

    def test_staff_patch(self, hod_client, staff):
        url = f"{API}/staff/{staff.staff_profile.pk}/"

        response = hod_client.patch(url, {"department": "Physics", "date_of_joining": "2030-01-01"}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert response.json()["department"] == "Physics"

    def test_missing_person_is_404(self, hod_client):
        response = hod_client.patch(f"{API}/students/987654/", {"course_id": 1}, format="json")

        assert response.status_code == status.HTTP_404_NOT_FOUND
        assert response.json()["detail"] == "No student with this id."


class TestDeactivation:
    def test_delete_deactivates_ends_sessions_and_refuses_tokens_at_once(self, hod_client, hod, student, login):
        tokens = login(student)
        student_client = APIClient()
        student_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
        assert student_client.get(f"{API}/validate-token/").status_code == status.HTTP_200_OK

        response = hod_client.delete(f"{API}/students/{student.student_profile.pk}/")

        assert response.status_code == status.HTTP_204_NO_CONTENT
        assert response.content == b""
        student.refresh_from_db()
        assert student.is_active is False
        assert student.deactivated_at is not None
        session = UserSession.objects.get(user=student)
        assert (session.ended_at is not None, session.end_reason) == (True, SessionEndReason.DEACTIVATED)
        assert student_client.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        validation = student_client.get(f"{API}/validate-token/")
        assert validation.status_code == status.HTTP_401_UNAUTHORIZED
        assert validation.json()["valid"] is False
        refresh = APIClient().post(f"{API}/token/refresh/", {"refresh_token": tokens["refresh_token"]}, format="json")
        assert refresh.status_code == status.HTTP_401_UNAUTHORIZED
        assert ("event", "user.deactivated") in outbox(student.pk)
        assert SecurityEvent.objects.filter(type=SecurityEvent.Type.USER_DEACTIVATED, user=student, actor=hod).exists()

    def test_delete_twice_is_idempotent(self, hod_client, student):
        url = f"{API}/students/{student.student_profile.pk}/"

        assert hod_client.delete(url).status_code == status.HTTP_204_NO_CONTENT
        assert hod_client.delete(url).status_code == status.HTTP_204_NO_CONTENT
        assert OutboxMessage.objects.filter(topic="user.deactivated").count() == 1

    def test_deactivated_people_are_hidden_from_lists_unless_asked_for(self, hod_client, student, make_user):
        active = make_user(user_type=UserType.STUDENT)
        hod_client.delete(f"{API}/students/{student.student_profile.pk}/")

        def ids(query: str) -> set[int]:
            return {row["user"]["id"] for row in hod_client.get(f"{API}/students/{query}").json()["results"]}

        assert ids("") == {active.pk}
        assert ids("?is_active=false") == {student.pk}
        assert ids("?include_inactive=true") == {active.pk, student.pk}
        assert ids("?is_active=true&include_inactive=true") == {active.pk}
        users = hod_client.get(f"{API}/users/").json()["results"]
        assert student.pk not in {row["id"] for row in users}
        assert hod_client.get(f"{API}/students/{student.student_profile.pk}/").json()["user"]["is_active"] is False

    def test_patch_is_active_false_deactivates(self, hod_client, staff):
        url = f"{API}/staff/{staff.staff_profile.pk}/"

        response = hod_client.patch(url, {"user": {"is_active": False}}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert response.json()["user"]["is_active"] is False
        staff.refresh_from_db()
        assert staff.deactivated_at is not None

    def test_reactivate(self, hod_client, student, login):
        url = f"{API}/students/{student.student_profile.pk}/"
        hod_client.delete(url)

        response = hod_client.patch(url, {"user": {"is_active": True}}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert response.json()["user"]["is_active"] is True
        student.refresh_from_db()
        assert (student.is_active, student.deactivated_at) == (True, None)
        assert ("event", "user.reactivated") in outbox(student.pk)
        assert SecurityEvent.objects.filter(type=SecurityEvent.Type.USER_REACTIVATED, user=student).exists()
        login(student)  # can sign in again

    def test_hod_cannot_deactivate_themselves(self, hod_client, hod, make_user):
        make_user(user_type=UserType.HOD)  # not the last one: the self rule alone refuses
        url = f"{API}/admins/{hod.adminhod_profile.pk}/"

        response = hod_client.patch(url, {"user": {"is_active": False}}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["code"] == "cannot_deactivate_self"
        assert "your own account" in response.json()["detail"]
        hod.refresh_from_db()
        assert hod.is_active is True

    def test_hod_deactivates_another_hod(self, hod_client, make_user):
        other = make_user(user_type=UserType.HOD)

        response = hod_client.patch(
            f"{API}/admins/{other.adminhod_profile.pk}/", {"user": {"is_active": False}}, format="json"
        )

        assert response.status_code == status.HTTP_200_OK
        other.refresh_from_db()
        assert other.is_active is False

    def test_the_last_active_hod_cannot_be_deactivated(self, hod, make_user):
        deactivated = make_user(user_type=UserType.HOD)
        user_deactivate(user=deactivated, actor=hod)

        with pytest.raises(PersonChangeRefused) as refused:
            user_deactivate(user=hod, actor=None)

        assert refused.value.code == "last_active_hod"
        hod.refresh_from_db()
        assert hod.is_active is True

    def test_a_refused_deactivation_rolls_back_the_other_changes(self, hod_client, hod):
        url = f"{API}/admins/{hod.adminhod_profile.pk}/"

        response = hod_client.patch(url, {"department": "Changed", "user": {"is_active": False}}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        hod.adminhod_profile.refresh_from_db()
        assert hod.adminhod_profile.department != "Changed"


@pytest.mark.django_db(transaction=True)
def test_two_hods_deactivating_each_other_at_once_leave_one_active(make_user):
    first, second = make_user(user_type=UserType.HOD), make_user(user_type=UserType.HOD)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def deactivate(target, actor):
        try:
            barrier.wait()
            user_deactivate(user=target, actor=actor)
            outcomes.append("done")
        except PersonChangeRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=deactivate, args=(second, first)),
        threading.Thread(target=deactivate, args=(first, second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(outcomes) == ["done", "refused"]
    assert CustomUser.objects.filter(user_type=UserType.HOD, is_active=True).count() == 1
