"""What a monolith import reports: problem kinds and severities, problems, batch progress, the run's result."""

from collections import defaultdict
from dataclasses import dataclass, field

ERROR, SKIPPED, WARNING = "error", "skipped", "warning"

# Problem kinds: what was wrong with a source row, and what the import did about it.
USER_TYPE_INVALID = "user_type_invalid"  # error: user_type not "1"/"2"/"3"; row rejected
VALUE_INVALID = "value_invalid"  # error: a value the target cannot hold faithfully; account rejected
ID_CONFLICT = "id_conflict"  # error: the target holds another person under this id; not overwritten
USER_TYPE_CHANGED = "user_type_changed"  # error: the role changed since the last import; left as it is
USERNAME_TAKEN = "username_taken"  # error: another target user has this username (case-insensitively)
EMAIL_TAKEN = "email_taken"  # error: another target user has this e-mail (case-insensitively)
PROFILE_CONFLICT = "profile_conflict"  # error: the profile id, or the user's profile, is held differently
DATABASE_REFUSED = "database_refused"  # error: the database refused the row (e.g. a concurrent write)
EMAIL_DUPLICATE = "email_duplicate"  # skipped: same e-mail as a lower id in the source
USERNAME_DUPLICATE = "username_duplicate"  # skipped: same username (case-insensitively) as a lower id
PROFILE_ORPHAN = "profile_orphan"  # skipped: profile whose user does not exist
PROFILE_TYPE_MISMATCH = "profile_type_mismatch"  # skipped: profile table does not match the user's type
PROFILE_DUPLICATE = "profile_duplicate"  # skipped: a second profile of the same user in the same table
PROFILE_MISSING = "profile_missing"  # warning: user without a profile of its type; an empty one is created
EMAIL_EMPTY = "email_empty"  # warning: imported without an e-mail (no reset or verification mail possible)
EMAIL_INVALID = "email_invalid"  # warning: imported as it is, but not a valid address
GENDER_UNKNOWN = "gender_unknown"  # warning: free text mapped to "O"
HASH_UNKNOWN = "password_hash_unknown"  # warning: hash format this service cannot verify; a reset is needed


@dataclass(frozen=True)
class ImportProblem:
    kind: str
    severity: str
    table: str
    row_id: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.table} id={self.row_id}: {self.message}"


@dataclass(frozen=True)
class BatchProgress:
    batch: int
    first_id: int
    last_id: int
    processed: int
    total: int
    seconds: float


@dataclass
class MonolithImportResult:
    """One run: accounts created/updated/unchanged, source rows skipped or rejected, messages queued, every problem."""

    source: str
    dry_run: bool
    batch_size: int
    total_users: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: int = 0
    warnings: int = 0
    profiles_created: int = 0
    profiles_updated: int = 0
    sessions_ended: int = 0
    batches: int = 0
    sequences_reset: list[str] = field(default_factory=list)
    notify: bool = False
    emails_queued: int = 0  # --notify: outbox e-mails written (a dry run: that a real run would write)
    events_queued: int = 0  # --notify: outbox events written (likewise)
    seconds: float = 0.0
    problems: list[ImportProblem] = field(default_factory=list)

    def add(self, problem: ImportProblem) -> None:
        self.problems.append(problem)
        if problem.severity == ERROR:
            self.errors += 1
        elif problem.severity == SKIPPED:
            self.skipped += 1
        else:
            self.warnings += 1

    @property
    def summary(self) -> str:
        return (
            f"created={self.created} updated={self.updated} unchanged={self.unchanged} "
            f"skipped={self.skipped} errors={self.errors} warnings={self.warnings}"
        )

    def problems_by_kind(self) -> dict[str, list[ImportProblem]]:
        grouped: dict[str, list[ImportProblem]] = defaultdict(list)
        for problem in self.problems:
            grouped[problem.kind].append(problem)
        return dict(grouped)
