"""``manage.py seed_demo``: realistic fake people in bulk, repeatable with a seed, unique across runs."""

import io

import pytest
from django.core.management import CommandError, call_command

from users.models import AdminHOD, CustomUser, Staff, Student, UserType

pytestmark = pytest.mark.django_db


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def test_creates_people_of_each_role_with_profiles_and_unusable_passwords():
    output = seed(students=40, staff=7, hods=2, seed=1)

    assert "Created 2 HODs, 7 staff and 40 students" in output
    assert Student.objects.count() == 40
    assert Staff.objects.count() == 7
    assert AdminHOD.objects.count() == 2
    assert CustomUser.objects.filter(user_type=UserType.HOD, is_staff=True).count() == 2
    assert not any(user.has_usable_password() for user in CustomUser.objects.all())
    student = Student.objects.select_related("user").first()
    assert all([student.user.first_name, student.user.last_name, student.student_id, student.course_id])
    assert student.user.email.endswith("@demo.school.example")


def test_a_password_is_hashed_once_for_everyone():
    seed(staff=3, password="demo-Passphrase-123")

    hashes = set(CustomUser.objects.values_list("password", flat=True))
    assert len(hashes) == 1
    assert CustomUser.objects.first().check_password("demo-Passphrase-123")


def test_runs_again_without_collisions_and_a_seed_repeats_the_names():
    seed(students=30, seed=9)
    seed(students=30, seed=9)

    names = list(CustomUser.objects.order_by("id").values_list("first_name", "last_name"))
    assert len(names) == 60
    assert names[:30] == names[30:]
    assert CustomUser.objects.values("username").distinct().count() == 60


def test_negative_counts_are_refused():
    with pytest.raises(CommandError):
        seed(students=-1)
