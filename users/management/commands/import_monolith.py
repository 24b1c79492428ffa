"""`manage.py import_monolith PATH`: move the monolith's users and profiles into this service."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from user_service.exceptions import ApplicationError
from users.services.monolith_import import (
    ERROR,
    SKIPPED,
    BatchProgress,
    MonolithImportResult,
    MonolithSourceInvalid,
    monolith_import,
)

PROBLEMS_SHOWN_PER_KIND = 50


class Command(BaseCommand):
    help = (
        "Import users and profiles from the monolith's SQLite database, keeping user ids, profile ids and "
        "password hashes. Safe to re-run: unchanged rows are left alone, changed ones updated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="path to the monolith's SQLite database file (opened read-only)")
        parser.add_argument("--dry-run", action="store_true", help="check and report everything, write nothing")
        parser.add_argument("--batch-size", type=int, default=1000, help="rows per transaction (default 1000)")
        parser.add_argument(
            "--notify",
            action="store_true",
            help="queue user events for created and updated accounts, and an 'account moved' e-mail to new ones",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        mode = " (dry run: nothing will be written)" if options["dry_run"] else ""
        self.stdout.write(f"Importing from {options['path']} in batches of {options['batch_size']}{mode}")
        try:
            result = monolith_import(
                path=options["path"],
                dry_run=options["dry_run"],
                batch_size=options["batch_size"],
                notify=options["notify"],
                progress=self._progress,
            )
        except MonolithSourceInvalid as exc:
            raise CommandError(str(exc)) from exc
        except ApplicationError as exc:  # e.g. sessions could not be ended while Redis is unavailable
            raise CommandError(
                f"{exc.message} Batches already committed stay; running the import again continues."
            ) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"The database failed: {exc}. Batches already committed stay; running the import again continues."
            ) from exc
        self._report(result)
        if result.errors:
            raise CommandError(f"{result.errors} row(s) rejected; see the problems listed above.")

    def _progress(self, progress: BatchProgress) -> None:
        self.stdout.write(
            f"  batch {progress.batch}: users id {progress.first_id}-{progress.last_id}, "
            f"{progress.processed}/{progress.total} done in {progress.seconds:.1f}s"
        )

    def _report(self, result: MonolithImportResult) -> None:
        for kind, problems in sorted(result.problems_by_kind().items()):
            severity = problems[0].severity
            style = {ERROR: self.style.ERROR, SKIPPED: self.style.WARNING}.get(severity, self.style.NOTICE)
            self.stdout.write(style(f"{kind} ({severity}): {len(problems)}"))
            for problem in problems[:PROBLEMS_SHOWN_PER_KIND]:
                self.stdout.write(f"  {problem}")
            if len(problems) > PROBLEMS_SHOWN_PER_KIND:
                self.stdout.write(f"  ... and {len(problems) - PROBLEMS_SHOWN_PER_KIND} more")
        self.stdout.write(
            f"{result.total_users} users read; profiles created={result.profiles_created} "
            f"updated={result.profiles_updated}; sessions ended={result.sessions_ended}; {result.seconds:.1f}s"
        )
        if result.sequences_reset:
            self.stdout.write(f"Id sequences reset: {', '.join(result.sequences_reset)}")
        if result.notify:
            queued = f"{result.emails_queued} e-mail(s) and {result.events_queued} event(s)"
            if result.dry_run:
                self.stdout.write(f"--notify: a real run would queue {queued}; none written.")
            else:
                self.stdout.write(f"--notify: {queued} queued in the outbox for delivery.")
        if result.dry_run:
            self.stdout.write("Dry run: nothing was written; the counts say what a real run would do.")
        summary = self.style.ERROR(result.summary) if result.errors else self.style.SUCCESS(result.summary)
        self.stdout.write(summary)
