"""import_monolith: ids and hashes kept, problems reported, re-runs idempotent, dry run, sequences, --notify."""

import sqlite3
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import CommandError, call_command
from django.core.management.color import no_style
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import status

from users.models import AdminHOD, CustomUser, OutboxMessage, SessionEndReason, Staff, Student, UserType
from users.selectors import user_public_data
from users.services.auth import session_start
from users.services.monolith_import import importer, monolith_import, target
from users.services.people.create import user_rows_create
from users.tests.outbox_support import wait_for

SCHEMA = """
CREATE TABLE student_management_app_customuser (
    id integer NOT NULL PRIMARY KEY AUTOINCREMENT, password varchar(128) NOT NULL, last_login datetime NULL,
    is_superuser bool NOT NULL, username varchar(150) NOT NULL UNIQUE, last_name varchar(150) NOT NULL,
    email varchar(254) NOT NULL, is_staff bool NOT NULL, is_active bool NOT NULL, date_joined datetime NOT NULL,
    user_type varchar(10) NOT NULL, first_name varchar(150) NOT NULL);
CREATE TABLE student_management_app_adminhod (
    id integer NOT NULL PRIMARY KEY AUTOINCREMENT, created_at datetime NOT NULL, updated_at datetime NOT NULL,
    admin_id integer NOT NULL UNIQUE REFERENCES student_management_app_customuser (id));
CREATE TABLE student_management_app_staffs (
    id integer NOT NULL PRIMARY KEY AUTOINCREMENT, address text NOT NULL, created_at datetime NOT NULL,
    updated_at datetime NOT NULL, admin_id integer NOT NULL REFERENCES student_management_app_customuser (id));
CREATE TABLE student_management_app_students (
    id integer NOT NULL PRIMARY KEY AUTOINCREMENT, gender varchar(50) NULL, address text NULL,
    created_at datetime NOT NULL, updated_at datetime NOT NULL,
    admin_id integer NOT NULL REFERENCES student_management_app_customuser (id),
    course_id_id integer NULL, session_year_id_id integer NULL, profile_pic varchar(100) NULL);
CREATE INDEX staffs_admin ON student_management_app_staffs (admin_id);
CREATE INDEX students_admin ON student_management_app_students (admin_id);
"""
API = "/api/v1/users"
STAMP = "2020-01-02 03:04:05"
FAKE_HASH = "pbkdf2_sha256$260000$monolithsalt$bm90LWEtcmVhbC1oYXNoLWJ1dC1hLWtub3duLWZvcm1hdA=="
HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", "django.contrib.auth.hashers.PBKDF2PasswordHasher"]


@pytest.fixture(autouse=True)
def _monolith_hashers(settings, _fast_hashing_and_clean_cache):
    """MD5 stays the fast default; PBKDF2 is recognised so the monolith's hashes verify."""
    settings.PASSWORD_HASHERS = HASHERS


def old_hash(password: str) -> str:
    """A hash as the monolith's Django made it (pbkdf2_sha256, 260,000 iterations)."""
    return PBKDF2PasswordHasher().encode(password, "monolithsalt42", iterations=260000)


def user_row(uid: int, username: str, user_type: str = "3", **fields) -> dict:
    row = {
        "id": uid,
        "password": FAKE_HASH,
        "last_login": None,
        "is_superuser": 0,
        "username": username,
        "first_name": username.title(),
        "last_name": "Monolith",
        "email": f"{username.lower()}@school.test",
        "is_staff": 0,
        "is_active": 1,
        "date_joined": "2019-09-01 08:00:00.250000",
        "user_type": user_type,
    }
    return row | fields


def hod_row(pid: int, admin_id: int) -> dict:
    return {"id": pid, "admin_id": admin_id, "created_at": STAMP, "updated_at": STAMP}


def staff_row(pid: int, admin_id: int, address: str = "") -> dict:
    return {"id": pid, "admin_id": admin_id, "address": address, "created_at": STAMP, "updated_at": STAMP}


def student_row(pid: int, admin_id: int, gender="Male", address="", course=1, session=1, pic=None) -> dict:
    return {
        "id": pid,
        "admin_id": admin_id,
        "gender": gender,
        "address": address,
        "course_id_id": course,
        "session_year_id_id": session,
        "profile_pic": pic,
        "created_at": STAMP,
        "updated_at": STAMP,
    }


def _insert(db: sqlite3.Connection, table: str, rows: list[dict]) -> None:
    for row in rows:
        names = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        db.execute(f"INSERT INTO student_management_app_{table} ({names}) VALUES ({marks})", row)  # noqa: S608


def build_monolith(path: Path, *, users=(), hods=(), staffs=(), students=()) -> Path:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    _insert(db, "customuser", list(users))
    _insert(db, "adminhod", list(hods))
    _insert(db, "staffs", list(staffs))
    _insert(db, "students", list(students))
    db.commit()
    db.close()
    return path


def update_monolith(path: Path, sql: str, params: tuple = ()) -> None:
    db = sqlite3.connect(path)
    db.execute(sql, params)
    db.commit()
    db.close()


CLEAN_USERS = [
    user_row(10, "head", "1", email="Head@SCHOOL.test", is_superuser=1, is_staff=0),
    user_row(11, "teach", "2"),
    user_row(
        12,
        "alice",
        first_name="Alice",
        last_name="Liddell",
        last_login="2023-05-06 07:08:09.123456",
        date_joined="2020-01-02 03:04:05.123456",
    ),
    user_row(13, "bob", is_active=0, date_joined="2021-06-01T12:00:00+02:00"),
]
CLEAN_PROFILES = {
    "hods": [hod_row(100, 10)],
    "staffs": [staff_row(200, 11, "1 Staff Road")],
    "students": [
        student_row(300, 12, "Female", "1 Main St", course=7, session=3, pic="pics/alice.png"),
        student_row(301, 13, "m", None, course=None, session=None, pic=None),
    ],
}


@pytest.fixture
def clean_source(tmp_path) -> Path:
    users = [row | {"password": old_hash("old-alice-pw")} if row["id"] == 12 else row for row in CLEAN_USERS]
    return build_monolith(tmp_path / "monolith.sqlite3", users=users, **CLEAN_PROFILES)


@pytest.fixture
def problem_source(tmp_path) -> Path:
    users = [
        *CLEAN_USERS,
        user_row(14, "carol"),  # gender "Unknown" -> "O" with a warning
        user_row(15, "dave"),  # no profile -> one is created, warning
        user_row(16, "ALICE2", email="ALICE@School.TEST"),  # duplicate of alice's e-mail -> skipped
        user_row(17, "erin", email=""),  # empty e-mail -> imported, warning
        user_row(18, "frank", "4"),  # user_type outside 1-3 -> rejected
        user_row(19, "gina", "2"),  # Staff with a student profile -> mismatch skipped, staff profile created
        user_row(20, "Bob"),  # username of bob differing in case -> skipped
        user_row(21, "zed", email="   "),  # two student profiles -> second skipped; empty e-mail too
        user_row(22, "yolanda", date_joined="not a date"),  # unreadable timestamp -> rejected
    ]
    students = [
        *CLEAN_PROFILES["students"],
        student_row(302, 14, "Unknown"),
        student_row(303, 16),
        student_row(304, 17, ""),
        student_row(305, 18),
        student_row(306, 19),
        student_row(307, 999),  # user 999 does not exist -> orphan skipped
        student_row(308, 21, "F"),
        student_row(309, 21, "M"),
    ]
    return build_monolith(
        tmp_path / "monolith.sqlite3",
        users=users,
        hods=CLEAN_PROFILES["hods"],
        staffs=CLEAN_PROFILES["staffs"],
        students=students,
    )


def run_command(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("import_monolith", str(path), *args, stdout=out)
    return out.getvalue()


def run_command_failing(path: Path, *args: str) -> tuple[str, str]:
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("import_monolith", str(path), *args, stdout=out)
    return out.getvalue(), str(excinfo.value)


def assert_profiles_consistent() -> None:
    """Every user has exactly one profile, the one of its role."""
    for user in CustomUser.objects.all():
        owned = {model.__name__ for model in (AdminHOD, Staff, Student) if model.objects.filter(user=user).exists()}
        expected = {UserType.HOD: "AdminHOD", UserType.STAFF: "Staff", UserType.STUDENT: "Student"}[
            UserType(user.user_type)
        ]
        assert owned == {expected}, (user.pk, owned)


def reset_sequences_to_max_ids() -> None:
    """Put the id sequences back to the tables' contents, as on a freshly migrated database."""
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [CustomUser, AdminHOD, Staff, Student]):
            cursor.execute(sql)


@pytest.mark.django_db
def test_import_preserves_ids_hashes_and_fields(clean_source):
    result = monolith_import(path=clean_source)

    assert (result.created, result.updated, result.unchanged, result.skipped, result.errors) == (4, 0, 0, 0, 0)
    assert sorted(CustomUser.objects.values_list("pk", flat=True)) == [10, 11, 12, 13]
    alice = CustomUser.objects.get(pk=12)
    assert alice.password == old_hash("old-alice-pw")
    assert (alice.username, alice.first_name, alice.last_name, alice.user_type) == (
        "alice",
        "Alice",
        "Liddell",
        UserType.STUDENT,
    )
    assert alice.date_joined == datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert alice.last_login == datetime(2023, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert (alice.is_active, alice.is_staff, alice.email_verified) == (True, False, False)
    head = CustomUser.objects.get(pk=10)
    assert (head.user_type, head.is_staff, head.is_superuser, head.email) == (1, True, True, "Head@school.test")
    bob = CustomUser.objects.get(pk=13)
    assert not bob.is_active
    assert bob.date_joined == datetime(2021, 6, 1, 10, 0, tzinfo=UTC)
    assert AdminHOD.objects.get(pk=100).user_id == 10
    assert Staff.objects.get(pk=200).address == "1 Staff Road"
    alice_profile = Student.objects.get(pk=300)
    assert (alice_profile.user_id, alice_profile.gender, alice_profile.address) == (12, "F", "1 Main St")
    assert (alice_profile.course_id, alice_profile.session_year_id, alice_profile.profile_pic) == (
        7,
        3,
        "pics/alice.png",
    )
    bob_profile = Student.objects.get(pk=301)
    assert (bob_profile.user_id, bob_profile.gender, bob_profile.address) == (13, "M", "")
    assert (bob_profile.course_id, bob_profile.session_year_id, bob_profile.profile_pic) == (None, None, "")
    assert_profiles_consistent()


@pytest.mark.django_db
def test_problem_rows_are_reported_per_row_and_rejections_fail_the_command(problem_source):
    output, error = run_command_failing(problem_source)

    assert error == "2 row(s) rejected; see the problems listed above."
    assert output.strip().splitlines()[-1] == "created=9 updated=0 unchanged=0 skipped=5 errors=2 warnings=5"
    expected_lines = [
        "user_type_invalid (error): 1",
        "student_management_app_customuser id=18: user_type '4' is not 1 (HOD), 2 (Staff) or 3 (Student)",
        "value_invalid (error): 1",
        "student_management_app_customuser id=22: date_joined 'not a date' is not a date and time",
        "email_duplicate (skipped): 1",
        "student_management_app_customuser id=16: e-mail 'ALICE@School.TEST' already used by user id=12",
        "username_duplicate (skipped): 1",
        "student_management_app_customuser id=20: username 'Bob' already used by user id=13",
        "profile_orphan (skipped): 1",
        "student_management_app_students id=307: profile of user id=999, who does not exist",
        "profile_type_mismatch (skipped): 1",
        "student_management_app_students id=306: Student profile of user id=19, who is a Staff",
        "profile_duplicate (skipped): 1",
        "student_management_app_students id=309: second Student profile of user id=21 (first is id=308)",
        "profile_missing (warning): 2",
        "student_management_app_customuser id=15: Student without a Student profile in the monolith",
        "student_management_app_customuser id=19: Staff without a Staff profile in the monolith",
        "email_empty (warning): 2",
        "student_management_app_customuser id=17: empty e-mail",
        "student_management_app_customuser id=21: empty e-mail",
        "gender_unknown (warning): 1",
        "student_management_app_students id=302: gender 'Unknown' of user id=14 is not male/female",
    ]
    for line in expected_lines:
        assert line in output, line
    assert sorted(CustomUser.objects.values_list("pk", flat=True)) == [10, 11, 12, 13, 14, 15, 17, 19, 21]
    assert Student.objects.get(user_id=14).gender == "O"
    assert Student.objects.get(user_id=21).pk == 308
    assert not Student.objects.filter(pk__in=[303, 305, 306, 307, 309]).exists()
    assert Student.objects.get(user_id=15).pk > 309  # never an id the monolith uses
    assert Staff.objects.filter(user_id=19).exists()
    assert set(CustomUser.objects.filter(pk__in=[17, 21]).values_list("email", flat=True)) == {""}
    assert_profiles_consistent()


@pytest.mark.django_db
def test_migrated_user_logs_in_with_old_password(clean_source, api_client):
    monolith_import(path=clean_source)

    response = api_client.post("/api/v1/users/login/", {"username": "alice", "password": "old-alice-pw"}, format="json")

    assert response.status_code == status.HTTP_200_OK, response.content
    assert response.json()["user"]["id"] == 12
    wrong = api_client.post("/api/v1/users/login/", {"username": "alice", "password": "guess"}, format="json")
    assert wrong.status_code == status.HTTP_401_UNAUTHORIZED


@pytest.mark.django_db
def test_second_run_changes_nothing(problem_source):
    first = monolith_import(path=problem_source)
    stamps = dict(CustomUser.objects.values_list("pk", "updated_at"))

    second = monolith_import(path=problem_source)

    assert (first.created, first.updated) == (9, 0)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 9)
    assert (second.skipped, second.errors, second.profiles_created, second.profiles_updated) == (5, 2, 0, 0)
    assert dict(CustomUser.objects.values_list("pk", "updated_at")) == stamps


@pytest.mark.django_db
def test_rerun_after_login_keeps_the_upgraded_hash_and_newer_last_login(clean_source, api_client):
    monolith_import(path=clean_source)
    response = api_client.post("/api/v1/users/login/", {"username": "alice", "password": "old-alice-pw"}, format="json")
    assert response.status_code == status.HTTP_200_OK
    alice = CustomUser.objects.get(pk=12)
    assert alice.password.startswith("md5$")  # upgraded to this service's first hasher on login

    result = monolith_import(path=clean_source)

    assert (result.updated, result.unchanged) == (0, 4)
    reloaded = CustomUser.objects.get(pk=12)
    assert (reloaded.password, reloaded.last_login) == (alice.password, alice.last_login)


@pytest.mark.django_db
def test_changed_source_row_is_updated_and_deactivation_ends_sessions(clean_source):
    monolith_import(path=clean_source)
    session = session_start(user=CustomUser.objects.get(pk=12), ip="127.0.0.1", user_agent="test").session
    update_monolith(
        clean_source,
        "UPDATE student_management_app_customuser SET first_name = 'Alicia', is_active = 0 WHERE id = 12",
    )
    update_monolith(
        clean_source, "UPDATE student_management_app_students SET course_id_id = 8, gender = 'FEMALE' WHERE id = 300"
    )
    update_monolith(clean_source, "UPDATE student_management_app_staffs SET address = '2 New Road' WHERE id = 200")

    result = monolith_import(path=clean_source)

    assert (result.created, result.updated, result.unchanged, result.errors) == (0, 2, 2, 0)
    assert (result.profiles_updated, result.sessions_ended) == (2, 1)
    alice = CustomUser.objects.get(pk=12)
    assert (alice.first_name, alice.is_active) == ("Alicia", False)
    assert alice.deactivated_at is not None
    assert (Student.objects.get(pk=300).course_id, Student.objects.get(pk=300).gender) == (8, "F")
    assert Staff.objects.get(pk=200).address == "2 New Road"
    session.refresh_from_db()
    assert session.end_reason == SessionEndReason.DEACTIVATED
    assert session.ended_at is not None


@pytest.mark.django_db
def test_a_profile_only_change_reaches_the_cached_user_lookup(clean_source, client_for, request):
    monolith_import(path=clean_source)
    client = client_for(request.getfixturevalue("hod"))  # made after the import: ids 10-13 are the monolith's
    assert client.get(f"{API}/user/11/").json()["profile"]["address"] == "1 Staff Road"  # cached now
    update_monolith(clean_source, "UPDATE student_management_app_staffs SET address = '2 New Road' WHERE id = 200")

    monolith_import(path=clean_source)

    assert client.get(f"{API}/user/11/").json()["profile"]["address"] == "2 New Road"


@pytest.mark.django_db
@pytest.mark.usefixtures("cache_safety_net_off")
def test_a_change_reaches_the_cached_views_through_the_import_alone(clean_source, client_for, request):
    # Given the imported people, a user's views cached, and the model signals' cache invalidation off
    monolith_import(path=clean_source)
    client = client_for(request.getfixturevalue("hod"))  # made after the import: ids 10-13 are the monolith's
    assert client.get(f"{API}/user/12/").json()["first_name"] == "Alice"
    assert client.post(f"{API}/bulk_info/", {"user_ids": [11]}, format="json").json()[0]["is_active"] is True
    update_monolith(clean_source, "UPDATE student_management_app_customuser SET first_name = 'Alicia' WHERE id = 12")
    update_monolith(clean_source, "UPDATE student_management_app_customuser SET is_active = 0 WHERE id = 11")

    # When the import runs again
    monolith_import(path=clean_source)

    # Then user/{id}/ and bulk_info/ show the changes at once: the import dropped the cache itself
    assert client.get(f"{API}/user/12/").json()["first_name"] == "Alicia"
    assert client.post(f"{API}/bulk_info/", {"user_ids": [11]}, format="json").json()[0]["is_active"] is False


@pytest.mark.django_db
def test_sequences_are_reset_so_new_users_do_not_collide(tmp_path):
    reset_sequences_to_max_ids()  # a fresh database: the next ids would be 1, 2, ...
    source = build_monolith(
        tmp_path / "m.sqlite3",
        users=[user_row(1, "nina"), user_row(2, "omar"), user_row(3, "pia")],
        students=[student_row(1, 2), student_row(2, 3)],  # nina (id 1) has no profile: one is created
    )

    result = monolith_import(path=source, batch_size=1)

    assert (result.created, result.errors) == (3, 0)
    assert sorted(Student.objects.values_list("pk", "user_id")) == [(1, 2), (2, 3), (3, 1)]
    assert result.sequences_reset == ["users_customuser", "users_adminhod", "users_staff", "users_student"]
    newcomer = user_rows_create(username="quinn", email="quinn@school.test", password=None, user_type=UserType.STUDENT)
    assert newcomer.pk == 4
    assert Student.objects.get(user=newcomer).pk == 4


@pytest.mark.django_db
def test_sequences_are_reset_after_the_import(tmp_path, monkeypatch):
    # Given a fresh database and no up-front sequence move: only the reset at the end can save user_rows_create().
    reset_sequences_to_max_ids()
    monkeypatch.setattr(importer, "_sequences_advance", lambda floors: None)
    source = build_monolith(
        tmp_path / "m.sqlite3", users=[user_row(1, "nina"), user_row(2, "omar")], students=[student_row(7, 1)]
    )
    monolith_import(path=source)  # omar has no profile: his new one takes id 1 from the sequence

    newcomer = user_rows_create(username="quinn", email="quinn@school.test", password=None)

    assert newcomer.pk == 3
    assert Student.objects.get(user=newcomer).pk == 8


@pytest.mark.django_db
def test_dry_run_writes_nothing_and_reports_the_same(problem_source):
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM users_customuser_id_seq")
        sequence_before = cursor.fetchone()[0]

    output, error = run_command_failing(problem_source, "--dry-run")

    assert "Dry run: nothing was written" in output
    assert output.strip().splitlines()[-1] == "created=9 updated=0 unchanged=0 skipped=5 errors=2 warnings=5"
    assert "Id sequences reset" not in output
    assert error == "2 row(s) rejected; see the problems listed above."
    assert not CustomUser.objects.exists()
    assert [AdminHOD.objects.count(), Staff.objects.count(), Student.objects.count()] == [0, 0, 0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM users_customuser_id_seq")
        assert cursor.fetchone()[0] == sequence_before


@pytest.mark.django_db
def test_warnings_alone_do_not_fail_and_progress_is_printed(tmp_path):
    source = build_monolith(
        tmp_path / "m.sqlite3",
        users=[
            user_row(1, "nina", email=""),
            user_row(2, "omar", password="crypt$$notahashthisservicereads"),
            user_row(3, "pia", email="pia-at-school"),
        ],
        students=[student_row(1, 1, "robot"), student_row(2, 2), student_row(3, 3)],
    )

    output = run_command(source, "--batch-size", "2", "--notify")

    assert "  batch 1: users id 1-2, 2/3 done" in output
    assert "  batch 2: users id 3-3, 3/3 done" in output
    for line in [
        "student_management_app_customuser id=1: empty e-mail",
        "student_management_app_students id=1: gender 'robot' of user id=1 is not male/female; imported as 'O'",
        "student_management_app_customuser id=2: password hash format not recognised by this service",
        "student_management_app_customuser id=3: e-mail 'pia-at-school' is not shaped like an address",
    ]:
        assert line in output, line
    # nina has no e-mail and pia's is not an address: only omar is mailed; everyone gets a user.created event
    assert "--notify: 1 e-mail(s) and 3 event(s) queued in the outbox for delivery." in output
    assert list(OutboxMessage.objects.filter(kind="email").values_list("payload__user_id", flat=True)) == [2]
    assert output.strip().splitlines()[-1] == "created=3 updated=0 unchanged=0 skipped=0 errors=0 warnings=4"


@pytest.mark.django_db
def test_target_rows_of_other_people_are_not_overwritten(clean_source):
    user_rows_create(username="someone", email="someone@school.test", password=None, id=12)
    user_rows_create(username="TEACH", email="teacher@elsewhere.test", password=None, id=5000)
    user_rows_create(username="other", email="HEAD@school.test", password=None, id=5001)
    user_rows_create(username="holder", email="holder@school.test", password=None, id=5002)
    Student.objects.filter(user_id=5002).update(id=301)

    output, error = run_command_failing(clean_source)

    assert error == "4 row(s) rejected; see the problems listed above."
    for line in [
        "student_management_app_customuser id=12: the target's user id=12 is 'someone', another person",
        "student_management_app_customuser id=11: username 'teach' belongs to the target's user id=5000",
        "student_management_app_customuser id=10: e-mail 'Head@school.test' belongs to the target's user id=5001",
        "student_management_app_customuser id=13: Student id=301 belongs to the target's user id=5002",
    ]:
        assert line in output, line
    assert CustomUser.objects.get(pk=12).username == "someone"
    assert not CustomUser.objects.filter(pk__in=[10, 11, 13]).exists()


@pytest.mark.django_db
def test_role_changed_in_the_monolith_is_rejected(clean_source):
    monolith_import(path=clean_source)
    update_monolith(clean_source, "UPDATE student_management_app_customuser SET user_type = '2' WHERE id = 13")
    update_monolith(clean_source, "DELETE FROM student_management_app_students WHERE id = 301")
    update_monolith(
        clean_source, "INSERT INTO student_management_app_staffs VALUES (201, '', ?, ?, 13)", (STAMP, STAMP)
    )

    result = monolith_import(path=clean_source)

    assert [(p.kind, p.row_id) for p in result.problems] == [("user_type_changed", 13)]
    assert CustomUser.objects.get(pk=13).user_type == UserType.STUDENT
    assert_profiles_consistent()


@pytest.mark.django_db
def test_source_file_problems_are_clear_errors(tmp_path):
    with pytest.raises(CommandError, match="Monolith database not found"):
        call_command("import_monolith", str(tmp_path / "missing.sqlite3"), stdout=StringIO())
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello, this is not a database " * 100)
    with pytest.raises(CommandError, match="is not a readable SQLite database"):
        call_command("import_monolith", str(not_sqlite), stdout=StringIO())
    partial = tmp_path / "partial.sqlite3"
    build_monolith(partial)
    update_monolith(partial, "DROP TABLE student_management_app_staffs")
    with pytest.raises(CommandError, match="has no table student_management_app_staffs"):
        call_command("import_monolith", str(partial), stdout=StringIO())


@pytest.mark.django_db
@pytest.mark.parametrize("notify", [False, True])
@pytest.mark.parametrize("users", [20, 300])
def test_queries_do_not_grow_with_rows(tmp_path, users, notify):
    rows = [user_row(uid, f"user{uid}") for uid in range(1, users + 1)]
    source = build_monolith(
        tmp_path / "m.sqlite3", users=rows, students=[student_row(uid, uid) for uid in range(1, users + 1)]
    )

    with CaptureQueriesContext(connection) as queries:
        result = monolith_import(path=source, batch_size=1000, notify=notify)

    assert result.created == users
    assert OutboxMessage.objects.count() == (2 * users if notify else 0)  # written in bulk, not row by row
    assert len(queries) <= 20, [q["sql"][:120] for q in queries]


@pytest.mark.django_db
def test_portable_path_without_postgresql_features(problem_source, monkeypatch):
    # Given the path other databases take: bulk_create, IN lists, profile ids counted above the source's
    for module in (importer, target):
        monkeypatch.setattr(module, "_postgresql", lambda: False)

    result = monolith_import(path=problem_source, batch_size=4, notify=True)

    assert result.summary == "created=9 updated=0 unchanged=0 skipped=5 errors=2 warnings=5"
    assert (result.emails_queued, result.events_queued, OutboxMessage.objects.count()) == (6, 9, 15)
    assert Student.objects.get(user_id=15).pk == 310  # one above the monolith's highest student profile id
    assert_profiles_consistent()
    assert monolith_import(path=problem_source).summary.startswith("created=0 updated=0 unchanged=9")


@pytest.mark.django_db
def test_rows_the_database_refuses_are_reported_and_the_rest_of_the_batch_imported(clean_source, monkeypatch):
    # Given a username taken after the import looked (a stale view, as with the live service writing meanwhile)
    def blind(self):
        self.usernames, self.emails = {}, {}

    monkeypatch.setattr(target._Owners, "__init__", blind)
    user_rows_create(username="Teach", email="teacher@elsewhere.test", password=None, id=5000)

    result = monolith_import(path=clean_source)

    assert (result.created, result.errors) == (3, 1)
    [problem] = result.problems
    assert (problem.kind, problem.row_id) == ("database_refused", 11)
    assert "users_user_username_ci_unique" in problem.message
    assert sorted(CustomUser.objects.values_list("pk", flat=True)) == [10, 12, 13, 5000]
    assert_profiles_consistent()


@pytest.mark.django_db
def test_batch_size_must_be_positive(clean_source):
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        call_command("import_monolith", str(clean_source), "--batch-size", "0", stdout=StringIO())


# --- --notify ---------------------------------------------------------------------------------------


def outbox_rows(kind: str) -> list[tuple[str, int]]:
    """(topic, user id) of every outbox row of ``kind``, sorted."""
    return sorted(OutboxMessage.objects.filter(kind=kind).values_list("topic", "payload__user_id"))


@pytest.mark.django_db
def test_notify_queues_an_event_per_new_account_and_a_mail_to_active_ones(clean_source):
    output = run_command(clean_source, "--notify")

    assert "--notify: 3 e-mail(s) and 4 event(s) queued in the outbox for delivery." in output
    assert outbox_rows("event") == [
        ("user.created", 10),
        ("user.created", 11),
        ("user.created", 12),
        ("user.created", 13),
    ]
    assert outbox_rows("email") == [("account_migrated", 10), ("account_migrated", 11), ("account_migrated", 12)]
    mails = {m.payload["user_id"]: m.payload for m in OutboxMessage.objects.filter(kind="email")}
    assert mails[10] == {"user_id": 10, "to": "Head@school.test", "context": {}}
    assert mails[12]["to"] == "alice@school.test"
    for event in OutboxMessage.objects.filter(kind="event"):
        user = CustomUser.objects.get(pk=event.payload["user_id"])
        assert event.payload["user"] == user_public_data(user)  # what event_enqueue would have captured
        assert event.payload["data"] == {"user_type": user.user_type, "source": "monolith_import"}
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(OutboxMessage.Status.PENDING, 0)}
    assert OutboxMessage.objects.values("id").distinct().count() == 7


@pytest.mark.django_db
def test_without_notify_no_message_is_written_even_for_changes(clean_source):
    output = run_command(clean_source)
    update_monolith(clean_source, "UPDATE student_management_app_customuser SET is_active = 0 WHERE id = 12")

    second = monolith_import(path=clean_source)

    assert "--notify" not in output
    assert (second.updated, second.emails_queued, second.events_queued) == (1, 0, 0)
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_dry_run_with_notify_writes_no_message_and_counts_what_a_run_would(problem_source):
    output, _ = run_command_failing(problem_source, "--dry-run", "--notify")

    assert "--notify: a real run would queue 6 e-mail(s) and 9 event(s); none written." in output
    assert not OutboxMessage.objects.exists()

    real = monolith_import(path=problem_source, notify=True)

    assert (real.emails_queued, real.events_queued) == (6, 9)
    # 13 is inactive, 17 and 21 have no e-mail: no mail for them
    assert [uid for _, uid in outbox_rows("email")] == [10, 11, 12, 14, 15, 19]
    assert [uid for _, uid in outbox_rows("event")] == [10, 11, 12, 13, 14, 15, 17, 19, 21]


@pytest.mark.django_db
def test_a_rerun_with_notify_queues_nothing_new(problem_source):
    first = monolith_import(path=problem_source, notify=True)
    before = set(OutboxMessage.objects.values_list("id", flat=True))

    second = monolith_import(path=problem_source, notify=True)

    assert (first.emails_queued, first.events_queued) == (6, 9)
    assert (second.unchanged, second.emails_queued, second.events_queued) == (9, 0, 0)
    assert set(OutboxMessage.objects.values_list("id", flat=True)) == before


@pytest.mark.django_db
def test_notify_announces_updates_deactivations_and_reactivations(clean_source):
    monolith_import(path=clean_source)
    CustomUser.objects.filter(pk=12).update(email_verified=True)  # verified in this service since the import
    update_monolith(
        clean_source, "UPDATE student_management_app_customuser SET first_name = 'Alicia', is_active = 0 WHERE id = 12"
    )
    update_monolith(clean_source, "UPDATE student_management_app_customuser SET is_active = 1 WHERE id = 13")
    update_monolith(clean_source, "UPDATE student_management_app_staffs SET address = '2 New Road' WHERE id = 200")

    result = monolith_import(path=clean_source, notify=True)

    assert (result.updated, result.unchanged, result.emails_queued, result.events_queued) == (3, 1, 0, 5)
    assert outbox_rows("email") == []
    assert outbox_rows("event") == [
        ("user.deactivated", 12),
        ("user.reactivated", 13),
        ("user.updated", 11),
        ("user.updated", 12),
        ("user.updated", 13),
    ]
    events = {(m.topic, m.payload["user_id"]): m.payload for m in OutboxMessage.objects.all()}
    assert events["user.updated", 12]["data"] == {"fields": ["first_name", "is_active"], "source": "monolith_import"}
    assert events["user.updated", 11]["data"] == {"fields": ["address"], "source": "monolith_import"}
    assert events["user.updated", 13]["data"]["fields"] == ["is_active"]
    assert events["user.deactivated", 12]["data"] == {"source": "monolith_import"}
    # the user as the import left them, with what this service holds on its own (email_verified)
    assert events["user.updated", 12]["user"] == user_public_data(CustomUser.objects.get(pk=12))
    assert events["user.updated", 12]["user"]["first_name"] == "Alicia"
    assert events["user.updated", 12]["user"]["email_verified"] is True
    assert events["user.reactivated", 13]["user"]["is_active"] is True


@pytest.mark.django_db
def test_messages_belong_to_the_batch_transaction(clean_source, monkeypatch):
    # Given a batch that fails after its rows and messages are written
    write = importer._Importer.write

    def write_then_fail(self, plans):
        write(self, plans)
        raise RuntimeError("the batch failed")

    monkeypatch.setattr(importer._Importer, "write", write_then_fail)

    with pytest.raises(RuntimeError):
        monolith_import(path=clean_source, notify=True)

    assert not CustomUser.objects.exists()
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_rows_the_database_refuses_get_no_messages(clean_source, monkeypatch):
    # Given the batch refused as a whole, then written row by row (as in the test without --notify)
    def blind(self):
        self.usernames, self.emails = {}, {}

    monkeypatch.setattr(target._Owners, "__init__", blind)
    user_rows_create(username="Teach", email="teacher@elsewhere.test", password=None, id=5000)
    OutboxMessage.objects.all().delete()  # user_create's own messages

    result = monolith_import(path=clean_source, notify=True)

    assert (result.created, result.errors, result.emails_queued, result.events_queued) == (3, 1, 2, 3)
    assert [uid for _, uid in outbox_rows("event")] == [10, 12, 13]
    assert [uid for _, uid in outbox_rows("email")] == [10, 12]


@pytest.mark.django_db
def test_each_committed_batch_asks_for_one_relay(clean_source, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        result = monolith_import(path=clean_source, batch_size=2, notify=True)

    assert (result.batches, result.events_queued) == (2, 4)
    relays = [c for c in callbacks if c.__qualname__ == "outbox_relay_soon.<locals>.publish"]
    assert len(relays) == 2  # one per batch, not one publish per message


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_the_account_moved_mail_is_delivered_by_the_worker(tmp_path, settings, mailoutbox):
    settings.OUTBOX_RELAY_GRACE_SECONDS = 10  # the early relay takes the fresh rows anyway; no beat runs here
    source = build_monolith(
        tmp_path / "m.sqlite3",
        users=[
            user_row(1, "alice", password=old_hash("old-alice-pw")),
            user_row(2, "omar", password="crypt$$notahashthisservicereads"),
            user_row(3, "bob", is_active=0),
        ],
        students=[student_row(1, 1), student_row(2, 2), student_row(3, 3)],
    )

    run_command(source, "--notify")

    wait_for(lambda: not OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).exists())
    assert sorted(m.to[0] for m in mailoutbox) == ["alice@school.test", "omar@school.test"]
    mails = {m.to[0]: m for m in mailoutbox}
    alice, omar = mails["alice@school.test"], mails["omar@school.test"]
    assert alice.subject == "Your school account has moved to the new system"
    assert "Your username is: alice" in alice.body
    assert "your existing password" in alice.body
    assert "http://localhost:3000/login" in alice.body
    html, mimetype = alice.alternatives[0]
    assert mimetype == "text/html"
    assert 'href="http://localhost:3000/login"' in html
    assert "could not be carried over" in omar.body
    assert "your existing password" not in omar.body
    sent = OutboxMessage.objects.filter(kind="email")
    assert {(m.status, m.last_error) for m in sent} == {(OutboxMessage.Status.SENT, "")}
    assert set(OutboxMessage.objects.filter(kind="event").values_list("status", flat=True)) == {"sent"}
