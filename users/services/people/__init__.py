"""Changes to a person, one owner per kind, and the HOD's people management built on them.

The owners (each writes its validation, session ending, audit record, outbox event/e-mail and cache invalidation):
``create`` (a new person), ``update`` (user fields, e-mail address, role profile), ``passwords`` (a password set by
its owner, a reset link, an HOD, an import; the password policy), ``activation`` (deactivate = the soft delete,
reactivate). Every entry point calls them: the API, the admin, the roster and monolith imports, the commands.
``validation`` holds the field rules (phone numbers, uniqueness, academic ids); ``persons`` the HOD API's requests;
``roster`` the CSV import, which writes through ``bulk`` and the owners' batch forms.
"""

from users.people_schema import MAX_DB_ID, USER_FIELDS
from users.services.people.activation import (
    PersonChangeRefused,
    user_deactivate,
    user_reactivate,
    users_activity_set_by_import,
)
from users.services.people.bulk import ROSTER_BATCH_SIZE, SEARCH_INDEXES, search_indexes_flush
from users.services.people.create import INVITATION_TEMPLATE, user_create, user_rows_create, users_created_rows
from users.services.people.passwords import (
    PasswordVia,
    password_change,
    password_confirmation_check,
    password_policy_check,
    password_set_by_admin,
    password_set_by_reset,
    passwords_set_by_import,
)
from users.services.people.persons import invitation_resend, person_create, person_update
from users.services.people.roster import (
    ROSTER_COLUMNS,
    ROSTER_ERRORS_SHOWN,
    ROSTER_QUERY_CHUNK,
    ROSTER_REQUIRED_COLUMNS,
    RosterError,
    RosterRejected,
    RosterResult,
    roster_import,
)
from users.services.people.update import (
    email_verified_set,
    person_change,
    profile_change,
    profile_changes_check,
    user_changes_check,
    user_email_change,
    user_fields_change,
)
from users.services.people.validation import (
    ACADEMIC_FIELDS,
    PHONE_FIELDS,
    PROFILE_FIELDS,
    SCHOOL_ID_FIELDS,
    AcademicServiceDown,
    academic_unknown_ids,
    phone_number_validate,
)

__all__ = [
    "ACADEMIC_FIELDS",
    "INVITATION_TEMPLATE",
    "MAX_DB_ID",
    "PHONE_FIELDS",
    "PROFILE_FIELDS",
    "ROSTER_BATCH_SIZE",
    "ROSTER_COLUMNS",
    "ROSTER_ERRORS_SHOWN",
    "ROSTER_QUERY_CHUNK",
    "ROSTER_REQUIRED_COLUMNS",
    "SCHOOL_ID_FIELDS",
    "SEARCH_INDEXES",
    "USER_FIELDS",
    "AcademicServiceDown",
    "PasswordVia",
    "PersonChangeRefused",
    "RosterError",
    "RosterRejected",
    "RosterResult",
    "academic_unknown_ids",
    "email_verified_set",
    "invitation_resend",
    "password_change",
    "password_confirmation_check",
    "password_policy_check",
    "password_set_by_admin",
    "password_set_by_reset",
    "passwords_set_by_import",
    "person_change",
    "person_create",
    "person_update",
    "phone_number_validate",
    "profile_change",
    "profile_changes_check",
    "roster_import",
    "search_indexes_flush",
    "user_changes_check",
    "user_create",
    "user_deactivate",
    "user_email_change",
    "user_fields_change",
    "user_reactivate",
    "user_rows_create",
    "users_activity_set_by_import",
    "users_created_rows",
]
