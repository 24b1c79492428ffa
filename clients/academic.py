"""Client of the academic service: courses, session years and whether a course runs in a session year."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import requests

from clients.base import ServiceClient, positive_id


@dataclass(frozen=True)
class Course:
    id: int
    name: str
    code: str | None = None


@dataclass(frozen=True)
class SessionYear:
    id: int
    start_date: date
    end_date: date


class AcademicServiceClient(ServiceClient):
    """Typed calls to the academic service (base URL: setting ``ACADEMIC_SERVICE_URL``).

    The academic service's contract is not published yet; this client assumes (and its tests pin):

    - ``GET /api/v1/courses/{course_id}/`` → 200 ``{"id": int, "name": str, "code": str | null}``, 404 if unknown.
    - ``GET /api/v1/session-years/{session_year_id}/`` → 200
      ``{"id": int, "start_date": "YYYY-MM-DD", "end_date": "YYYY-MM-DD"}``, 404 if unknown.
    - ``GET /api/v1/enrollment/validate/?course_id=..&session_year_id=..`` → 200 ``{"valid": bool}``;
      404 (either id unknown) reads as not valid.

    Service token scope: ``academic:read``. Every call is a GET, so it is retried on timeouts and 502/503/504.
    """

    service_name = "academic"
    base_url_setting = "ACADEMIC_SERVICE_URL"
    scopes = ("academic:read",)

    def get_course(self, course_id: int) -> Course | None:
        """The course, or None if the academic service does not know it."""
        response = self.request("GET", f"/api/v1/courses/{positive_id(course_id, 'course_id')}/", allow_statuses={404})
        if response.status_code == 404:
            return None
        data = self.json_of(response)
        return Course(
            id=self.field(response, data, "id", int),
            name=self.field(response, data, "name", str),
            code=self.field(response, data, "code", str, required=False),
        )

    def get_session_year(self, session_year_id: int) -> SessionYear | None:
        """The session year, or None if the academic service does not know it."""
        path = f"/api/v1/session-years/{positive_id(session_year_id, 'session_year_id')}/"
        response = self.request("GET", path, allow_statuses={404})
        if response.status_code == 404:
            return None
        data = self.json_of(response)
        return SessionYear(
            id=self.field(response, data, "id", int),
            start_date=self._date(response, data, "start_date"),
            end_date=self._date(response, data, "end_date"),
        )

    def validate_course_enrollment(self, course_id: int, session_year_id: int) -> bool:
        """True if a student may be enrolled in ``course_id`` for ``session_year_id``."""
        params = {
            "course_id": positive_id(course_id, "course_id"),
            "session_year_id": positive_id(session_year_id, "session_year_id"),
        }
        response = self.request("GET", "/api/v1/enrollment/validate/", params=params, allow_statuses={404})
        if response.status_code == 404:
            return False
        return bool(self.field(response, self.json_of(response), "valid", bool))

    def _date(self, response: requests.Response, data: object, name: str) -> date:
        raw = self.field(response, data, name, str)
        try:
            return date.fromisoformat(raw)
        except ValueError as exc:
            raise self.invalid_response(response, f"field {name!r} is not an ISO date") from exc
