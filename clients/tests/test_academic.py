"""Tests of AcademicServiceClient against a real loopback HTTP server."""

from __future__ import annotations

from datetime import date

import pytest

from clients.academic import AcademicServiceClient, Course, SessionYear
from clients.exceptions import ServiceResponseInvalid, ServiceUnavailable


@pytest.fixture
def academic(make_client) -> AcademicServiceClient:
    return make_client(AcademicServiceClient)


def test_get_course_returns_a_course(server, academic):
    server.expect_request("/api/v1/courses/7/", method="GET").respond_with_json(
        {"id": 7, "name": "Physics", "code": "PHY-101", "extra": "ignored"}
    )

    assert academic.get_course(7) == Course(id=7, name="Physics", code="PHY-101")


def test_get_course_of_an_unknown_id_is_none(server, academic):
    server.expect_request("/api/v1/courses/404/").respond_with_json({"detail": "Not found."}, status=404)

    assert academic.get_course(404) is None


def test_get_course_with_a_malformed_body_is_refused(server, academic):
    server.expect_request("/api/v1/courses/7/").respond_with_json({"id": "7", "name": "Physics"})

    with pytest.raises(ServiceResponseInvalid, match="'id'"):
        academic.get_course(7)


def test_get_course_with_a_non_json_body_is_refused(server, academic):
    server.expect_request("/api/v1/courses/7/").respond_with_data("<html>proxy error page</html>")

    with pytest.raises(ServiceResponseInvalid):
        academic.get_course(7)


@pytest.mark.parametrize("bad_id", [0, -1, True, "7/../../admin", 7.0])
def test_ids_that_are_not_positive_ints_never_reach_the_url(server, academic, bad_id):
    with pytest.raises(ValueError, match="course_id"):
        academic.get_course(bad_id)
    assert len(server.log) == 0


def test_get_session_year_returns_dates(server, academic):
    server.expect_request("/api/v1/session-years/3/").respond_with_json(
        {"id": 3, "start_date": "2025-09-01", "end_date": "2026-06-30"}
    )

    assert academic.get_session_year(3) == SessionYear(id=3, start_date=date(2025, 9, 1), end_date=date(2026, 6, 30))


def test_get_session_year_of_an_unknown_id_is_none(server, academic):
    server.expect_request("/api/v1/session-years/3/").respond_with_data("", status=404)

    assert academic.get_session_year(3) is None


def test_get_session_year_with_a_bad_date_is_refused(server, academic):
    server.expect_request("/api/v1/session-years/3/").respond_with_json(
        {"id": 3, "start_date": "01/09/2025", "end_date": "2026-06-30"}
    )

    with pytest.raises(ServiceResponseInvalid, match="start_date"):
        academic.get_session_year(3)


@pytest.mark.parametrize(("answer", "expected"), [({"valid": True}, True), ({"valid": False}, False)])
def test_validate_course_enrollment_reads_the_answer(server, academic, answer, expected):
    server.expect_request(
        "/api/v1/enrollment/validate/", query_string={"course_id": "7", "session_year_id": "3"}
    ).respond_with_json(answer)

    assert academic.validate_course_enrollment(7, 3) is expected


def test_validate_course_enrollment_of_unknown_ids_is_false(server, academic):
    server.expect_request("/api/v1/enrollment/validate/").respond_with_json({"detail": "Not found."}, status=404)

    assert academic.validate_course_enrollment(7, 3) is False


def test_an_academic_outage_is_service_unavailable_not_none(server, academic):
    server.expect_request("/api/v1/courses/7/").respond_with_data("", status=503)

    with pytest.raises(ServiceUnavailable):
        academic.get_course(7)
    assert len(server.log) == 3  # the GET was retried twice


def test_base_url_comes_from_settings(server, settings):
    settings.ACADEMIC_SERVICE_URL = server.url_for("/")
    server.expect_request("/api/v1/courses/1/").respond_with_json({"id": 1, "name": "Maths", "code": None})

    with AcademicServiceClient(sleep=lambda seconds: None) as client:
        assert client.get_course(1) == Course(id=1, name="Maths", code=None)
