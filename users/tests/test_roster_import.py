"""CSV roster imports (API and ``manage.py import_roster``): all-or-nothing, errors by line, bulk and fast."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from rest_framework import status

from users.models import CustomUser, OutboxMessage, SecurityEvent, Staff, Student, UserType
from users.tests.principals import bearer_client

API = "/api/v1/users"
pytestmark = pytest.mark.django_db
HEADER = (
    "username,email,first_name,last_name,student_id,gender,date_of_birth,phone_number,address,"
    "guardian_name,guardian_phone,course_id,session_year_id"
)
GOOD = (
    f"{HEADER}\n"
    'ada,Ada@School.test,Ada,Lovelace,S-1,F,2005-12-10,+44 20 7946 0958,"12 St James\'s Square, London",Anne,'
    "020 7946 0000,3,2\n"
    "alan,alan@school.test,Alan,Turing,S-2,male,2006-06-23,,,,,3,\n"
    "grace,grace@school.test,Grace,Hopper,,,,,,,,,\n"
)


@pytest.fixture
def hod_client(hod):
    return bearer_client(hod)


def upload(client, content: str | bytes, *, kind: str = "students", query: str = ""):
    data = content.encode() if isinstance(content, str) else content
    file = SimpleUploadedFile("roster.csv", data, content_type="text/csv")
    return client.post(f"{API}/{kind}/import/{query}", {"file": file}, format="multipart")


def errors_of(response) -> list[tuple]:
    return [(error["line"], error["field"]) for error in response.json()["errors"]]


class TestGoodFiles:
    def test_creates_everyone_with_invitations(self, hod_client, hod):
        response = upload(hod_client, GOOD)

        assert response.status_code == status.HTTP_201_CREATED, response.content
        assert response.json() == {"created": 3, "dry_run": False, "rows": 3, "error_count": 0, "errors": []}
        ada = Student.objects.select_related("user").get(user__username="ada")
        assert (ada.user.email, ada.user.first_name, ada.user.user_type) == ("Ada@school.test", "Ada", UserType.STUDENT)
        assert (ada.student_id, ada.gender, str(ada.date_of_birth), ada.course_id) == ("S-1", "F", "2005-12-10", 3)
        assert ada.address == "12 St James's Square, London"
        alan = Student.objects.get(user__username="alan")
        assert (alan.gender, alan.session_year_id, alan.phone_number) == ("M", None, "")
        assert Student.objects.get(user__username="grace").student_id is None
        users = CustomUser.objects.filter(username__in=["ada", "alan", "grace"])
        assert not any(user.has_usable_password() for user in users)
        invitations = OutboxMessage.objects.filter(kind="email", topic="invitation")
        assert sorted(m.payload["user_id"] for m in invitations) == sorted(user.pk for user in users)
        events = OutboxMessage.objects.filter(kind="event", topic="user.created")
        assert events.count() == 3
        ada_event = next(e for e in events if e.payload["user_id"] == ada.user_id)
        assert ada_event.payload["user"]["username"] == "ada"  # the same shape event_enqueue writes
        assert (ada_event.status, ada_event.attempts) == (OutboxMessage.Status.PENDING, 0)
        assert SecurityEvent.objects.filter(type="user_created", actor=hod).count() == 3

    def test_utf8_with_bom_and_crlf(self, hod_client):
        content = "\ufeffusername,email,first_name\r\nzoe,zoe@school.test,Zoë\r\n".encode()

        response = upload(hod_client, content)

        assert response.status_code == status.HTTP_201_CREATED, response.content
        assert CustomUser.objects.get(username="zoe").first_name == "Zoë"

    def test_column_order_and_case_are_free_and_blank_lines_skipped(self, hod_client):
        response = upload(hod_client, "Email , USERNAME\n\nzoe@school.test,zoe\n\n")

        assert response.status_code == status.HTTP_201_CREATED
        assert response.json()["rows"] == 1

    def test_staff(self, hod_client):
        content = (
            "username,email,employee_id,department,designation,date_of_joining,phone_number\n"
            "emmy,emmy@school.test,E-1,Mathematics,Professor,2019-09-01,+49 551 39 0\n"
        )

        response = upload(hod_client, content, kind="staff")

        assert response.status_code == status.HTTP_201_CREATED, response.content
        staff = Staff.objects.get(employee_id="E-1")
        assert (staff.department, str(staff.date_of_joining), staff.user.user_type) == (
            "Mathematics",
            "2019-09-01",
            UserType.STAFF,
        )

    def test_dry_run_writes_nothing(self, hod_client):
        before = (CustomUser.objects.count(), OutboxMessage.objects.count())

        response = upload(hod_client, GOOD, query="?dry_run=true")

        assert response.status_code == status.HTTP_200_OK
        assert response.json()["created"] == 3
        assert response.json()["dry_run"] is True
        assert (CustomUser.objects.count(), OutboxMessage.objects.count()) == before

    def test_a_large_file_costs_a_constant_number_of_queries(self, hod_client, django_assert_max_num_queries):
        rows = "".join(f"p{n},p{n}@school.test,First{n},Last{n},S{n:05d}\n" for n in range(1500))

        with django_assert_max_num_queries(25):
            response = upload(hod_client, "username,email,first_name,last_name,student_id\n" + rows)

        assert response.status_code == status.HTTP_201_CREATED
        assert Student.objects.filter(student_id__startswith="S0").count() == 1500


class TestBadFiles:
    def test_bad_rows_are_reported_by_line_and_nothing_is_written(self, hod_client):
        content = (
            f"{HEADER}\n"
            "ok,ok@school.test,,,,,,,,,,,\n"
            "bad1,not-an-email,,,,X,2999-01-01,12,,,,0,\n"
            "bad 2,b2@school.test,,,,,10/12/2005,,,,abc,,x\n"
            ",,,,,,,,,,,,\n"
            "short,row\n"
        )
        before = CustomUser.objects.count()

        response = upload(hod_client, content)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert errors_of(response) == [
            (3, "course_id"),
            (3, "date_of_birth"),
            (3, "email"),
            (3, "gender"),
            (3, "phone_number"),
            (4, "date_of_birth"),
            (4, "guardian_phone"),
            (4, "session_year_id"),
            (4, "username"),
            (6, None),
        ]
        assert response.json()["created"] == 0
        assert response.json()["error_count"] == 10
        messages = {(e["line"], e["field"]): e["message"] for e in response.json()["errors"]}
        assert messages[(3, "date_of_birth")] == "The date of birth cannot be in the future."
        assert messages[(4, "date_of_birth")] == "Enter a date as YYYY-MM-DD."
        assert messages[(6, None)] == "This row has 2 values; the header has 13 columns."
        assert CustomUser.objects.count() == before
        assert not OutboxMessage.objects.exists()

    def test_duplicates_inside_the_file(self, hod_client):
        content = (
            "username,email,student_id\nada,ada@school.test,S-1\nADA,other@school.test,S-2\nbob,Ada@School.Test,S-1\n"
        )

        response = upload(hod_client, content)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["errors"] == [
            {"line": 3, "field": "username", "message": "The same username is on line 2."},
            {"line": 4, "field": "email", "message": "The same e-mail address is on line 2."},
            {"line": 4, "field": "student_id", "message": "The same student id is on line 2."},
        ]

    def test_duplicates_against_the_database(self, hod_client, student, staff):
        Student.objects.filter(user=student).update(student_id="S-9")
        content = (
            "username,email,student_id\n"
            f"{student.username.upper()},new@school.test,S-1\n"
            f"new2,{staff.email.upper()},S-9\n"
        )

        response = upload(hod_client, content)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert errors_of(response) == [(2, "username"), (3, "email"), (3, "student_id")]
        assert response.json()["errors"][0]["message"] == "A person with this username already exists."

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            ("\n\n", [(1, None)]),
            ("username\nada\n", [(1, "email")]),
            ("username,email,password\nada,ada@school.test,x\n", [(1, "password")]),
            ("username,email,email\nada,a@school.test,b@school.test\n", [(1, "email")]),
            ("username,email,employee_id\nada,ada@school.test,E1\n", [(1, "employee_id")]),
            ('username,email\n"ada,ada@school.test\n', [(2, None)]),
        ],
    )
    def test_bad_headers_and_broken_csv(self, hod_client, content, expected):
        response = upload(hod_client, content)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert errors_of(response) == expected

    def test_empty_file(self, hod_client):
        response = upload(hod_client, b"")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["errors"] == [{"line": None, "field": "file", "message": "The submitted file is empty."}]

    def test_not_utf8(self, hod_client):
        response = upload(hod_client, "username,email,first_name\nzoe,zoe@school.test,Zoë\n".encode("latin-1"))

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["errors"] == [
            {"line": 2, "field": None, "message": "The file is not UTF-8 text (first bad byte on this line)."}
        ]

    def test_a_file_larger_than_the_json_body_limit_is_accepted(self, hod_client):
        address = "x" * 990
        rows = "".join(f"big{n},big{n}@school.test,{address}\n" for n in range(2100))  # about 2 MiB

        response = upload(hod_client, "username,email,address\n" + rows, query="?dry_run=1")

        assert response.status_code == status.HTTP_200_OK, response.content[:300]
        assert response.json()["created"] == 2100

    def test_too_many_bytes_is_413(self, hod_client, settings):
        settings.ROSTER_MAX_BYTES = 100

        response = upload(hod_client, GOOD)

        assert response.status_code == status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        assert response.json()["code"] == "roster_too_large"
        assert not CustomUser.objects.filter(username="ada").exists()

    def test_too_many_rows_is_413(self, hod_client, settings):
        settings.ROSTER_MAX_ROWS = 2

        response = upload(hod_client, GOOD)

        assert response.status_code == status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        assert "more than 2 rows" in response.json()["detail"]

    def test_missing_file_and_wrong_media_type(self, hod_client):
        missing = hod_client.post(f"{API}/students/import/", {}, format="multipart")
        as_json = hod_client.post(f"{API}/students/import/", {"file": GOOD}, format="json")

        assert missing.status_code == status.HTTP_400_BAD_REQUEST
        assert errors_of(missing) == [(None, "file")]  # the import's one 400 shape
        assert as_json.status_code == status.HTTP_415_UNSUPPORTED_MEDIA_TYPE

    def test_bad_dry_run_value(self, hod_client):
        response = upload(hod_client, GOOD, query="?dry_run=perhaps")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert errors_of(response) == [(None, "dry_run")]
        assert not CustomUser.objects.filter(username="ada").exists()

    def test_a_malformed_multipart_body(self, hod_client):
        response = hod_client.post(
            f"{API}/students/import/", b"--x\r\nnot a part", content_type="multipart/form-data; boundary=x"
        )

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["created"] == 0


class TestCommand:
    def test_imports_a_file(self, tmp_path):
        path = tmp_path / "roster.csv"
        path.write_text(GOOD, encoding="utf-8-sig")
        out = io.StringIO()

        call_command("import_roster", "students", str(path), stdout=out)

        assert "3 students created." in out.getvalue()
        assert Student.objects.filter(user__username__in=["ada", "alan", "grace"]).count() == 3

    def test_dry_run(self, tmp_path):
        path = tmp_path / "roster.csv"
        path.write_text(GOOD)
        out = io.StringIO()

        call_command("import_roster", "students", str(path), "--dry-run", stdout=out)

        assert "3 students would be created (dry run)." in out.getvalue()
        assert not CustomUser.objects.filter(username="ada").exists()

    def test_errors_fail_the_command(self, tmp_path):
        path = tmp_path / "roster.csv"
        path.write_text("username,email\nada,not-an-email\n")
        err = io.StringIO()

        with pytest.raises(CommandError, match="1 error"):
            call_command("import_roster", "staff", str(path), stderr=err)

        assert "line 2 [email]" in err.getvalue()

    def test_missing_file(self, tmp_path):
        with pytest.raises(CommandError, match="Cannot read"):
            call_command("import_roster", "students", str(tmp_path / "nope.csv"))
