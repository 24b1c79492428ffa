"""The users collection at the API prefix: GET/POST /api/v1/users/ and GET/PUT/PATCH /api/v1/users/{id}/.

The permission matrix cell by cell, the original frontend's calls exactly as it makes them, the list being users/
(filters, paging, queries), the flat create and change bodies with their errors, and the schema of both.
"""

import itertools

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import status
from rest_framework.test import APIClient

from conftest import USER_KEYS
from users.api import people_directory
from users.models import CustomUser, OutboxMessage, SecurityEvent, Staff, Student, UserType
from users.tests.principals import bearer_client, matrix_caller

API = "/api/v1/users"
PASSWORD = "Quiet-river-stones-2024"
pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "student", "staff", "hod", "service", "service_other_scope")
R = status.HTTP_200_OK
C = status.HTTP_201_CREATED
U = status.HTTP_401_UNAUTHORIZED
F = status.HTTP_403_FORBIDDEN
N = status.HTTP_404_NOT_FOUND
M = status.HTTP_405_METHOD_NOT_ALLOWED

# (method, path under the prefix, expected status per role in ROLES order). {other} is a Student who is not the
# caller, {own} the caller's own user id (for anonymous and services: someone's).
MATRIX = [
    ("get", "", (U, F, R, R, R, F)),
    ("post", "", (U, F, F, C, F, F)),
    ("delete", "", (U, F, F, M, F, F)),
    ("get", "{other}/", (U, N, R, R, R, F)),
    ("get", "{own}/", (U, R, R, R, R, F)),
    ("put", "{other}/", (U, N, F, R, F, F)),
    ("patch", "{other}/", (U, N, F, R, F, F)),
    ("put", "{own}/", (U, R, R, R, F, F)),
    ("patch", "{own}/", (U, R, R, R, F, F)),
    ("delete", "{own}/", (U, M, M, M, F, F)),
]
CASES = [
    pytest.param(method, path, role, expected[i], id=f"{method.upper()} /{path} as {role}")
    for (method, path, expected), (i, role) in itertools.product(MATRIX, enumerate(ROLES))
]


def _frontend_create_body(n: int | str, user_type: str = "3") -> dict:
    """The frontend's create body: every value a string, no username."""
    body = {
        "email": f"new{n}@school.test",
        "password": PASSWORD,
        "first_name": "New",
        "last_name": "Person",
        "user_type": user_type,
        "address": "1 School Lane",
    }
    if user_type in ("3", 3):
        body |= {"course_id": "4", "session_year_id": "2"}
    if user_type in ("1", 1):
        body.pop("address")
        body["department"] = "Science"
    return body


@pytest.mark.parametrize(("method", "path", "role", "expected"), CASES)
def test_permission_matrix(make_user, method, path, role, expected):
    # given a caller of the role, and a target Student (or the caller themself)
    client, caller = matrix_caller(role, make_user)
    target = caller if "{own}" in path and caller is not None else make_user(user_type=UserType.STUDENT)
    url = f"{API}/" + path.format(own=target.pk, other=target.pk)
    before = CustomUser.objects.count()

    # when the method is called
    if method == "post":
        response = client.post(url, _frontend_create_body(role), format="json")
    elif method in ("put", "patch"):
        response = getattr(client, method)(url, {"first_name": "Changed"}, format="json")
    else:
        response = getattr(client, method)(url)

    # then the status is the matrix's, and a write happened exactly when it was allowed
    assert response.status_code == expected, response.content[:500]
    if expected >= 400:
        assert "detail" in response.json()
    target.refresh_from_db()
    assert (target.first_name == "Changed") == (method in ("put", "patch") and expected == R)
    assert CustomUser.objects.count() == before + (1 if expected == C else 0)


def test_matrix_covers_every_method_of_the_prefix_routes():
    from users.api import urls

    views = {
        str(pattern.pattern): pattern.callback.view_class
        for pattern in urls.urlpatterns
        if str(pattern.pattern) in ("", "<int:pk>/")
    }
    assert views == {"": people_directory.UserCollectionView, "<int:pk>/": people_directory.UserItemView}
    for route, view in views.items():
        methods = {m for m in view.http_method_names if hasattr(view, m) and m not in ("head", "options")}
        covered = {method for method, path, _ in MATRIX if (path == "") == (route == "")}
        assert methods <= covered, route


# --- The frontend's calls, exactly as it makes them ------------------------------------------------


@pytest.fixture
def hod_client(hod):
    return bearer_client(hod)


class TestFrontendCreate:
    @pytest.mark.parametrize("user_type", ["1", "2", "3", 1, 2, 3])
    def test_flat_body_creates_the_person_and_the_email_logs_in(self, hod_client, user_type):
        # given the frontend's body: user_type (a string or a number), strings for every value, no username
        body = _frontend_create_body(f"fe{user_type}", user_type)
        # when the HOD posts it to the prefix
        response = hod_client.post(f"{API}/", body, format="json")
        # then 201 with the user and its profile, user_type an integer, username the e-mail address
        assert response.status_code == status.HTTP_201_CREATED, response.content
        reply = response.json()
        assert set(reply) == USER_KEYS | {"profile"}
        assert reply["user_type"] == int(user_type)
        assert reply["username"] == body["email"]
        assert (reply["first_name"], reply["last_name"], reply["email"]) == ("New", "Person", body["email"])
        user = CustomUser.objects.get(pk=reply["id"])
        assert user.user_type == int(user_type)
        assert reply == APIClient.get(hod_client, f"{API}/user/{user.pk}/").json()  # the user/{id}/ shape
        # and the e-mail with the password logs in
        login = APIClient().post(f"{API}/login/", {"username": body["email"], "password": PASSWORD}, format="json")
        assert login.status_code == status.HTTP_200_OK, login.content

    def test_student_profile_keeps_the_string_ids_as_numbers(self, hod_client):
        # given the frontend's student body, course_id and session_year_id as strings
        response = hod_client.post(f"{API}/", _frontend_create_body("ids"), format="json")
        # then the profile holds them as the numbers they name, and the address
        assert response.status_code == status.HTTP_201_CREATED, response.content
        profile = response.json()["profile"]
        assert (profile["course_id"], profile["session_year_id"], profile["address"]) == (4, 2, "1 School Lane")
        student = Student.objects.get(user_id=response.json()["id"])
        assert (student.course_id, student.session_year_id) == (4, 2)

    def test_create_writes_the_owners_side_effects(self, hod_client, hod):
        # when the HOD creates a person at the prefix
        response = hod_client.post(f"{API}/", _frontend_create_body("fx"), format="json")
        # then the create service's audit record and event are there, as for the role endpoints
        user_id = response.json()["id"]
        assert SecurityEvent.objects.filter(user_id=user_id, type=SecurityEvent.Type.USER_CREATED).exists()
        assert OutboxMessage.objects.filter(topic="user.created", payload__user_id=user_id).exists()

    def test_without_a_password_the_person_is_invited(self, hod_client):
        body = _frontend_create_body("inv")
        del body["password"]

        response = hod_client.post(f"{API}/", body, format="json")

        assert response.status_code == status.HTTP_201_CREATED, response.content
        user = CustomUser.objects.get(pk=response.json()["id"])
        assert not user.has_usable_password()


class TestFrontendList:
    @pytest.fixture
    def school(self, make_user):
        return {
            "staff": make_user(user_type=UserType.STAFF, first_name="Sam", last_name="Staff"),
            "student": make_user(user_type=UserType.STUDENT, first_name="Stu", last_name="Dent"),
        }

    @pytest.mark.parametrize(("query", "wanted"), [("", {1, 2, 3}), ("?user_type=2", {2}), ("?user_type=3", {3})])
    def test_lists_read_as_the_frontend_reads_them(self, hod_client, school, query, wanted):
        # when the frontend lists users, all or of one type
        response = hod_client.get(f"{API}/{query}")
        # then results carry the keys it reads, user_type an integer of the types asked for
        assert response.status_code == status.HTTP_200_OK
        results = response.json()["results"]
        assert {row["user_type"] for row in results} == wanted
        assert all(isinstance(row["user_type"], int) for row in results)
        rows = {(r["id"], r["first_name"], r["last_name"], r["email"]) for r in results}
        for person in school.values():
            if person.user_type in wanted:
                assert (person.pk, person.first_name, person.last_name, person.email) in rows


class TestFrontendSelfChange:
    def test_put_by_self_with_null_email_changes_the_names_only(self, make_user):
        # given a Student with an address and a verified e-mail
        student = make_user(user_type=UserType.STUDENT, email="me@school.test")
        CustomUser.objects.filter(pk=student.pk).update(email_verified=True)
        Student.objects.filter(user=student).update(address="9 Home Road", guardian_name="Pat")
        # when they PUT the frontend's body
        response = bearer_client(student).put(
            f"{API}/{student.pk}/", {"first_name": "A", "last_name": "B", "email": None}, format="json"
        )
        # then 200: the names changed, the e-mail stayed (still verified), the profile is untouched
        assert response.status_code == status.HTTP_200_OK, response.content
        reply = response.json()
        assert (reply["first_name"], reply["last_name"], reply["email"]) == ("A", "B", "me@school.test")
        assert reply["email_verified"] is True
        assert (reply["profile"]["address"], reply["profile"]["guardian_name"]) == ("9 Home Road", "Pat")
        student.refresh_from_db()
        assert (student.first_name, student.last_name, student.email) == ("A", "B", "me@school.test")

    def test_a_get_after_a_put_shows_the_change(self, make_user, hod_client):
        # given a Student whose user/{id}/ and {id}/ answers are cached
        student = make_user(user_type=UserType.STUDENT)
        for url in (f"{API}/{student.pk}/", f"{API}/user/{student.pk}/"):
            assert hod_client.get(url).json()["first_name"] != "Renamed"
        # when they change their name at {id}/
        put = bearer_client(student).put(f"{API}/{student.pk}/", {"first_name": "Renamed"}, format="json")
        assert put.status_code == status.HTTP_200_OK
        # then both reads show it at once: the owner dropped the cache
        for url in (f"{API}/{student.pk}/", f"{API}/user/{student.pk}/"):
            assert hod_client.get(url).json()["first_name"] == "Renamed"

    def test_email_change_by_self_must_be_verified_again(self, make_user):
        # given a Staff member with a verified address
        staff = make_user(user_type=UserType.STAFF, email="old@school.test")
        CustomUser.objects.filter(pk=staff.pk).update(email_verified=True)
        # when they PATCH a new one
        response = bearer_client(staff).patch(f"{API}/{staff.pk}/", {"email": "new@school.test"}, format="json")
        # then as with PATCH profile/: the new address is unverified, a verification e-mail and an audit record
        assert response.status_code == status.HTTP_200_OK, response.content
        assert (response.json()["email"], response.json()["email_verified"]) == ("new@school.test", False)
        assert OutboxMessage.objects.filter(topic="verify_email", payload__to="new@school.test").exists()
        assert SecurityEvent.objects.filter(user=staff, type=SecurityEvent.Type.EMAIL_CHANGED).exists()

    @pytest.mark.parametrize("method", ["put", "patch"])
    def test_self_editable_profile_fields_flat(self, make_user, method):
        # given a Student
        student = make_user(user_type=UserType.STUDENT)
        Student.objects.filter(user=student).update(address="Old Road", course_id=7)
        # when they change their phone and guardian beside their name, flat
        body = {"phone_number": "+254 700 000 001", "guardian_name": "Kim", "last_name": "New"}
        response = getattr(bearer_client(student), method)(f"{API}/{student.pk}/", body, format="json")
        # then those changed, and nothing they left out
        assert response.status_code == status.HTTP_200_OK, response.content
        profile = Student.objects.get(user=student)
        assert (profile.phone_number, profile.guardian_name, profile.address) == ("+254 700 000 001", "Kim", "Old Road")
        assert profile.course_id == 7
        assert response.json()["last_name"] == "New"


# --- Changes: who may change what --------------------------------------------------------------------


class TestChanges:
    @pytest.mark.parametrize(
        ("field", "value"),
        [("student_id", "MINE"), ("course_id", 9), ("username", "mine"), ("is_active", False)],
    )
    def test_a_field_self_may_not_change_is_a_400_naming_it(self, make_user, field, value):
        # given a Student
        student = make_user(user_type=UserType.STUDENT)
        before = (CustomUser.objects.get(pk=student.pk).username, Student.objects.get(user=student).student_id)
        # when they send a field only an HOD may change, beside one they may
        body = {field: value, "first_name": "Sneaky"}
        response = bearer_client(student).patch(f"{API}/{student.pk}/", body, format="json")
        # then 400 names it, flat as sent, and nothing changed
        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == [field]
        student.refresh_from_db()
        assert student.first_name != "Sneaky"
        assert student.is_active
        assert (student.username, Student.objects.get(user=student).student_id) == before

    def test_errors_of_self_editable_profile_fields_are_flat(self, make_user):
        staff = make_user(user_type=UserType.STAFF)

        response = bearer_client(staff).put(f"{API}/{staff.pk}/", {"phone_number": "call me"}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["phone_number"]

    @pytest.mark.parametrize("method", ["put", "patch"])
    def test_unknown_field_is_a_400_naming_it(self, make_user, hod_client, method):
        student = make_user(user_type=UserType.STUDENT)

        for client in (hod_client, bearer_client(student)):
            body = {"first_name": "X", "favourite_colour": "blue", "password": PASSWORD, "user_type": 1}
            response = getattr(client, method)(f"{API}/{student.pk}/", body, format="json")

            assert response.status_code == status.HTTP_400_BAD_REQUEST
            assert set(response.json()) == {"favourite_colour", "password", "user_type"}
        student.refresh_from_db()
        assert student.first_name != "X"

    def test_a_field_of_another_role_is_unknown(self, make_user, hod_client):
        staff = make_user(user_type=UserType.STAFF)

        response = hod_client.patch(f"{API}/{staff.pk}/", {"student_id": "S-1"}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["student_id"]

    def test_unknown_field_sent_as_null_is_still_refused(self, make_user, hod_client):
        student = make_user(user_type=UserType.STUDENT)

        response = hod_client.put(f"{API}/{student.pk}/", {"nickname": None}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["nickname"]

    @pytest.mark.parametrize("method", ["put", "patch"])
    def test_hod_changes_user_and_profile_fields_flat_and_nothing_else(self, make_user, hod_client, method):
        # given a Student with an address and a guardian
        student = make_user(user_type=UserType.STUDENT, username="before")
        Student.objects.filter(user=student).update(address="Keep Road", guardian_name="Keep")
        # when an HOD changes some user and profile fields, flat
        body = {"username": "after", "student_id": "S-77", "course_id": "5", "gender": "F", "last_name": "Lee"}
        response = getattr(hod_client, method)(f"{API}/{student.pk}/", body, format="json")
        # then exactly those changed (a PUT here leaves out-of-body fields as they were)
        assert response.status_code == status.HTTP_200_OK, response.content
        student.refresh_from_db()
        profile = Student.objects.get(user=student)
        assert (student.username, student.last_name) == ("after", "Lee")
        assert (profile.student_id, profile.course_id, profile.gender) == ("S-77", 5, "F")
        assert (profile.address, profile.guardian_name) == ("Keep Road", "Keep")
        assert response.json()["profile"]["student_id"] == "S-77"

    def test_null_means_unchanged_even_for_required_fields(self, make_user, hod_client):
        # given a Student with a course
        student = make_user(user_type=UserType.STUDENT, username="keepme")
        Student.objects.filter(user=student).update(course_id=3, address="Stay")
        # when an HOD PUTs nulls for the username, the e-mail, the course and the address, and one real change
        body = {"username": None, "email": None, "course_id": None, "address": None, "first_name": "Only"}
        response = hod_client.put(f"{API}/{student.pk}/", body, format="json")
        # then only the real change happened
        assert response.status_code == status.HTTP_200_OK, response.content
        student.refresh_from_db()
        profile = Student.objects.get(user=student)
        assert (student.username, student.first_name, profile.course_id, profile.address) == (
            "keepme",
            "Only",
            3,
            "Stay",
        )

    def test_an_empty_body_changes_nothing(self, make_user, hod_client):
        student = make_user(user_type=UserType.STUDENT)
        events = SecurityEvent.objects.count()

        response = hod_client.put(f"{API}/{student.pk}/", {}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert SecurityEvent.objects.count() == events

    def test_hod_change_is_audited_with_the_hod_as_actor(self, make_user, hod, hod_client):
        student = make_user(user_type=UserType.STUDENT)

        hod_client.patch(f"{API}/{student.pk}/", {"address": "Audit Lane"}, format="json")

        record = SecurityEvent.objects.get(user=student, type=SecurityEvent.Type.USER_UPDATED)
        assert record.data["fields"] == ["address"]
        assert record.actor_id == hod.pk

    def test_hod_deactivates_and_reactivates(self, make_user, hod_client):
        staff = make_user(user_type=UserType.STAFF)

        off = hod_client.patch(f"{API}/{staff.pk}/", {"is_active": False}, format="json")
        assert off.status_code == status.HTTP_200_OK
        assert off.json()["is_active"] is False
        on = hod_client.patch(f"{API}/{staff.pk}/", {"is_active": True}, format="json")
        assert on.json()["is_active"] is True

    def test_hod_cannot_deactivate_themselves(self, hod, hod_client):
        response = hod_client.patch(f"{API}/{hod.pk}/", {"is_active": False}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        hod.refresh_from_db()
        assert hod.is_active

    def test_hod_changes_their_own_department(self, hod, hod_client):
        response = hod_client.put(f"{API}/{hod.pk}/", {"department": "Maths", "email": None}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert response.json()["profile"]["department"] == "Maths"

    def test_a_taken_email_is_a_400_on_email(self, make_user, hod_client):
        make_user(email="taken@school.test")
        student = make_user(user_type=UserType.STUDENT)

        response = hod_client.patch(f"{API}/{student.pk}/", {"email": "TAKEN@school.test"}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["email"]

    def test_student_naming_someone_else_gets_the_404_of_a_missing_id(self, make_user):
        student, other = make_user(user_type=UserType.STUDENT), make_user(user_type=UserType.STAFF)
        client = bearer_client(student)

        someone = client.put(f"{API}/{other.pk}/", {"first_name": "X"}, format="json")
        missing = client.put(f"{API}/987654321/", {"first_name": "X"}, format="json")

        assert someone.status_code == missing.status_code == status.HTTP_404_NOT_FOUND
        assert someone.json() == missing.json()
        other.refresh_from_db()
        assert other.first_name != "X"

    def test_staff_changing_someone_else_is_refused(self, make_user, staff):
        student = make_user(user_type=UserType.STUDENT)

        response = bearer_client(staff).patch(f"{API}/{student.pk}/", {"address": "Elsewhere"}, format="json")

        assert response.status_code == status.HTTP_403_FORBIDDEN
        assert Student.objects.get(user=student).address != "Elsewhere"

    def test_hod_changing_a_missing_id_gets_404(self, hod_client):
        assert hod_client.patch(f"{API}/987654321/", {"first_name": "X"}, format="json").status_code == N


class TestStrictBooleans:
    """True/false fields take JSON true or false only, as the schema says (the strict input base refuses the rest)."""

    @pytest.mark.parametrize("value", [0, 1, "false", "true", "off", ""])
    def test_is_active_takes_only_true_or_false(self, make_user, hod_client, value):
        # given a Student
        student = make_user(user_type=UserType.STUDENT)
        # when an HOD sends is_active as something else than true or false, flat and on the role endpoint
        flat = hod_client.patch(f"{API}/{student.pk}/", {"is_active": value}, format="json")
        nested = hod_client.patch(
            f"{API}/students/{student.student_profile.pk}/", {"user": {"is_active": value}}, format="json"
        )
        # then both are a 400 naming it, and the Student stays active
        assert flat.status_code == nested.status_code == status.HTTP_400_BAD_REQUEST
        assert list(flat.json()) == ["is_active"]
        assert list(nested.json()["user"]) == ["is_active"]
        student.refresh_from_db()
        assert student.is_active


# --- Create: errors -------------------------------------------------------------------------------------


class TestCreateErrors:
    @pytest.mark.parametrize("user_type", ["4", 0, "x", "", None, True, 3.0, " 3", [3], {"v": 3}])
    def test_bad_user_type_is_a_400_naming_it(self, hod_client, user_type):
        body = _frontend_create_body("bad")
        body["user_type"] = user_type

        response = hod_client.post(f"{API}/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["user_type"]
        assert not CustomUser.objects.filter(email="newbad@school.test").exists()

    def test_missing_user_type_is_a_400_naming_it(self, hod_client):
        body = _frontend_create_body("none")
        del body["user_type"]

        response = hod_client.post(f"{API}/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["user_type"]

    def test_a_field_of_another_role_or_unknown_is_named(self, hod_client):
        body = {**_frontend_create_body("role", "2"), "course_id": "1", "shoe_size": "42"}

        response = hod_client.post(f"{API}/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert set(response.json()) == {"course_id", "shoe_size"}
        assert not Staff.objects.filter(user__email="newrole@school.test").exists()

    def test_mismatched_confirm_password_is_named(self, hod_client):
        body = {**_frontend_create_body("cp"), "confirm_password": PASSWORD + "x"}

        response = hod_client.post(f"{API}/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["confirm_password"]

    def test_matching_confirm_password_is_accepted(self, hod_client):
        body = {**_frontend_create_body("cp2"), "confirm_password": PASSWORD}

        assert hod_client.post(f"{API}/", body, format="json").status_code == status.HTTP_201_CREATED

    def test_service_errors_stay_flat(self, hod_client, make_user):
        make_user(email="newdup@school.test", username="someone")

        response = hod_client.post(f"{API}/", _frontend_create_body("dup"), format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["email"]

    def test_a_nested_user_is_not_a_form_of_this_endpoint(self, hod_client):
        body = {"user_type": 3, "user": {"username": "n", "email": "n@school.test"}}

        response = hod_client.post(f"{API}/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "user" in response.json()

    def test_a_body_that_is_not_an_object_is_a_400(self, hod_client):
        assert hod_client.post(f"{API}/", [1, 2], format="json").status_code == status.HTTP_400_BAD_REQUEST


# --- The list is users/ ----------------------------------------------------------------------------------


class TestListIsUsers:
    @pytest.fixture
    def crowd(self):
        call_command("seed_demo", students=30, staff=30, hods=5, seed=11)

    @pytest.mark.parametrize(
        "query",
        [
            "",
            "?user_type=2",
            "?user_type=3&ordering=-last_name",
            "?is_active=false",
            "?include_inactive=true",
            "?search=a",
            "?ids=1,2,3",
            "?page_size=7&page=2",
            "?ordering=email,,",
            "?user_type=9",
            "?page=999",
        ],
    )
    def test_same_answer_as_users(self, hod_client, crowd, query):
        CustomUser.objects.filter(pk__in=CustomUser.objects.order_by("pk")[:4].values("pk")).update(is_active=False)

        ours = hod_client.get(f"{API}/{query}")
        theirs = hod_client.get(f"{API}/users/{query}")

        assert ours.status_code == theirs.status_code
        if ours.status_code == status.HTTP_200_OK:
            body, expected = ours.json(), theirs.json()
            for link in ("next", "previous"):
                if expected[link] is not None:
                    expected[link] = expected[link].replace(f"{API}/users/", f"{API}/")
            assert body == expected
        else:
            assert ours.json() == theirs.json()

    @pytest.mark.parametrize(
        ("query", "queries"),
        [
            ("", 3),  # the caller's user, a COUNT(*) bounded by PEOPLE_COUNT_EXACT_LIMIT, the page
            ("?search=e&user_type=2", 4),  # + matching user ids
            ("?search=e%20a", 5),  # one more query per word
        ],
    )
    def test_queries_as_users(self, hod_client, crowd, query, queries, django_assert_max_num_queries):
        separator = "&" if "?" in query else "?"
        hod_client.get(f"{API}/{query}")  # warm the session-state cache
        counts = {}
        for path in ("", "users/"):
            for size in (1, 50):
                with CaptureQueriesContext(connection) as captured, django_assert_max_num_queries(queries):
                    response = hod_client.get(f"{API}/{path}{query}{separator}page_size={size}")
                assert response.status_code == status.HTTP_200_OK
                counts[(path, size)] = len(captured)
        assert len(set(counts.values())) == 1, counts

    def test_item_get_is_user_detail(self, hod_client, make_user, django_assert_max_num_queries):
        student = make_user(user_type=UserType.STUDENT)
        hod_client.get(f"{API}/user/{student.pk}/")

        with django_assert_max_num_queries(1):  # the caller; the user comes from the cache user/{id}/ filled
            ours = hod_client.get(f"{API}/{student.pk}/")

        assert ours.status_code == status.HTTP_200_OK
        assert ours.json() == hod_client.get(f"{API}/user/{student.pk}/").json()

    def test_legacy_anonymous_mode_does_not_reach_the_prefix(self, settings, make_user):
        import ipaddress

        settings.LEGACY_INTERNAL_NETWORKS = (ipaddress.ip_network("10.30.0.0/16"),)
        make_user(user_type=UserType.STUDENT)

        listed = APIClient().get(f"{API}/users/", REMOTE_ADDR="10.30.0.7")
        prefix = APIClient().get(f"{API}/", REMOTE_ADDR="10.30.0.7")

        assert listed.status_code == status.HTTP_200_OK
        assert prefix.status_code == status.HTTP_401_UNAUTHORIZED


# --- The schema ----------------------------------------------------------------------------------------------


class TestSchema:
    @pytest.fixture
    def schema(self, api_client) -> dict:
        return api_client.get("/api/schema/?format=json").json()

    @staticmethod
    def _component(schema: dict, ref: dict) -> dict:
        return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]

    def test_create_is_one_of_three_closed_flat_forms_told_apart_by_user_type(self, schema):
        operation = schema["paths"][f"{API}/"]["post"]
        body = self._component(schema, operation["requestBody"]["content"]["application/json"]["schema"])
        forms = [self._component(schema, branch) for branch in body["oneOf"]]

        assert all(form["additionalProperties"] is False for form in forms)
        assert all(set(form["required"]) == {"email", "user_type"} for form in forms)
        types = [form["properties"]["user_type"]["oneOf"] for form in forms]
        assert types == [[{"type": "integer", "enum": [n]}, {"type": "string", "enum": [str(n)]}] for n in (1, 2, 3)]
        assert {"course_id", "session_year_id", "address", "confirm_password"} <= set(forms[2]["properties"])
        assert {"201", "400", "401", "403"} <= set(operation["responses"])

    @pytest.mark.parametrize("method", ["put", "patch"])
    def test_change_is_any_of_three_closed_flat_forms_all_optional_and_nullable(self, schema, method):
        operation = schema["paths"][f"{API}/{{id}}/"][method]
        body = self._component(schema, operation["requestBody"]["content"]["application/json"]["schema"])
        forms = [self._component(schema, branch) for branch in body["anyOf"]]

        for form in forms:
            assert form["additionalProperties"] is False
            assert "required" not in form
            assert {"username", "email", "first_name", "last_name", "is_active"} <= set(form["properties"])
            assert all(prop.get("nullable") for prop in form["properties"].values())
        assert {"200", "400", "401", "403", "404"} <= set(operation["responses"])

    def test_list_and_item_read_as_users_and_user_detail(self, schema):
        paths = schema["paths"]
        ours, theirs = paths[f"{API}/"]["get"], paths[f"{API}/users/"]["get"]
        assert ours["parameters"] == theirs["parameters"]
        assert ours["responses"]["200"] == theirs["responses"]["200"]
        item, detail = paths[f"{API}/{{id}}/"]["get"], paths[f"{API}/user/{{id}}/"]["get"]
        assert item["responses"] == detail["responses"]
