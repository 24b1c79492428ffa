"""The import run: a first pass over the source, then batches planned and written one transaction each."""

import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from django.contrib.auth.hashers import get_hasher, get_hashers
from django.db import DataError, IntegrityError, models, transaction
from django.utils import timezone

from users.cache import user_invalidate
from users.models import PROFILE_MODELS, CustomUser, OutboxMessage, ProfileBase, SessionEndReason, UserType
from users.people_schema import PUBLIC_USER_FIELDS
from users.services.monolith_import.notify import EMAIL, monolith_import_messages
from users.services.monolith_import.result import (
    DATABASE_REFUSED,
    EMAIL_DUPLICATE,
    EMAIL_TAKEN,
    ERROR,
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
    WARNING,
    BatchProgress,
    ImportProblem,
    MonolithImportResult,
)
from users.services.monolith_import.source import (
    PROFILE_TABLES,
    USERS_TABLE,
    _Account,
    _algorithm,
    _email_key,
    _MonolithSource,
    _profile_values,
    _user_type,
    _user_values,
)
from users.services.monolith_import.target import (
    PROFILE_FIELDS,
    USER_FIELDS,
    _Owners,
    _Plan,
    _postgresql,
    _ProfileIds,
    _rows_insert,
    _rows_update,
    _sequences_advance,
    _sequences_reset,
    _tables_analyze,
    _Target,
)
from users.services.outbox import outbox_relay_soon
from users.services.people.activation import users_activity_set_by_import
from users.services.people.passwords import passwords_set_by_import

# The fields of the import whose change the user JSON shows, so a user.updated event announces it.
USER_FIELDS_IN_JSON = frozenset(USER_FIELDS) & frozenset(PUBLIC_USER_FIELDS)
ANALYZE_FIRST_AT = 2_000  # accounts created before the first ANALYZE; doubled after each one


def _password_after_import(source: str, target: str, *, preferred: str) -> str:
    """The source hash wins, unless the target's was made by this service (upgrade on login, new password)."""
    if source == target or (_algorithm(target) == preferred and _algorithm(source) != preferred):
        return target
    return source


class _Written(NamedTuple):
    """What one transaction did besides the rows themselves: sessions ended, outbox e-mails and events written."""

    sessions_ended: int = 0
    emails: int = 0
    events: int = 0


def _messages_counted(messages: list[dict[str, Any]]) -> tuple[int, int]:
    emails = sum(message["kind"] == EMAIL for message in messages)
    return emails, len(messages) - emails


class _Importer:
    def __init__(self, *, source: _MonolithSource, result: MonolithImportResult, notify: bool) -> None:
        self.source = source
        self.result = result
        self.notify = notify
        # Every hasher names its algorithm (the stubs allow None for the abstract base).
        self.preferred_algorithm = get_hasher("default").algorithm or ""
        self.algorithms = frozenset(hasher.algorithm for hasher in get_hashers() if hasher.algorithm)
        self.excluded: set[int] = set()
        self.owners: _Owners
        self.profile_ids = _ProfileIds({model: source.max_id(table) for model, table in PROFILE_TABLES.items()})

    def check_source(self) -> None:
        """First pass: bad user types, duplicates (the lowest id wins), profiles without a user."""
        usernames: dict[str, int] = {}
        emails: dict[str, int] = {}
        for uid, username, email, user_type in self.source.user_keys():
            self.result.total_users += 1
            if _user_type(user_type) is None:
                message = f"user_type {user_type!r} is not 1 (HOD), 2 (Staff) or 3 (Student); row rejected"
                self.result.add(ImportProblem(USER_TYPE_INVALID, ERROR, USERS_TABLE, uid, message))
                self.excluded.add(uid)
                continue
            username_key, email_key = ("" if username is None else str(username)).lower(), _email_key(email)
            if username_key and username_key in usernames:
                first = usernames[username_key]
                message = f"username {username!r} already used by user id={first} (case-insensitively); skipped"
                self.result.add(ImportProblem(USERNAME_DUPLICATE, SKIPPED, USERS_TABLE, uid, message))
                self.excluded.add(uid)
            elif email_key and email_key in emails:
                first = emails[email_key]
                message = f"e-mail {str(email).strip()!r} already used by user id={first} (case-insensitively); skipped"
                self.result.add(ImportProblem(EMAIL_DUPLICATE, SKIPPED, USERS_TABLE, uid, message))
                self.excluded.add(uid)
            else:
                if username_key:
                    usernames[username_key] = uid
                if email_key:
                    emails[email_key] = uid
        for model, table in PROFILE_TABLES.items():
            for row in self.source.orphan_profiles(model):
                message = f"profile of user id={row['admin_id']}, who does not exist; skipped"
                self.result.add(ImportProblem(PROFILE_ORPHAN, SKIPPED, table, row["id"], message))

    def accounts(self, rows: list[sqlite3.Row], problems: list[ImportProblem]) -> list[_Account]:
        """Map a batch of users and join their profile rows; report rows that do not fit."""
        profiles: dict[tuple[type[ProfileBase], int], list[sqlite3.Row]] = defaultdict(list)
        for model in PROFILE_TABLES:
            for row in self.source.profiles_between(model, rows[0]["id"], rows[-1]["id"]):
                profiles[model, row["admin_id"]].append(row)
        accounts = []
        for row in rows:
            uid = row["id"]
            if uid in self.excluded:
                continue  # reported by check_source(); its profile rows go with it
            values, user_problems = _user_values(row, algorithms=self.algorithms)
            problems.extend(user_problems)
            if values is None:
                continue
            own_model = PROFILE_MODELS[values["user_type"]]
            for model, table in PROFILE_TABLES.items():
                found = profiles.get((model, uid), [])
                for other in found[1:] if model is own_model else found:
                    if model is own_model:
                        message = (
                            f"second {model.__name__} profile of user id={uid} (first is id={found[0]['id']}); skipped"
                        )
                        problems.append(ImportProblem(PROFILE_DUPLICATE, SKIPPED, table, other["id"], message))
                    else:
                        role = UserType(values["user_type"]).label
                        message = f"{model.__name__} profile of user id={uid}, who is a {role}; skipped"
                        problems.append(ImportProblem(PROFILE_TYPE_MISMATCH, SKIPPED, table, other["id"], message))
            own = profiles.get((own_model, uid))
            profile_values: dict[str, Any] = {}
            if own:
                parsed, profile_problems = _profile_values(own_model, own[0])
                problems.extend(profile_problems)
                if parsed is None:
                    continue
                profile_values = parsed
            accounts.append(_Account(uid, values, own_model, own[0]["id"] if own else None, profile_values))
        return accounts

    def plan(self, account: _Account, target: _Target, problems: list[ImportProblem]) -> _Plan | None:
        """Decide what to write for one account, or report why it is refused (None)."""
        uid, values, model = account.user_id, account.values, account.model
        current = target.users.get(uid)

        def refuse(kind: str, message: str) -> None:
            problems.append(ImportProblem(kind, ERROR, USERS_TABLE, uid, f"{message}; not imported"))

        if current is not None:
            same_name = current["username"].lower() == values["username"].lower()
            if not same_name and current["date_joined"] != values["date_joined"]:
                refuse(ID_CONFLICT, f"the target's user id={uid} is {current['username']!r}, another person")
                return None
            if current["user_type"] != values["user_type"]:
                old, new = UserType(current["user_type"]).label, UserType(values["user_type"]).label
                refuse(USER_TYPE_CHANGED, f"imported as {old}, the monolith now says {new}")
                return None
        owner = self.owners.usernames.get(values["username"].lower(), uid)
        if owner != uid:
            refuse(USERNAME_TAKEN, f"username {values['username']!r} belongs to the target's user id={owner}")
            return None
        owner = self.owners.emails.get(values["email"].lower(), uid) if values["email"] else uid
        if owner != uid:
            refuse(EMAIL_TAKEN, f"e-mail {values['email']!r} belongs to the target's user id={owner}")
            return None
        profile = target.profiles_by_user[model].get(uid)
        if account.profile_id is not None:
            holder = target.profiles_by_id[model].get(account.profile_id)
            if holder is not None and holder["user_id"] != uid:
                message = (
                    f"{model.__name__} id={account.profile_id} belongs to the target's user id={holder['user_id']}"
                )
                refuse(PROFILE_CONFLICT, message)
                return None
            if profile is not None and profile["id"] != account.profile_id:
                message = (
                    f"has {model.__name__} id={profile['id']} in the target, the monolith's is id={account.profile_id}"
                )
                refuse(PROFILE_CONFLICT, message)
                return None
        else:
            done = "kept the target's" if profile is not None else "created an empty one"
            message = (
                f"{UserType(values['user_type']).label} without a {model.__name__} profile in the monolith; {done}"
            )
            problems.append(ImportProblem(PROFILE_MISSING, WARNING, USERS_TABLE, uid, message))

        plan = _Plan(user_id=uid, model=model, current=current)
        if current is None:
            plan.new_user = {"id": uid, **values}
        else:
            self._user_changes(plan, current, values)
        if profile is None:
            plan.new_profile = {"id": account.profile_id, "user_id": uid, **account.profile_values}
        elif account.profile_id is not None:
            plan.profile_fields = {n for n in PROFILE_FIELDS[model] if profile[n] != account.profile_values[n]}
            if plan.profile_fields:
                plan.profile_update = {**profile, **account.profile_values}
        return plan

    def _user_changes(self, plan: _Plan, current: dict[str, Any], values: dict[str, Any]) -> None:
        wanted = dict(values)
        wanted["password"] = _password_after_import(
            values["password"], current["password"], preferred=self.preferred_algorithm
        )
        if current["last_login"] and (values["last_login"] is None or current["last_login"] > values["last_login"]):
            wanted["last_login"] = current["last_login"]  # logins to this service are newer; keep them
        plan.user_fields = {name for name in USER_FIELDS if current[name] != wanted[name]}
        if not plan.user_fields:
            return
        wanted["id"], wanted["deactivated_at"] = plan.user_id, current["deactivated_at"]
        if "is_active" in plan.user_fields:
            wanted["deactivated_at"] = None if wanted["is_active"] else timezone.now()
            plan.user_fields.add("deactivated_at")
            if not wanted["is_active"]:
                plan.end_sessions_reason = SessionEndReason.DEACTIVATED
        if "password" in plan.user_fields and not plan.end_sessions_reason:
            plan.end_sessions_reason = SessionEndReason.PASSWORD_CHANGED
        plan.user_update = wanted
        plan.old_keys = (current["username"].lower(), current["email"].lower())

    def write(self, plans: list[_Plan]) -> _Written:
        """Write the planned rows (and, with ``notify``, their outbox messages) with bulk statements."""
        now = timezone.now()
        _rows_insert(CustomUser, [p.new_user for p in plans if p.new_user is not None])
        updates = [(p, p.user_update) for p in plans if p.user_update is not None]
        if updates:
            fields = set().union(*(p.user_fields for p, _ in updates))
            _rows_update(CustomUser, [row | {"updated_at": now} for _, row in updates], fields)
        for model in PROFILE_FIELDS:
            new = [p.new_profile for p in plans if p.model is model and p.new_profile is not None]
            unnumbered = [row for row in new if row["id"] is None]
            if unnumbered:
                for row, pid in zip(unnumbered, self.profile_ids.allocate(model, len(unnumbered)), strict=True):
                    row["id"] = pid
            _rows_insert(model, new)
            changed = [(p, p.profile_update) for p in plans if p.model is model and p.profile_update is not None]
            if changed:
                fields = set().union(*(p.profile_fields for p, _ in changed))
                _rows_update(model, [row | {"updated_at": now} for _, row in changed], fields)
        # The owners' batch forms: sessions ended, audit records, cached views dropped (bulk writes send no signals).
        updated = [p for p, _ in updates]
        activity = [(p.user_id, row["is_active"]) for p, row in updates if "is_active" in p.user_fields]
        ended = users_activity_set_by_import(
            deactivated_ids=[user_id for user_id, active in activity if not active],
            reactivated_ids=[user_id for user_id, active in activity if active],
        )
        # A new hash of a deactivated account: its sessions ended just above, so no second password record.
        ended += passwords_set_by_import(
            user_ids=[
                p.user_id
                for p in updated
                if "password" in p.user_fields and p.end_sessions_reason == SessionEndReason.PASSWORD_CHANGED
            ]
        )
        for plan in plans:
            if plan.user_fields & USER_FIELDS_IN_JSON or plan.profile_update is not None:
                user_invalidate(user_id=plan.user_id)
        if not self.notify:
            return _Written(ended)
        messages = monolith_import_messages(plans)
        _rows_insert(OutboxMessage, messages)  # in bulk, in this batch's transaction
        return _Written(ended, *_messages_counted(messages))

    def run_batch(self, rows: list[sqlite3.Row]) -> None:
        """Plan and write one batch in one transaction; if the database refuses it, retry row by row."""
        problems: list[ImportProblem] = []
        accounts = self.accounts(rows, problems)
        plans: list[_Plan] = []
        written = _Written()
        if accounts:
            try:
                with transaction.atomic():
                    target = _Target.load(accounts, lock=not self.result.dry_run)
                    plans = [p for a in accounts if (p := self.plan(a, target, problems)) is not None]
                    if not self.result.dry_run:
                        written = self.write(plans)
            except (IntegrityError, DataError):
                if not plans:
                    raise
                plans, written = self._write_one_by_one(plans, problems)
        if self.notify and self.result.dry_run:  # what a real run would queue; nothing is written
            written = _Written(0, *_messages_counted(monolith_import_messages(plans)))
        elif written.emails or written.events:
            outbox_relay_soon()  # the batch has committed (or commits with the caller's transaction)
        for problem in problems:
            self.result.add(problem)
        for plan in plans:
            row = plan.new_user if plan.new_user is not None else plan.user_update
            if row is not None:
                self.owners.record(plan.user_id, old=plan.old_keys, new=(row["username"].lower(), row["email"].lower()))
            setattr(self.result, plan.outcome, getattr(self.result, plan.outcome) + 1)
            self.result.profiles_created += plan.new_profile is not None
            self.result.profiles_updated += plan.profile_update is not None
        self.result.sessions_ended += written.sessions_ended
        self.result.emails_queued += written.emails
        self.result.events_queued += written.events

    def _write_one_by_one(self, plans: list[_Plan], problems: list[ImportProblem]) -> tuple[list[_Plan], _Written]:
        written, ended, emails, events = [], 0, 0, 0
        for plan in plans:
            try:
                with transaction.atomic():
                    one = self.write([plan])
            except (IntegrityError, DataError) as exc:
                reason = str(exc).strip().splitlines()[0]
                message = f"the database refused the row ({reason}); not imported"
                problems.append(ImportProblem(DATABASE_REFUSED, ERROR, USERS_TABLE, plan.user_id, message))
            else:
                written.append(plan)
                ended, emails, events = ended + one.sessions_ended, emails + one.emails, events + one.events
        return written, _Written(ended, emails, events)


def monolith_import(
    *,
    path: str | Path,
    dry_run: bool = False,
    batch_size: int = 1000,
    notify: bool = False,
    progress: Callable[[BatchProgress], None] | None = None,
) -> MonolithImportResult:
    """Import the monolith's users and profiles with their ids and hashes; running it again changes nothing."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    result = MonolithImportResult(source=str(path), dry_run=dry_run, batch_size=batch_size, notify=notify)
    source = _MonolithSource(path)
    try:
        importer = _Importer(source=source, result=result, notify=notify)
        importer.check_source()
        importer.owners = _Owners()
        if _postgresql() and not dry_run:
            floors: dict[type[models.Model], int] = {CustomUser: source.max_id(USERS_TABLE)}
            floors |= {model: source.max_id(table) for model, table in PROFILE_TABLES.items()}
            _sequences_advance(floors)
        last_id, processed, analyze_at = 0, 0, ANALYZE_FIRST_AT
        while rows := source.users_after(last_id, batch_size):
            importer.run_batch(rows)
            last_id, processed = rows[-1]["id"], processed + len(rows)
            result.batches += 1
            if _postgresql() and not dry_run and result.created >= analyze_at:
                _tables_analyze()  # fresh statistics keep the per-batch lookups on their indexes
                analyze_at *= 2
            if progress is not None:
                elapsed = time.perf_counter() - started
                progress(BatchProgress(result.batches, rows[0]["id"], last_id, processed, result.total_users, elapsed))
        if not dry_run:
            result.sequences_reset = _sequences_reset()
    finally:
        source.close()
    result.problems.sort(key=lambda p: (p.kind, p.table, p.row_id or 0))
    result.seconds = time.perf_counter() - started
    return result
