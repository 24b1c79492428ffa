"""Tests of AttendanceServiceClient against a real loopback HTTP server."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from werkzeug import Response

from clients.attendance import AttendanceRecord, AttendanceServiceClient, StudentAttendance
from clients.exceptions import ServiceResponseInvalid


@pytest.fixture
def attendance(make_client) -> AttendanceServiceClient:
    return make_client(AttendanceServiceClient)


def test_get_student_attendance_returns_typed_records(server, attendance):
    server.expect_request("/api/v1/attendance/students/12/", query_string={"course_id": "7"}).respond_with_json(
        {
            "student_id": 12,
            "records": [
                {"course_id": 7, "date": "2026-01-12", "present": True},
                {"course_id": 7, "date": "2026-01-13", "present": False},
            ],
        }
    )

    result = attendance.get_student_attendance(12, course_id=7)

    assert result == StudentAttendance(
        student_id=12,
        records=(
            AttendanceRecord(student_id=12, course_id=7, attendance_date=date(2026, 1, 12), present=True),
            AttendanceRecord(student_id=12, course_id=7, attendance_date=date(2026, 1, 13), present=False),
        ),
    )
    assert result.present_count == 1
    assert result.rate == 0.5


def test_get_student_attendance_of_an_unknown_student_is_none(server, attendance):
    server.expect_request("/api/v1/attendance/students/12/").respond_with_json({"detail": "Not found."}, status=404)

    assert attendance.get_student_attendance(12) is None


def test_a_record_with_a_wrong_type_is_refused(server, attendance):
    server.expect_request("/api/v1/attendance/students/12/").respond_with_json(
        {"student_id": 12, "records": [{"course_id": 7, "date": "2026-01-12", "present": "yes"}]}
    )

    with pytest.raises(ServiceResponseInvalid, match="present"):
        attendance.get_student_attendance(12)


def test_mark_attendance_puts_to_the_natural_key_and_is_retried(server, attendance):
    # Given an attendance service that is briefly unavailable
    path = "/api/v1/attendance/students/12/courses/7/dates/2026-01-12/"
    received = []

    def record(request):
        received.append(json.loads(request.data))
        return Response(json.dumps({"course_id": 7, "date": "2026-01-12", "present": True}), 200)

    server.expect_oneshot_request(path, method="PUT").respond_with_data("", status=504)
    server.expect_request(path, method="PUT").respond_with_handler(record)

    # When attendance is marked
    result = attendance.mark_attendance(12, 7, date(2026, 1, 12), present=True)

    # Then the idempotent PUT was retried and the record comes back typed
    assert result == AttendanceRecord(student_id=12, course_id=7, attendance_date=date(2026, 1, 12), present=True)
    assert received == [{"present": True}]
    assert len(server.log) == 2


@pytest.mark.parametrize(
    ("attendance_date", "present"),
    [(datetime(2026, 1, 12, 9, 0, tzinfo=UTC), True), ("2026-01-12", True), (date(2026, 1, 12), 1)],
)
def test_mark_attendance_refuses_bad_arguments_before_sending(server, attendance, attendance_date, present):
    with pytest.raises(ValueError, match="attendance_date must be a date"):
        attendance.mark_attendance(12, 7, attendance_date, present=present)
    assert len(server.log) == 0
