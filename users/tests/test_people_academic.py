"""course_id / session_year_id checked with the academic service (a real HTTP server on loopback) per mode."""

import logging
import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework import status

from clients.academic import AcademicServiceClient
from users.models import CustomUser, Student
from users.tests.principals import bearer_client

API = "/api/v1/users"
pytestmark = pytest.mark.django_db
COURSE = {"id": 3, "name": "Physics", "code": "PHY"}
SESSION_YEAR = {"id": 2, "start_date": "2025-09-01", "end_date": "2026-06-30"}


@pytest.fixture
def academic(settings, httpserver_ipv4):
    """The academic service on loopback; the shared client is rebuilt so it reads the test's settings."""
    settings.ACADEMIC_SERVICE_URL = httpserver_ipv4.url_for("/")
    settings.SERVICE_HTTP_MAX_RETRIES = 0
    AcademicServiceClient.reset_shared()
    yield httpserver_ipv4
    AcademicServiceClient.reset_shared()


@pytest.fixture
def academic_down(settings):
    """A loopback port that refuses every connection."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings.ACADEMIC_SERVICE_URL = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings.SERVICE_HTTP_MAX_RETRIES = 0
    AcademicServiceClient.reset_shared()
    yield
    sock.close()
    AcademicServiceClient.reset_shared()


@pytest.fixture
def hod_client(hod):
    return bearer_client(hod)


def create(client, **profile):
    body = {"user": {"username": "ada", "email": "ada@school.test"}, "course_id": 3, "session_year_id": 2, **profile}
    return client.post(f"{API}/students/", body, format="json")


def known(server, course=COURSE, session_year=SESSION_YEAR):
    server.expect_request(f"/api/v1/courses/{course['id']}/", method="GET").respond_with_json(course)
    server.expect_request(f"/api/v1/session-years/{session_year['id']}/").respond_with_json(session_year)


class TestStrict:
    @pytest.fixture(autouse=True)
    def _strict(self, settings):
        settings.ACADEMIC_VALIDATION = "strict"

    def test_known_ids_are_accepted_and_the_call_carries_a_service_token(self, hod_client, academic):
        known(academic)

        response = create(hod_client)

        assert response.status_code == status.HTTP_201_CREATED, response.content
        assert [entry[0].path for entry in academic.log] == [
            "/api/v1/courses/3/",
            "/api/v1/session-years/2/",
        ]
        assert academic.log[0][0].headers["Authorization"].startswith("Bearer ")

    def test_unknown_course_is_400_and_nothing_is_created(self, hod_client, academic):
        academic.expect_request("/api/v1/courses/3/").respond_with_json({"detail": "Not found."}, status=404)
        academic.expect_request("/api/v1/session-years/2/").respond_with_json(SESSION_YEAR)

        response = create(hod_client)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json() == {"course_id": ["The academic service knows no course with id 3."]}
        assert not CustomUser.objects.filter(username="ada").exists()

    def test_unknown_session_year_is_400(self, hod_client, academic):
        academic.expect_request("/api/v1/courses/3/").respond_with_json(COURSE)
        academic.expect_request("/api/v1/session-years/2/").respond_with_data("", status=404)

        response = create(hod_client)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert list(response.json()) == ["session_year_id"]

    def test_service_down_is_503_with_a_clear_message(self, hod_client, academic_down):
        response = create(hod_client)

        assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
        assert response.json()["code"] == "academic_service_unavailable"
        assert "academic service is unavailable" in response.json()["detail"]
        assert response["Retry-After"]
        assert not CustomUser.objects.filter(username="ada").exists()

    def test_service_failing_with_500_is_503(self, hod_client, academic):
        academic.expect_request("/api/v1/courses/3/").respond_with_data("boom", status=500)

        assert create(hod_client).status_code == status.HTTP_503_SERVICE_UNAVAILABLE

    def test_no_ids_no_call(self, hod_client, academic):
        response = create(hod_client, course_id=None, session_year_id=None)

        assert response.status_code == status.HTTP_201_CREATED
        assert academic.log == []

    def test_patch_checks_only_ids_that_change(self, hod_client, academic, student):
        Student.objects.filter(user=student).update(course_id=3, session_year_id=2)
        url = f"{API}/students/{student.student_profile.pk}/"
        academic.expect_request("/api/v1/courses/4/").respond_with_data("", status=404)

        unchanged = hod_client.patch(url, {"course_id": 3, "session_year_id": 2, "address": "x"}, format="json")
        changed = hod_client.patch(url, {"course_id": 4}, format="json")

        assert unchanged.status_code == status.HTTP_200_OK
        assert changed.status_code == status.HTTP_400_BAD_REQUEST
        assert [entry[0].path for entry in academic.log] == ["/api/v1/courses/4/"]

    def test_roster_rows_with_unknown_ids_are_reported_by_line(self, hod_client, academic):
        known(academic)
        academic.expect_request("/api/v1/courses/9/").respond_with_data("", status=404)
        csv = (
            "username,email,course_id,session_year_id\n"
            "a1,a1@school.test,3,2\na2,a2@school.test,9,2\na3,a3@school.test,9,\n"
        )

        response = hod_client.post(
            f"{API}/students/import/",
            {"file": SimpleUploadedFile("r.csv", csv.encode())},
            format="multipart",
        )

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert [(e["line"], e["field"]) for e in response.json()["errors"]] == [(3, "course_id"), (4, "course_id")]
        assert len(academic.log) == 3  # each distinct id once, not once per row

    def test_roster_import_with_the_service_down_is_503(self, hod_client, academic_down):
        csv = b"username,email,course_id\na1,a1@school.test,3\n"

        response = hod_client.post(
            f"{API}/students/import/", {"file": SimpleUploadedFile("r.csv", csv)}, format="multipart"
        )

        assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
        assert not CustomUser.objects.filter(username="a1").exists()


class TestLenient:
    @pytest.fixture(autouse=True)
    def _lenient(self, settings):
        settings.ACADEMIC_VALIDATION = "lenient"

    def test_service_down_accepts_and_logs_a_warning(self, hod_client, academic_down, caplog):
        with caplog.at_level(logging.WARNING, logger="users.services.people"):
            response = create(hod_client)

        assert response.status_code == status.HTTP_201_CREATED
        assert Student.objects.get(user__username="ada").course_id == 3
        assert any("academic service unavailable" in record.getMessage() for record in caplog.records)

    def test_unknown_course_is_still_refused_when_the_service_answers(self, hod_client, academic):
        academic.expect_request("/api/v1/courses/3/").respond_with_data("", status=404)
        academic.expect_request("/api/v1/session-years/2/").respond_with_json(SESSION_YEAR)

        assert create(hod_client).status_code == status.HTTP_400_BAD_REQUEST


class TestOff:
    def test_no_call_is_made(self, settings, hod_client, academic):
        settings.ACADEMIC_VALIDATION = "off"

        response = create(hod_client, course_id=999)

        assert response.status_code == status.HTTP_201_CREATED
        assert academic.log == []
