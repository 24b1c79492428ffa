"""Import users and role profiles from the monolith's SQLite database, keeping ids and password hashes.

How a run goes: a first pass over the source's user keys rejects rows with a bad ``user_type`` and skips
case-insensitive duplicates of usernames and e-mails (the lowest id wins); then users are read in id
order in batches. Each batch is one transaction: a fixed number of queries looks up what the target
holds for those ids (users, profiles) while usernames and e-mails are checked against a map of the
target's loaded once, every account is planned as created, updated, unchanged or refused, and the
writes go out in bulk (COPY on PostgreSQL, ``bulk_create`` elsewhere; ``bulk_update`` for changes).
Before writing, PostgreSQL's id sequences are moved above the source's ids, so profiles the import
creates itself and accounts the live service creates meanwhile never take an id the monolith uses;
afterwards they are reset to the tables' maximum ids. With ``notify``, each batch also writes, in its
transaction and in bulk, the outbox e-mails and events of the accounts it creates or updates (see ``notify``);
a relay is requested once the batch has committed. Without it, and in a dry run, no message is written.
"""

from users.services.monolith_import.importer import monolith_import
from users.services.monolith_import.result import (
    DATABASE_REFUSED,
    EMAIL_DUPLICATE,
    EMAIL_EMPTY,
    EMAIL_INVALID,
    EMAIL_TAKEN,
    ERROR,
    GENDER_UNKNOWN,
    HASH_UNKNOWN,
    ID_CONFLICT,
    PROFILE_CONFLICT,
    PROFILE_DUPLICATE,
    PROFILE_MISSING,
    PROFILE_ORPHAN,
    PROFILE_TYPE_MISMATCH,
    SKIPPED,
    USER_TYPE_CHANGED,
    USER_TYPE_INVALID,
    USERNAME_DUPLICATE,
    USERNAME_TAKEN,
    VALUE_INVALID,
    WARNING,
    BatchProgress,
    ImportProblem,
    MonolithImportResult,
)
from users.services.monolith_import.source import MonolithSourceInvalid

__all__ = [
    "DATABASE_REFUSED",
    "EMAIL_DUPLICATE",
    "EMAIL_EMPTY",
    "EMAIL_INVALID",
    "EMAIL_TAKEN",
    "ERROR",
    "GENDER_UNKNOWN",
    "HASH_UNKNOWN",
    "ID_CONFLICT",
    "PROFILE_CONFLICT",
    "PROFILE_DUPLICATE",
    "PROFILE_MISSING",
    "PROFILE_ORPHAN",
    "PROFILE_TYPE_MISMATCH",
    "SKIPPED",
    "USER_TYPE_CHANGED",
    "USER_TYPE_INVALID",
    "USERNAME_DUPLICATE",
    "USERNAME_TAKEN",
    "VALUE_INVALID",
    "WARNING",
    "BatchProgress",
    "ImportProblem",
    "MonolithImportResult",
    "MonolithSourceInvalid",
    "monolith_import",
]
