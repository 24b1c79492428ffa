"""Client of the attendance service: a student's attendance records and marking one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import requests

from clients.base import ServiceClient, positive_id


@dataclass(frozen=True)
class AttendanceRecord:
    student_id: int
    course_id: int
    attendance_date: date
    present: bool


@dataclass(frozen=True)
class StudentAttendance:
    student_id: int
    records: tuple[AttendanceRecord, ...]

    @property
    def present_count(self) -> int:
        return sum(record.present for record in self.records)

    @property
    def rate(self) -> float | None:
        """Share of records marked present, None when there are none."""
        return self.present_count / len(self.records) if self.records else None


class AttendanceServiceClient(ServiceClient):
    """Typed calls to the attendance service (base URL: setting ``ATTENDANCE_SERVICE_URL``).

    Assumed contract (the service's own is not published yet; the tests pin this one):

    - ``GET /api/v1/attendance/students/{student_id}/[?course_id=..]`` → 200
      ``{"student_id": int, "records": [{"course_id": int, "date": "YYYY-MM-DD", "present": bool}, ...]}``,
      404 if the attendance service knows no such student.
    - ``PUT /api/v1/attendance/students/{student_id}/courses/{course_id}/dates/{YYYY-MM-DD}/`` ``{"present": bool}``
      → 200/201 with one record as above (plus ``student_id``). The record is addressed by its natural key, so
      marking is idempotent and is retried on timeouts and 502/503/504 like a GET.

    Service token scopes: ``attendance:read``, ``attendance:write``.
    """

    service_name = "attendance"
    base_url_setting = "ATTENDANCE_SERVICE_URL"
    scopes = ("attendance:read", "attendance:write")

    def get_student_attendance(self, student_id: int, *, course_id: int | None = None) -> StudentAttendance | None:
        """The student's attendance records (of one course if given), or None if the student is unknown there."""
        student_id = positive_id(student_id, "student_id")
        params = {"course_id": positive_id(course_id, "course_id")} if course_id is not None else None
        response = self.request(
            "GET", f"/api/v1/attendance/students/{student_id}/", params=params, allow_statuses={404}
        )
        if response.status_code == 404:
            return None
        data = self.json_of(response)
        records = self.field(response, data, "records", list)
        return StudentAttendance(
            student_id=self.field(response, data, "student_id", int),
            records=tuple(self._record(response, item, student_id) for item in records),
        )

    def mark_attendance(
        self, student_id: int, course_id: int, attendance_date: date, *, present: bool
    ) -> AttendanceRecord:
        """Record whether the student attended the course on that date (idempotent PUT)."""
        if (
            isinstance(attendance_date, datetime)
            or not isinstance(attendance_date, date)
            or not isinstance(present, bool)
        ):
            raise ValueError("attendance_date must be a date and present a bool.")
        path = (
            f"/api/v1/attendance/students/{positive_id(student_id, 'student_id')}"
            f"/courses/{positive_id(course_id, 'course_id')}/dates/{attendance_date.isoformat()}/"
        )
        response = self.request("PUT", path, json={"present": present})
        return self._record(response, self.json_of(response), student_id)

    def _record(self, response: requests.Response, item: Any, student_id: int) -> AttendanceRecord:
        raw_date = self.field(response, item, "date", str)
        try:
            attendance_date = date.fromisoformat(raw_date)
        except ValueError as exc:
            raise self.invalid_response(response, "field 'date' is not an ISO date") from exc
        return AttendanceRecord(
            student_id=self.field(response, item, "student_id", int, required=False) or student_id,
            course_id=self.field(response, item, "course_id", int),
            attendance_date=attendance_date,
            present=self.field(response, item, "present", bool),
        )
