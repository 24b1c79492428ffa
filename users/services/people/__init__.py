"""Managing people as an HOD: create, update, deactivate and reactivate students, staff and HODs; roster imports.

``validation`` holds the field rules the API and the roster import share (phone numbers, uniqueness, academic
ids); ``persons`` the writes of one person; ``roster`` the CSV import, which writes through ``bulk``.
"""

from users.services.people.bulk import ROSTER_BATCH_SIZE, SEARCH_INDEXES, search_indexes_flush
from users.services.people.persons import (
    INVITATION_TEMPLATE,
    PersonChangeRefused,
    invitation_resend,
    person_create,
    person_created_in_admin,
    person_deactivate,
    person_reactivate,
    person_update,
)
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
from users.services.people.validation import (
    ACADEMIC_FIELDS,
    ADDRESS_MAX_LENGTH,
    MAX_DB_ID,
    PHONE_FIELDS,
    PROFILE_FIELDS,
    SCHOOL_ID_FIELDS,
    USER_FIELDS,
    AcademicServiceDown,
    academic_unknown_ids,
    phone_number_validate,
)

__all__ = [
    "ACADEMIC_FIELDS",
    "ADDRESS_MAX_LENGTH",
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
    "PersonChangeRefused",
    "RosterError",
    "RosterRejected",
    "RosterResult",
    "academic_unknown_ids",
    "invitation_resend",
    "person_create",
    "person_created_in_admin",
    "person_deactivate",
    "person_reactivate",
    "person_update",
    "phone_number_validate",
    "roster_import",
    "search_indexes_flush",
]
