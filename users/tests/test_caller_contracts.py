"""Contract tests: the replaced system's callers, replayed over real HTTP exactly as they call.

Each test is one call of one caller: the method, path, headers and body keys it sends, made with ``requests``
(as the callers are) against the service on a loopback port, and only the fields that caller reads from the
answer are checked, the way it reads them (the frontend compares ``user_type`` as the string "1"/"2"/"3", the
gateway reads only the status). README "Switching an existing system over" lists them.
"""

import ipaddress
from typing import Any

import pytest
import requests

from conftest import TEST_PASSWORD
from users.models import AdminHOD, CustomUser, Staff, Student, UserType

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "Quiet-river-stones-2024"
ROLE_STRINGS = {UserType.HOD: "1", UserType.STAFF: "2", UserType.STUDENT: "3"}


class Caller:
    """One caller, as its code calls: ``requests`` with a JSON body and, when it has one, its bearer token."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = f"{base}/api/v1/users/"
        self.token = token

    def call(self, method: str, path: str = "", body: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return requests.request(method, self.base + path, json=body, headers=headers, timeout=10)


@pytest.fixture
def service(live_server) -> str:
    return live_server.url


@pytest.fixture
def people(make_user) -> dict[int, CustomUser]:
    return {
        UserType.HOD: make_user(user_type=UserType.HOD, username="head", email="head@school.test"),
        UserType.STAFF: make_user(user_type=UserType.STAFF, username="teacher", email="teacher@school.test"),
        UserType.STUDENT: make_user(user_type=UserType.STUDENT, username="pupil", email="pupil@school.test"),
    }


def frontend_login(service: str, user: CustomUser) -> dict:
    """The frontend's login form: the e-mail in ``username``."""
    response = Caller(service).call("POST", "login/", {"username": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def frontend_as(service: str, user: CustomUser) -> Caller:
    return Caller(service, frontend_login(service, user)["access_token"])


# --- The frontend service ---------------------------------------------------------------------------------


class TestFrontend:
    @pytest.mark.parametrize("role", [UserType.HOD, UserType.STAFF, UserType.STUDENT])
    def test_login_with_the_email_gives_what_the_session_keeps(self, service, people, role):
        body = frontend_login(service, people[role])

        assert body["access_token"]
        assert body["refresh_token"]
        assert body["user"]["id"] == people[role].pk
        assert str(body["user"]["user_type"]) == ROLE_STRINGS[role]  # the frontend picks its pages on this
        assert body["user"]["email"] == people[role].email

    @pytest.mark.parametrize("query", ["", "?user_type=2", "?user_type=3"])
    def test_hod_pages_list_people_at_the_prefix(self, service, people, query):
        response = frontend_as(service, people[UserType.HOD]).call("GET", query)

        assert response.status_code == 200, response.text
        results = response.json()["results"]
        expected = {user.pk for role, user in people.items() if not query or query.endswith(ROLE_STRINGS[role])}
        assert {row["id"] for row in results} == expected
        for row in results:
            assert {"first_name", "last_name", "email"} <= row.keys()
            assert isinstance(row["user_type"], int)

    def test_hod_adds_a_student_with_a_flat_body_of_strings(self, service, people):
        body = {
            "email": "new.pupil@school.test",
            "password": NEW_PASSWORD,
            "first_name": "New",
            "last_name": "Pupil",
            "user_type": "3",
            "address": "1 Lane",
            "course_id": "4",
            "session_year_id": "2",
        }

        response = frontend_as(service, people[UserType.HOD]).call("POST", "", body)

        assert response.status_code in {200, 201}, response.text
        student = Student.objects.select_related("user").get(user__email="new.pupil@school.test")
        assert (student.address, student.course_id, student.session_year_id) == ("1 Lane", 4, 2)
        # the new student signs in on the frontend's form with the e-mail and the password given
        login = Caller(service).call("POST", "login/", {"username": body["email"], "password": NEW_PASSWORD})
        assert login.status_code == 200, login.text

    def test_a_person_edits_their_name_with_the_email_field_disabled(self, service, people):
        pupil = people[UserType.STUDENT]
        Student.objects.filter(user=pupil).update(address="2 Road")

        response = frontend_as(service, pupil).call(
            "PUT", f"{pupil.pk}/", {"first_name": "Renamed", "last_name": "Pupil", "email": None}
        )

        assert response.status_code in {200, 201, 204}, response.text
        pupil.refresh_from_db()
        assert (pupil.first_name, pupil.last_name, pupil.email) == ("Renamed", "Pupil", "pupil@school.test")
        assert Student.objects.get(user=pupil).address == "2 Road"  # nothing the form did not send is lost

    def test_hod_adds_staff_with_a_flat_body(self, service, people):
        body = {
            "email": "new.teacher@school.test",
            "password": NEW_PASSWORD,
            "first_name": "New",
            "last_name": "Teacher",
            "address": "3 Close",
        }

        response = frontend_as(service, people[UserType.HOD]).call("POST", "staff/", body)

        assert response.status_code in {200, 201}, response.text
        assert Staff.objects.get(user__email="new.teacher@school.test").address == "3 Close"


# --- Clients written to the original service's API ------------------------------------------------------


class TestOriginalApiClients:
    def test_register_with_confirm_password(self, service):
        body = {
            "username": "selfmade",
            "email": "selfmade@school.test",
            "password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
            "first_name": "Self",
            "last_name": "Made",
        }

        response = Caller(service).call("POST", "register/", body)

        assert response.status_code == 201, response.text
        assert CustomUser.objects.get(username="selfmade").user_type == UserType.STUDENT

    def test_register_with_a_mismatched_confirm_password_names_it(self, service):
        body = {"username": "x", "email": "x@school.test", "password": NEW_PASSWORD, "confirm_password": "other"}

        response = Caller(service).call("POST", "register/", body)

        assert response.status_code == 400
        assert "confirm_password" in response.json()

    def test_simplejwt_refresh(self, service, people):
        tokens = frontend_login(service, people[UserType.STAFF])

        response = Caller(service).call("POST", "token/refresh/", {"refresh": tokens["refresh_token"]})

        assert response.status_code == 200, response.text
        pair = response.json()
        assert pair["access"]
        assert pair["refresh"] != tokens["refresh_token"]
        assert Caller(service, pair["access"]).call("GET", "profile/").status_code == 200

    @pytest.mark.parametrize(
        ("path", "profile", "model"),
        [
            ("students/", {"address": "4 Way", "gender": "F"}, Student),
            ("staff/", {"address": "5 Way"}, Staff),
            ("admins/", {"department": "Science"}, AdminHOD),
        ],
    )
    def test_role_create_with_the_user_nested_as_admin(self, service, people, path, profile, model):
        admin = {
            "username": f"made-{path[:-1]}",
            "email": f"made-{path[:-1]}@school.test",
            "password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
            "first_name": "Made",
            "last_name": "Here",
        }

        response = frontend_as(service, people[UserType.HOD]).call("POST", path, {"admin": admin, **profile})

        assert response.status_code == 201, response.text
        assert model.objects.filter(user__username=admin["username"]).exists()

    def test_role_create_with_a_mismatched_confirm_password_is_refused(self, service, people):
        admin = {"username": "m", "email": "m@school.test", "password": NEW_PASSWORD, "confirm_password": "x"}

        response = frontend_as(service, people[UserType.HOD]).call("POST", "staff/", {"admin": admin})

        assert response.status_code == 400
        assert not CustomUser.objects.filter(username="m").exists()


# --- The API gateway (Flask) ----------------------------------------------------------------------------


class TestGateway:
    def test_validate_token_before_each_proxied_request(self, service, people):
        tokens = frontend_login(service, people[UserType.STUDENT])
        gateway = Caller(service, tokens["access_token"])

        assert gateway.call("GET", "validate-token/").status_code == 200
        Caller(service, tokens["access_token"]).call("POST", "logout/", {})
        assert gateway.call("GET", "validate-token/").status_code == 401  # logged out: refused at once
        assert Caller(service, "not-a-token").call("GET", "validate-token/").status_code == 401

    def test_health_for_its_status_page(self, service):
        response = Caller(service).call("GET", "health/")

        assert response.status_code == 200
        assert response.json()["status"] in {"healthy", "degraded"}


# --- Sibling services' Celery tasks (no credentials) ------------------------------------------------------


@pytest.fixture
def legacy_mode(settings):
    settings.LEGACY_INTERNAL_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"),)  # the callers' network, here
    return settings


class TestSiblingTasks:
    """The feedback, leave and assessment services' tasks make these two calls alike."""

    def test_bulk_info_with_string_ids(self, service, people, legacy_mode):
        wanted = [people[UserType.STAFF], people[UserType.STUDENT]]

        response = Caller(service).call("POST", "bulk_info/", {"user_ids": [str(user.pk) for user in wanted]})

        assert response.status_code == 200, response.text
        rows = {row["id"]: row for row in response.json()}
        for user in wanted:
            assert (rows[user.pk]["first_name"], rows[user.pk]["last_name"], rows[user.pk]["email"]) == (
                user.first_name,
                user.last_name,
                user.email,
            )

    def test_users_listing(self, service, people, legacy_mode):
        response = Caller(service).call("GET", "users/")

        assert response.status_code == 200, response.text
        rows = {row["id"]: row for row in response.json()["results"]}
        assert rows.keys() == {user.pk for user in people.values()}
        assert all({"first_name", "last_name", "email"} <= row.keys() for row in rows.values())

    def test_without_the_migration_mode_the_same_calls_are_refused(self, service, people):
        assert Caller(service).call("POST", "bulk_info/", {"user_ids": ["1"]}).status_code == 401
        assert Caller(service).call("GET", "users/").status_code == 401
