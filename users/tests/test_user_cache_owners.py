"""Every entry point that changes a person drops the cached views through the change's owner, not through the model
signals' safety net: with ``users.signals`` disconnected, the change still shows in user/{id}/ and bulk_info/ at once.
The monolith import's case is in test_import_monolith.py (it needs that module's source builder)."""

import pytest
from rest_framework import status

from users.tests.admin_support import change_form_post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cache_safety_net_off")]
API = "/api/v1/users"


@pytest.fixture
def reader(service_client):
    """A sibling service reading people; its own state is warmed so only the person's views are in play."""
    client = service_client("users:read")
    client.get(f"{API}/user/0/")
    return client


@pytest.fixture
def cached(reader):
    """Read ``user``'s user/{id}/ and bulk_info/ once, so both answers are in the cache; returns a re-reader."""

    def read(user) -> tuple[dict, dict]:
        detail = reader.get(f"{API}/user/{user.pk}/")
        bulk = reader.post(f"{API}/bulk_info/", {"user_ids": [user.pk]}, format="json")
        assert (detail.status_code, bulk.status_code) == (status.HTTP_200_OK, status.HTTP_200_OK)
        return detail.json(), bulk.json()[0]

    return read


class TestApi:
    def test_an_hod_edit_shows_at_once(self, cached, student, client_for, hod):
        # Given the student's views cached
        cached(student)

        # When an HOD changes a user field and a profile field
        response = client_for(hod).patch(
            f"{API}/students/{student.student_profile.pk}/",
            {"address": "9 Elm Row", "user": {"first_name": "Renamed"}},
            format="json",
        )

        # Then both views show the change
        assert response.status_code == status.HTTP_200_OK, response.content
        detail, bulk = cached(student)
        assert detail["first_name"] == bulk["first_name"] == "Renamed"
        assert detail["profile"]["address"] == "9 Elm Row"

    def test_an_own_profile_edit_shows_at_once(self, cached, student, client_for):
        cached(student)

        response = client_for(student).patch(f"{API}/profile/", {"last_name": "Changed"}, format="json")

        assert response.status_code == status.HTTP_200_OK, response.content
        detail, bulk = cached(student)
        assert detail["last_name"] == bulk["last_name"] == "Changed"

    def test_a_deactivation_shows_at_once(self, cached, student, client_for, hod):
        cached(student)

        response = client_for(hod).delete(f"{API}/students/{student.student_profile.pk}/")

        assert response.status_code == status.HTTP_204_NO_CONTENT, response.content
        detail, bulk = cached(student)
        assert detail["is_active"] is bulk["is_active"] is False


class TestAdmin:
    def test_the_user_page_shows_at_once(self, cached, student, hod_admin):
        cached(student)

        response = change_form_post(
            hod_admin,
            f"/admin/users/customuser/{student.pk}/change/",
            {"first_name": "Admina", "student_profile-0-address": "1 School Road"},
        )

        assert response.status_code == status.HTTP_302_FOUND, response.content[:2000]
        detail, bulk = cached(student)
        assert detail["first_name"] == bulk["first_name"] == "Admina"
        assert detail["profile"]["address"] == "1 School Road"

    def test_the_profile_page_shows_at_once(self, cached, student, hod_admin):
        cached(student)

        response = change_form_post(
            hod_admin,
            f"/admin/users/student/{student.student_profile.pk}/change/",
            {"phone_number": "+254 700 000 001"},
        )

        assert response.status_code == status.HTTP_302_FOUND, response.content[:2000]
        detail, _ = cached(student)
        assert detail["profile"]["phone_number"] == "+254 700 000 001"

    def test_the_deactivate_action_shows_at_once(self, cached, student, hod_admin):
        cached(student)

        hod_admin.post(
            "/admin/users/customuser/",
            {"action": "deactivate_selected", "_selected_action": [str(student.pk)], "index": "0"},
        )

        detail, bulk = cached(student)
        assert detail["is_active"] is bulk["is_active"] is False
