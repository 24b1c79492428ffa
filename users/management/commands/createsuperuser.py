"""`manage.py createsuperuser`: the first HOD, created with its profile by the creation service like any person."""

import getpass
import os
from typing import Any

from django.contrib.auth.management.commands import createsuperuser
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from users.models import CustomUser, UserType
from users.services.people.create import user_create
from users.services.people.passwords import password_policy_check

SOURCE = "createsuperuser"


class Command(createsuperuser.Command):
    """Django's command line (``--username``, ``--email``, ``--noinput``, ``DJANGO_SUPERUSER_*``), but the person is
    made by ``user_create`` (HOD profile, ``user.created`` event, audit record), not by the model manager.

    As in Django: with ``--noinput`` the password comes from ``DJANGO_SUPERUSER_PASSWORD`` (none: unusable, and
    the invitation e-mail lets the HOD set one) and is not checked against the policy; typed at the prompt it is.
    """

    help = "Create an HOD with admin rights and its profile."

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interactive"]:
            if hasattr(self.stdin, "isatty") and not self.stdin.isatty():
                self.stdout.write("Superuser creation skipped: not running in a TTY (use --noinput).")
                return
            username = options["username"] or self._ask("username")
            email = options["email"] or self._ask("email")
            password: str | None = self._ask_password(username=username, email=email)
        else:
            username = options["username"] or os.environ.get("DJANGO_SUPERUSER_USERNAME")
            email = options["email"] or os.environ.get("DJANGO_SUPERUSER_EMAIL")
            password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
            if not username:
                raise CommandError("You must use --username with --noinput.")
            if not email:
                raise CommandError("You must use --email with --noinput.")
        try:
            user_create(
                username=username,
                email=email,
                password=password,
                source=SOURCE,
                user_type=UserType.HOD,
                is_staff=True,
                is_superuser=True,
                check_password=False,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        if options["verbosity"] >= 1:
            self.stdout.write("Superuser created successfully.")

    def _ask(self, field_name: str) -> str:
        """Prompt until the field's own validation accepts a non-empty value (Django's prompt and messages)."""
        field = next(field for field in CustomUser._meta.concrete_fields if field.name == field_name)
        value = None
        while not value:
            value = self.get_input_data(field, f"{str(field.verbose_name).capitalize()}: ")
        return str(value)

    def _ask_password(self, *, username: str, email: str) -> str:
        candidate = CustomUser(username=username, email=email, user_type=UserType.HOD)
        while True:
            password = getpass.getpass()
            if password != getpass.getpass("Password (again): "):
                self.stderr.write("Error: Your passwords didn't match.")
                continue
            if not password.strip():
                self.stderr.write("Error: Blank passwords aren't allowed.")
                continue
            try:
                password_policy_check(password=password, user=candidate)
            except ValidationError as exc:
                self.stderr.write("\n".join(exc.messages))
                continue
            return password
