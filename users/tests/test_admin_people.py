"""The Django admin for HODs: people lists, search and filters, actions through the services; nobody else enters."""

import pytest
from django.contrib.messages import get_messages
from rest_framework import status

from conftest import TEST_PASSWORD
from users.models import CustomUser, OutboxMessage, SessionEndReason, Student, UserSession, UserType
from users.services.auth import session_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def hod_admin(client, hod):
    assert client.login(username=hod.username, password=TEST_PASSWORD)
    return client


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
