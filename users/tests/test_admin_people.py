"""The Django admin for HODs: people lists, search and filters, actions through the services; nobody else enters."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone
from rest_framework import status
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from users.models import CustomUser, OutboxMessage, SecurityEvent, SessionEndReason, Student, UserSession, UserType
from users.services.auth import session_start
from users.tests.admin_support import change_form

pytestmark = pytest.mark.django_db
API = "/api/v1/users"
NEW_PASSWORD = "another-Long-passphrase-77"


def run_action(client, model: str, action: str, pks: list[int]):
    return client.post(
        f"/admin/users/{model}/",
        {"action": action, "_selected_action": [str(pk) for pk in pks], "index": "0", "select_across": "0"},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


class TestPages:
    @pytest.mark.parametrize(
        "url",
        [
            "/admin/users/customuser/",
            "/admin/users/customuser/?q=student&user_type__exact=3&is_active__exact=1",
            "/admin/users/customuser/?deactivated_at__isnull=True",
            "/admin/users/student/",
            "/admin/users/student/?q=S-1&gender__exact=F&user__is_active__exact=1",
            "/admin/users/staff/?q=staff&department=Physics",
            "/admin/users/adminhod/?q=hod",
        ],
    )
    def test_lists_with_search_and_filters(self, hod_admin, student, staff, url):
        response = hod_admin.get(url)

        assert response.status_code == status.HTTP_200_OK, url

    def test_change_pages_of_profiles(self, hod_admin, student, staff, hod):
        for url in [
            f"/admin/users/student/{student.student_profile.pk}/change/",
            f"/admin/users/staff/{staff.staff_profile.pk}/change/",
            f"/admin/users/adminhod/{hod.adminhod_profile.pk}/change/",
            f"/admin/users/customuser/{student.pk}/change/",
        ]:
            assert hod_admin.get(url).status_code == status.HTTP_200_OK, url

    def test_profiles_are_not_added_on_their_own(self, hod_admin):
        assert hod_admin.get("/admin/users/student/add/").status_code == status.HTTP_403_FORBIDDEN

    def test_student_list_is_one_query_per_page_not_per_row(self, hod_admin, make_user, django_assert_max_num_queries):
        for _ in range(30):
            make_user(user_type=UserType.STUDENT)
        hod_admin.get("/admin/users/student/")

        with django_assert_max_num_queries(12):
            assert hod_admin.get("/admin/users/student/").status_code == status.HTTP_200_OK

    def test_is_active_is_changed_only_through_the_actions(self, hod_admin, student):
        response = hod_admin.get(f"/admin/users/customuser/{student.pk}/change/")

        assert 'name="is_active"' not in response.content.decode()


class TestActions:
    def test_deactivate_ends_sessions_and_writes_events(self, hod_admin, student):
        session_start(user=student, ip=None, user_agent="t")

        response = run_action(hod_admin, "customuser", "deactivate_selected", [student.pk])

        assert response.status_code == status.HTTP_200_OK
        assert "1 deactivated." in messages_of(response)
        student.refresh_from_db()
        assert (student.is_active, student.deactivated_at is not None) == (False, True)
        assert UserSession.objects.get(user=student).end_reason == SessionEndReason.DEACTIVATED
        assert OutboxMessage.objects.filter(topic="user.deactivated", payload__user_id=student.pk).exists()

    def test_deactivate_refuses_the_hod_themselves(self, hod_admin, hod, student):
        response = run_action(hod_admin, "customuser", "deactivate_selected", [hod.pk, student.pk])

        assert "1 deactivated." in messages_of(response)
        assert any("your own account" in message for message in messages_of(response))
        hod.refresh_from_db()
        assert hod.is_active is True

    def test_reactivate(self, hod_admin, student):
        run_action(hod_admin, "customuser", "deactivate_selected", [student.pk])

        response = run_action(hod_admin, "customuser", "reactivate_selected", [student.pk])

        assert "1 reactivated." in messages_of(response)
        student.refresh_from_db()
        assert (student.is_active, student.deactivated_at) == (True, None)
        assert OutboxMessage.objects.filter(topic="user.reactivated", payload__user_id=student.pk).exists()

    def test_resend_invitation_only_to_people_without_a_password(self, hod_admin, student, make_user):
        invited = make_user(user_type=UserType.STUDENT, password="")

        response = run_action(hod_admin, "customuser", "resend_invitation", [invited.pk, student.pk])

        assert messages_of(response) == ["1 invitation(s) queued; 1 skipped (inactive or password set)."]
        assert OutboxMessage.objects.filter(topic="invitation", payload__user_id=invited.pk).count() == 1
        assert not OutboxMessage.objects.filter(topic="invitation", payload__user_id=student.pk).exists()

    def test_actions_on_the_student_profiles(self, hod_admin, student):
        profile = Student.objects.get(user=student)

        response = run_action(hod_admin, "student", "deactivate_selected", [profile.pk])

        assert "1 deactivated." in messages_of(response)
        student.refresh_from_db()
        assert student.is_active is False

    def test_profiles_cannot_be_bulk_deleted(self, hod_admin):
        response = hod_admin.get("/admin/users/student/")

        assert "delete_selected" not in response.content.decode()


def test_adding_a_user_without_password_queues_an_invitation(hod_admin, hod):
    response = hod_admin.post(
        "/admin/users/customuser/add/",
        {
            "username": "newstaff",
            "email": "newstaff@school.test",
            "user_type": UserType.STAFF,
            "usable_password": "false",
        },
    )

    assert response.status_code == status.HTTP_302_FOUND, response.content[:2000]
    user = CustomUser.objects.get(username="newstaff")
    assert not user.has_usable_password()
    assert user.staff_profile is not None
    topics = set(OutboxMessage.objects.filter(payload__user_id=user.pk).values_list("topic", flat=True))
    assert topics == {"invitation", "user.created"}


@pytest.mark.parametrize("role", ["staff", "student"])
@pytest.mark.parametrize("url", ["/admin/", "/admin/users/customuser/", "/admin/users/student/", "/admin/users/staff/"])
def test_staff_and_students_cannot_enter(request, client, role, url):
    user = request.getfixturevalue(role)
    CustomUser.objects.filter(pk=user.pk).update(is_staff=True)  # even if someone flagged them
    assert client.login(username=user.username, password=TEST_PASSWORD)

    response = client.get(url)

    assert response.status_code == status.HTTP_302_FOUND
    assert "/admin/login/" in response["Location"]


def test_a_deactivated_hod_cannot_enter(client, hod, make_user):
    make_user(user_type=UserType.HOD)
    CustomUser.objects.filter(pk=hod.pk).update(is_active=False)

    assert not client.login(username=hod.username, password=TEST_PASSWORD)
    assert client.get("/admin/users/student/").status_code == status.HTTP_302_FOUND


# --- Every admin write goes through the owners -------------------------------------------------


def bearer(tokens: dict) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    return api


class TestPasswordForm:
    def test_setting_a_password_ends_the_users_sessions_audits_announces_and_notifies(
        self, hod_admin, hod, student, login
    ):
        tokens = login(student)
        assert bearer(tokens).get(f"{API}/profile/").status_code == status.HTTP_200_OK

        response = hod_admin.post(
            f"/admin/users/customuser/{student.pk}/password/",
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
        )

        assert response.status_code == status.HTTP_302_FOUND, response.content[:2000]
        student.refresh_from_db()
        assert student.check_password(NEW_PASSWORD)
        assert bearer(tokens).get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        assert bearer(tokens).get(f"{API}/validate-token/").status_code == status.HTTP_401_UNAUTHORIZED
        record = SecurityEvent.objects.get(user=student, type=SecurityEvent.Type.PASSWORD_CHANGED)
        assert (record.actor, record.data) == (hod, {"via": "admin"})
        assert OutboxMessage.objects.filter(topic="user.password_changed", payload__user_id=student.pk).exists()
        assert OutboxMessage.objects.filter(topic="password_changed", payload__user_id=student.pk).exists()

    def test_with_redis_unavailable_the_form_answers_503_and_changes_nothing(
        self, hod_admin, student, login, cache_unreachable
    ):
        # Given a student's session while the revocation store (Redis) is unreachable
        tokens = login(student)
        old_hash = student.password

        # When an HOD sets the student's password in the admin
        response = hod_admin.post(
            f"/admin/users/customuser/{student.pk}/password/",
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
        )

        # Then the page says so with 503 (not a 500), and nothing was changed: no promise it cannot keep
        assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
        assert response["Retry-After"]
        assert b"nothing was changed" in response.content
        student.refresh_from_db()
        assert student.password == old_hash
        assert not SecurityEvent.objects.filter(user=student, type=SecurityEvent.Type.PASSWORD_CHANGED).exists()
        assert bearer(tokens).get(f"{API}/profile/").status_code == status.HTTP_200_OK

    def test_a_weak_password_is_refused_and_sessions_stay(self, hod_admin, student, login):
        tokens = login(student)

        response = hod_admin.post(
            f"/admin/users/customuser/{student.pk}/password/",
            {"password1": "12345678", "password2": "12345678", "usable_password": "true"},
        )

        assert response.status_code == status.HTTP_200_OK  # the form again, with its errors
        assert bearer(tokens).get(f"{API}/profile/").status_code == status.HTTP_200_OK
        assert not SecurityEvent.objects.filter(user=student, type=SecurityEvent.Type.PASSWORD_CHANGED).exists()


class TestProfilePages:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("phone_number", "call me maybe"),
            ("date_of_birth", (timezone.localdate() + timedelta(days=30)).isoformat()),
            ("student_id", "S-TAKEN"),
        ],
    )
    def test_the_profile_page_refuses_what_the_api_refuses(self, hod_admin, student, make_user, field, value):
        other = make_user(user_type=UserType.STUDENT)
        Student.objects.filter(user=other).update(student_id="S-TAKEN")
        url = f"/admin/users/student/{student.student_profile.pk}/change/"
        data = change_form(hod_admin, url)
        data[field] = [value]

        response = hod_admin.post(url, data)

        assert response.status_code == status.HTTP_200_OK  # the form again
        assert field in response.context["adminform"].form.errors
        student.student_profile.refresh_from_db()
        assert getattr(student.student_profile, field) in (None, "")
        assert not OutboxMessage.objects.filter(topic="user.updated", payload__user_id=student.pk).exists()

    def test_a_valid_profile_save_announces_user_updated(self, hod_admin, student):
        url = f"/admin/users/student/{student.student_profile.pk}/change/"
        data = change_form(hod_admin, url)
        data["phone_number"] = ["+254 700 000 001"]

        response = hod_admin.post(url, data)

        assert response.status_code == status.HTTP_302_FOUND, response.content[:2000]
        student.student_profile.refresh_from_db()
        assert student.student_profile.phone_number == "+254 700 000 001"
        event = OutboxMessage.objects.get(topic="user.updated", payload__user_id=student.pk)
        assert event.payload["data"] == {"fields": ["phone_number"]}

    def test_the_inline_profile_on_the_user_page_refuses_a_bad_phone_number(self, hod_admin, student):
        url = f"/admin/users/customuser/{student.pk}/change/"
        data = change_form(hod_admin, url)
        data["student_profile-0-phone_number"] = ["call me maybe"]

        response = hod_admin.post(url, data)

        assert response.status_code == status.HTTP_200_OK
        assert "phone_number" in response.context["inline_admin_formsets"][0].formset.forms[0].errors
        assert not OutboxMessage.objects.filter(payload__user_id=student.pk).exists()

    def test_the_user_page_changes_fields_and_profile_in_one_event(self, hod_admin, student):
        url = f"/admin/users/customuser/{student.pk}/change/"
        data = change_form(hod_admin, url)
        data["email"] = ["moved@school.test"]
        data["student_profile-0-address"] = ["1 School Road"]

        response = hod_admin.post(url, data)

        assert response.status_code == status.HTTP_302_FOUND, response.content[:2000]
        student.refresh_from_db()
        assert (student.email, student.email_verified, student.student_profile.address) == (
            "moved@school.test",
            False,
            "1 School Road",
        )
        events = OutboxMessage.objects.filter(topic="user.updated", payload__user_id=student.pk)
        assert [e.payload["data"] for e in events] == [{"fields": ["address", "email"]}]
        assert OutboxMessage.objects.filter(topic="verify_email", payload__user_id=student.pk).exists()


class TestDelete:
    def test_the_delete_page_deactivates_and_keeps_the_row(self, hod_admin, hod, student, login):
        tokens = login(student)
        url = f"/admin/users/customuser/{student.pk}/delete/"
        assert "deactivated" in hod_admin.get(url).content.decode()

        response = hod_admin.post(url, {"post": "yes"})

        assert response.status_code == status.HTTP_302_FOUND
        student.refresh_from_db()
        assert (student.is_active, student.deactivated_at is not None) == (False, True)
        assert Student.objects.filter(user=student).exists()
        assert UserSession.objects.get(user=student).end_reason == SessionEndReason.DEACTIVATED
        assert bearer(tokens).get(f"{API}/validate-token/").status_code == status.HTTP_401_UNAUTHORIZED
        assert SecurityEvent.objects.filter(user=student, actor=hod, type=SecurityEvent.Type.USER_DEACTIVATED).exists()

    def test_the_delete_page_of_a_profile_deactivates_its_user(self, hod_admin, student):
        response = hod_admin.post(f"/admin/users/student/{student.student_profile.pk}/delete/", {"post": "yes"})

        assert response.status_code == status.HTTP_302_FOUND
        student.refresh_from_db()
        assert student.is_active is False
        assert Student.objects.filter(user=student).exists()

    def test_the_delete_action_deactivates(self, hod_admin, student):
        session_start(user=student, ip=None, user_agent="t")

        response = run_action(hod_admin, "customuser", "delete_selected", [student.pk])

        assert "1 deactivated." in messages_of(response)
        assert CustomUser.objects.filter(pk=student.pk, is_active=False).exists()
        assert UserSession.objects.get(user=student).end_reason == SessionEndReason.DEACTIVATED

    def test_deleting_oneself_is_refused(self, hod_admin, hod, make_user):
        make_user(user_type=UserType.HOD)

        response = hod_admin.post(f"/admin/users/customuser/{hod.pk}/delete/", {"post": "yes"}, follow=True)

        assert any("your own account" in message for message in messages_of(response))
        hod.refresh_from_db()
        assert hod.is_active is True


def test_adding_a_user_with_a_password_goes_through_the_creation_owner(hod_admin, hod):
    response = hod_admin.post(
        "/admin/users/customuser/add/",
        {
            "username": "newstudent",
            "email": "newstudent@school.test",
            "user_type": UserType.STUDENT,
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == status.HTTP_302_FOUND, response.content[:2000]
    user = CustomUser.objects.get(username="newstudent")
    assert user.check_password(NEW_PASSWORD)
    assert Student.objects.filter(user=user).exists()
    event = OutboxMessage.objects.get(topic="user.created", payload__user_id=user.pk)
    assert event.payload["data"] == {"user_type": UserType.STUDENT, "source": "admin"}
    assert SecurityEvent.objects.filter(user=user, actor=hod, type=SecurityEvent.Type.USER_CREATED).exists()
    assert not OutboxMessage.objects.filter(topic="invitation", payload__user_id=user.pk).exists()
