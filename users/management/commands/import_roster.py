"""``manage.py import_roster students|staff FILE.csv [--dry-run]``: the roster import of the API, from a shell."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from user_service.exceptions import ApplicationError
from users.models import UserType
from users.services.people import roster_import

KINDS = {"students": UserType.STUDENT, "staff": UserType.STAFF}


class Command(BaseCommand):
    help = "Import a CSV roster of students or staff: all rows or none; every account gets an invitation e-mail."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=sorted(KINDS))
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="Validate only; write nothing.")
        parser.add_argument("--max-rows", type=int, default=None, help="Refuse files with more data rows than this.")

    def handle(self, *args, kind: str, file: Path, dry_run: bool, max_rows: int | None, **options):
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        try:
            result = roster_import(user_type=KINDS[kind], content=content, dry_run=dry_run, max_rows=max_rows)
        except ApplicationError as exc:  # file too large or unreadable, academic service down (strict)
            raise CommandError(exc.message) from exc
        for error in result.errors:
            column = f" [{error.field}]" if error.field else ""
            self.stderr.write(f"line {error.line}{column}: {error.message}")
        if result.errors:
            raise CommandError(f"{len(result.errors)} error(s) in {result.rows} row(s); nothing was imported.")
        verb = "would be created (dry run)" if dry_run else "created"
        self.stdout.write(self.style.SUCCESS(f"{result.created} {kind} {verb}."))
