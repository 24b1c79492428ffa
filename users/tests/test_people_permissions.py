"""The people endpoints' permission matrix (DESIGN §6): every role × endpoint × method, plus IDOR attempts."""

import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework import status

from users.models import CustomUser, UserType
from users.tests.principals import matrix_caller

API = "/api/v1/users"
pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "student", "staff", "hod", "service", "service_without_scope")
R = status.HTTP_200_OK
C = status.HTTP_201_CREATED
D = status.HTTP_204_NO_CONTENT
U = status.HTTP_401_UNAUTHORIZED
F = status.HTTP_403_FORBIDDEN
N = status.HTTP_404_NOT_FOUND
M = status.HTTP_405_METHOD_NOT_ALLOWED

# (method, path template, expected status per role in ROLES order). {student}/{staff}/{hod2} are profile ids,
# {other_user} is a user id that is not the caller's, {own_user} the caller's own user id.
MATRIX = [
    ("get", "students/", (U, F, R, R, R, F)),
    ("post", "students/", (U, F, F, C, F, F)),
    ("get", "students/{student}/", (U, F, R, R, R, F)),
    ("patch", "students/{student}/", (U, F, F, R, F, F)),
    ("put", "students/{student}/", (U, F, F, R, F, F)),
    ("delete", "students/{student}/", (U, F, F, D, F, F)),
    ("post", "students/import/", (U, F, F, C, F, F)),
    ("get", "staff/", (U, F, R, R, R, F)),
    ("post", "staff/", (U, F, F, C, F, F)),
    ("get", "staff/{staff}/", (U, F, R, R, R, F)),
    ("patch", "staff/{staff}/", (U, F, F, R, F, F)),
    ("put", "staff/{staff}/", (U, F, F, R, F, F)),
    ("delete", "staff/{staff}/", (U, F, F, D, F, F)),
    ("post", "staff/import/", (U, F, F, C, F, F)),
    ("get", "admins/", (U, F, F, R, F, F)),
    ("post", "admins/", (U, F, F, C, F, F)),
    ("get", "admins/{hod2}/", (U, F, F, R, F, F)),
    ("patch", "admins/{hod2}/", (U, F, F, R, F, F)),
    ("put", "admins/{hod2}/", (U, F, F, M, F, F)),
    ("delete", "admins/{hod2}/", (U, F, F, M, F, F)),
    ("get", "users/", (U, F, R, R, R, F)),
    ("post", "users/", (U, F, M, M, M, F)),
    ("get", "user/{other_user}/", (U, N, R, R, R, F)),
    ("get", "user/{own_user}/", (U, R, R, R, R, F)),
    ("patch", "user/{own_user}/", (U, M, M, M, M, F)),
    ("delete", "user/{own_user}/", (U, M, M, M, M, F)),
]

CASES = [
    pytest.param(method, path, role, expected[i], id=f"{method.upper()} {path} as {role}")
    for (method, path, expected), (i, role) in itertools.product(MATRIX, enumerate(ROLES))
]


def _body(method: str, path: str, n: int) -> dict:
    user = {"username": f"new{n}", "email": f"new{n}@school.test", "first_name": "New", "last_name": "Person"}
    if method == "patch":
        return {"user": {"first_name": "Changed"}}
    if method == "put":
        return {"user": {"username": f"put{n}", "email": f"put{n}@school.test"}}
    if path.startswith("students"):
        return {"user": user, "student_id": f"S-{n}", "gender": "F"}
    if path.startswith("staff"):
        return {"user": user, "employee_id": f"E-{n}", "department": "Physics"}
    return {"user": user, "department": "Physics"}


ROSTER = {
    "students/import/": b"username,email,student_id\nrost1,rost1@school.test,R-1\n",
    "staff/import/": b"username,email,employee_id\nrost2,rost2@school.test,RE-2\n",
}


TARGETS = {
    "student": lambda make_user: make_user(user_type=UserType.STUDENT).student_profile.pk,
    "staff": lambda make_user: make_user(user_type=UserType.STAFF).staff_profile.pk,
    "hod2": lambda make_user: make_user(user_type=UserType.HOD).adminhod_profile.pk,
    "other_user": lambda make_user: make_user(user_type=UserType.STUDENT).pk,
}


@pytest.mark.parametrize(("method", "path", "role", "expected"), CASES)
def test_permission_matrix(make_user, method, path, role, expected):
    client, caller = matrix_caller(role, make_user)
    ids = {name: build(make_user) for name, build in TARGETS.items() if f"{{{name}}}" in path}
    if "{own_user}" in path:
        ids["own_user"] = caller.pk if caller else make_user().pk
    url = f"{API}/" + path.format(**ids)

    if path in ROSTER:
        upload = SimpleUploadedFile("roster.csv", ROSTER[path], content_type="text/csv")
        response = client.post(url, {"file": upload}, format="multipart")
    elif method in ("post", "put", "patch"):
        response = getattr(client, method)(url, _body(method, path, len(url)), format="json")
    else:
        response = getattr(client, method)(url)

    assert response.status_code == expected, response.content[:500]
    if expected >= 400:
        assert "detail" in response.json()


def test_matrix_covers_every_people_route():
    from users.api import people_urls

    routes = {str(pattern.pattern) for pattern in people_urls.urlpatterns}
    covered = {path.replace("{student}", "<int:pk>").replace("{staff}", "<int:pk>") for _, path, _ in MATRIX}
    covered = {
        path.replace("{hod2}", "<int:pk>").replace("{other_user}", "<int:pk>").replace("{own_user}", "<int:pk>")
        for path in covered
    }
    assert routes <= covered


class TestNoIDOR:
    def test_student_reading_another_user_gets_the_same_404_as_for_a_missing_id(self, client_for, student, staff):
        client = client_for(student)

        other = client.get(f"{API}/user/{staff.pk}/")
        missing = client.get(f"{API}/user/987654321/")

        assert other.status_code == missing.status_code == status.HTTP_404_NOT_FOUND
        assert other.json() == missing.json()

    def test_student_cannot_change_their_own_student_record(self, client_for, student):
        client = client_for(student)
        url = f"{API}/students/{student.student_profile.pk}/"

        assert client.patch(url, {"student_id": "MINE"}, format="json").status_code == status.HTTP_403_FORBIDDEN
        assert client.delete(url).status_code == status.HTTP_403_FORBIDDEN
        student.student_profile.refresh_from_db()
        assert student.student_profile.student_id != "MINE"

    def test_staff_cannot_write_anyone(self, client_for, staff, student):
        client = client_for(staff)

        for method, url in [
            ("patch", f"{API}/students/{student.student_profile.pk}/"),
            ("delete", f"{API}/students/{student.student_profile.pk}/"),
            ("patch", f"{API}/staff/{staff.staff_profile.pk}/"),
            ("delete", f"{API}/staff/{staff.staff_profile.pk}/"),
        ]:
            response = getattr(client, method)(url, {"user": {"is_active": False}}, format="json")
            assert response.status_code == status.HTTP_403_FORBIDDEN
        assert CustomUser.objects.filter(pk__in=[staff.pk, student.pk], is_active=True).count() == 2

    def test_student_sees_own_user_with_profile(self, client_for, student):
        response = client_for(student).get(f"{API}/user/{student.pk}/")

        assert response.status_code == status.HTTP_200_OK
        assert response.json()["profile"]["id"] == student.student_profile.pk

    def test_profile_ids_of_another_role_are_not_found(self, client_for, hod, staff):
        # staff/{id}/ takes a staff profile id; an HOD's profile id there is simply not a staff member
        response = client_for(hod).get(f"{API}/admins/{staff.staff_profile.pk + 10_000}/")

        assert response.status_code == status.HTTP_404_NOT_FOUND

    @pytest.mark.parametrize("path", ["students/99999999999999999999/", "user/99999999999999999999/"])
    def test_ids_beyond_the_database_range_are_404(self, client_for, hod, path):
        assert client_for(hod).get(f"{API}/{path}").status_code == status.HTTP_404_NOT_FOUND
