"""``manage.py seed_demo --students N --staff M [--hods K]``: realistic fake people, inserted in bulk (demo only)."""

import random
import re
import time
from datetime import timedelta

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from faker import Faker

from users.models import PROFILE_MODELS, AdminHOD, CustomUser, Gender, ProfileBase, Staff, Student, UserType
from users.services.people import search_indexes_flush

DEPARTMENTS = ["Mathematics", "Physics", "Chemistry", "Biology", "Computer Science", "History", "English", "Economics"]
DESIGNATIONS = ["Lecturer", "Senior Lecturer", "Lab Assistant", "Professor", "Tutor", "Registrar", "Librarian"]
EMAIL_DOMAIN = "demo.school.example"  # .example is reserved (RFC 2606): nothing is ever delivered there
POOL_SIZE = 1000


class Command(BaseCommand):
    help = (
        "Create fake HODs, staff and students fast (bulk inserts). Accounts have unusable passwords unless "
        "--password is given, which is hashed ONCE and the same hash stored for every row: demo data only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--students", type=int, default=0)
        parser.add_argument("--staff", type=int, default=0)
        parser.add_argument("--hods", type=int, default=0)
        parser.add_argument("--seed", type=int, default=None, help="Fixed random seed for repeatable data.")
        parser.add_argument("--password", default=None, help="Demo only: one password for every account created.")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, students: int, staff: int, hods: int, seed, password, batch_size: int, **options):
        if min(students, staff, hods) < 0 or batch_size < 1:
            raise CommandError("Counts must be 0 or more and --batch-size at least 1.")
        started = time.perf_counter()
        seeder = DemoSeeder(seed=seed, password=password, batch_size=batch_size)
        for user_type, count in ((UserType.HOD, hods), (UserType.STAFF, staff), (UserType.STUDENT, students)):
            if count:
                seeder.create(user_type, count)
        search_indexes_flush()
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(f"Created {hods} HODs, {staff} staff and {students} students in {elapsed:.1f} s.")
        )


class DemoSeeder:
    """Draws names and addresses from pools made once with Faker, so 100,000 people take seconds, not minutes."""

    def __init__(self, *, seed: int | None, password: str | None, batch_size: int):
        self.rng = random.Random(seed)  # noqa: S311 - fake data, not security
        fake = Faker(["en_US", "en_GB", "en_IN"])
        fake.seed_instance(seed)
        self.first_names = [fake.first_name() for _ in range(POOL_SIZE)]
        self.last_names = [fake.last_name() for _ in range(POOL_SIZE)]
        self.addresses = [fake.address().replace("\n", ", ") for _ in range(POOL_SIZE)]
        self.password_hash = make_password(password) if password else None  # one hash for every row
        self.batch_size = batch_size
        self.now = timezone.now()
        # Numbers above every existing id keep usernames, e-mails and school ids unique across runs.
        self.next_number = (CustomUser.objects.aggregate(top=Max("id"))["top"] or 0) + 1

    def create(self, user_type: int, count: int) -> None:
        for start in range(0, count, self.batch_size):
            size = min(self.batch_size, count - start)
            with transaction.atomic():
                numbered = [self._user(user_type) for _ in range(size)]
                CustomUser.objects.bulk_create([user for _, user in numbered])
                PROFILE_MODELS[user_type].objects.bulk_create(
                    [self._profile(user_type, user, number) for number, user in numbered]
                )

    def _user(self, user_type: int) -> tuple[int, CustomUser]:
        """A new user row and its number (unique across runs; the profile's school id is built from it)."""
        number = self.next_number
        self.next_number += 1
        first, last = self.rng.choice(self.first_names), self.rng.choice(self.last_names)
        username = f"{_slug(first)}.{_slug(last)}.{number}"
        user = CustomUser(
            username=username,
            email=f"{username}@{EMAIL_DOMAIN}",
            first_name=first,
            last_name=last,
            user_type=user_type,
            is_staff=user_type == UserType.HOD,
            date_joined=self.now - timedelta(days=self.rng.randint(0, 3 * 365), seconds=self.rng.randint(0, 86399)),
        )
        if self.password_hash:
            user.password = self.password_hash
        else:
            user.set_unusable_password()
        return number, user

    def _profile(self, user_type: int, user: CustomUser, number: int) -> ProfileBase:
        rng = self.rng
        if user_type == UserType.STUDENT:
            return Student(
                user=user,
                gender=rng.choice(Gender.values),
                date_of_birth=(self.now - timedelta(days=rng.randint(16 * 365, 30 * 365))).date(),
                address=rng.choice(self.addresses),
                phone_number=self._phone(),
                student_id=f"S{number:08d}",
                guardian_name=f"{rng.choice(self.first_names)} {user.last_name}",
                guardian_phone=self._phone(),
                course_id=rng.randint(1, 40),
                session_year_id=rng.randint(1, 6),
            )
        if user_type == UserType.STAFF:
            return Staff(
                user=user,
                address=rng.choice(self.addresses),
                phone_number=self._phone(),
                employee_id=f"E{number:08d}",
                department=rng.choice(DEPARTMENTS),
                designation=rng.choice(DESIGNATIONS),
                date_of_joining=(self.now - timedelta(days=rng.randint(30, 20 * 365))).date(),
            )
        return AdminHOD(user=user, department=rng.choice(DEPARTMENTS), phone_number=self._phone())

    def _phone(self) -> str:
        return f"+1 555-{self.rng.randint(100, 999)}-{self.rng.randint(1000, 9999)}"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower()) or "x"
