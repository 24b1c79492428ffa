"""The one declaration of each role's fields and of the public user JSON; every other list is derived from it.

A role's profile fields are declared here once, with what the entry points need to know about each: whether the
HOD API writes it, whether it is a column of the CSV roster, whether the person may change it, whether the
monolith import carries it over, and which field rule applies (phone number, school id, academic id, a date not in
the future). What a field *is* (its type, length, nullability, choices, label) is the model's and is read from
``Model._meta``, never repeated: a date column of the roster is parsed as a date because the model field is a
``DateField``, a text cell longer than the model's ``max_length`` is refused.

Derived from it: the API's input and output serializers (``users.api``), the roster's columns and parsing, the
validation's field lists, the self-editable lists, the monolith import's target fields, and the public user JSON's
builders (``users.selectors``: ``user_public_data``, the PostgreSQL JSON statement, the bulk rows). The API lists a
role's fields in the model's order; the roster lists them in the order declared here. ``users/tests/
test_people_schema.py`` checks that every derived list equals the declaration, so adding a field to a role is one
model field (and its migration) plus one line here.
"""

from dataclasses import dataclass
from enum import StrEnum

from django.db import models

from users.models import AdminHOD, CustomUser, ProfileBase, Staff, Student, UserType

# The user JSON every endpoint shares (DESIGN §6), in its key order. ``role`` is computed from ``user_type``;
# every other key is a column of the user table (a date and time is written as ISO 8601, ``Z`` for UTC).
PUBLIC_USER_FIELDS: tuple[str, ...] = (
    "id",
    "username",
    "email",
    "first_name",
    "last_name",
    "user_type",
    "role",
    "is_active",
    "email_verified",
    "date_joined",
)

TEXT_MAX_LENGTH = 1000  # a TextField (an address) has no length in the database; the service accepts this many
MAX_DB_ID = 2_147_483_647  # ids held for other services (course_id, session_year_id) are PostgreSQL integers


class Rule(StrEnum):
    """The field rule a profile field follows besides its model field's type and length."""

    NONE = "none"
    PHONE = "phone"  # a phone number: optional +, 7 to 15 digits (users.services.people.validation)
    SCHOOL_ID = "school_id"  # the id the school gives the person: unique when set, blank stored as NULL
    ACADEMIC_ID = "academic_id"  # an id owned by the academic service, checked there (ACADEMIC_VALIDATION)
    NOT_FUTURE = "not_future"  # a date that cannot be in the future


@dataclass(frozen=True)
class PersonField:
    """One field of a person as the entry points treat it; its type, length and nullability are the model's."""

    name: str
    api: bool = True  # written by the HOD API (create, update, replace) and checked by the people services
    roster: bool = True  # a column of the CSV roster import, when the role has one
    self_editable: bool = False  # the person may change it themselves (PATCH profile/)
    monolith: bool = False  # carried over from the monolith by import_monolith
    rule: Rule = Rule.NONE


@dataclass(frozen=True)
class RoleSchema:
    """One role: its profile model, whether it has a CSV roster import, and its profile fields."""

    user_type: UserType
    model: type[ProfileBase]
    roster_import: bool
    fields: tuple[PersonField, ...]

    def names(
        self,
        *,
        api: bool | None = None,
        roster: bool | None = None,
        self_editable: bool | None = None,
        monolith: bool | None = None,
        rule: Rule | None = None,
    ) -> tuple[str, ...]:
        """The names of the fields with these properties, in declaration order (the roster's column order)."""
        wanted = {"api": api, "roster": roster, "self_editable": self_editable, "monolith": monolith, "rule": rule}
        return tuple(
            f.name
            for f in self.fields
            if all(value is None or getattr(f, key) == value for key, value in wanted.items())
        )

    def declared(self, name: str) -> PersonField:
        """The declaration of the field called ``name``."""
        return next(f for f in self.fields if f.name == name)

    def in_model_order(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """``names`` in the model's field order (the order the API lists them in)."""
        return tuple(f.name for f in self.model._meta.concrete_fields if f.name in names)

    def model_field(self, name: str) -> models.Field:
        return model_field(self.model, name)


# The user's own fields a person is created with (the HOD API's nested ``user``, the roster's first columns), in
# the roster's column order.
USER_FIELDS_DECLARED: tuple[PersonField, ...] = (
    PersonField("username"),
    PersonField("email", self_editable=True),
    PersonField("first_name", self_editable=True),
    PersonField("last_name", self_editable=True),
)


ROLES: dict[int, RoleSchema] = {
    UserType.STUDENT: RoleSchema(
        UserType.STUDENT,
        Student,
        roster_import=True,
        fields=(
            PersonField("student_id", rule=Rule.SCHOOL_ID),
            PersonField("gender", monolith=True),
            PersonField("date_of_birth", rule=Rule.NOT_FUTURE),
            PersonField("phone_number", self_editable=True, rule=Rule.PHONE),
            PersonField("address", self_editable=True, monolith=True),
            PersonField("guardian_name", self_editable=True),
            PersonField("guardian_phone", self_editable=True, rule=Rule.PHONE),
            PersonField("course_id", monolith=True, rule=Rule.ACADEMIC_ID),
            PersonField("session_year_id", monolith=True, rule=Rule.ACADEMIC_ID),
            PersonField("profile_pic", api=False, roster=False, monolith=True),  # a path; the admin edits it
        ),
    ),
    UserType.STAFF: RoleSchema(
        UserType.STAFF,
        Staff,
        roster_import=True,
        fields=(
            PersonField("employee_id", rule=Rule.SCHOOL_ID),
            PersonField("department"),
            PersonField("designation"),
            PersonField("phone_number", self_editable=True, rule=Rule.PHONE),
            PersonField("address", self_editable=True, monolith=True),
            PersonField("date_of_joining"),
        ),
    ),
    UserType.HOD: RoleSchema(
        UserType.HOD,
        AdminHOD,
        roster_import=False,
        fields=(
            PersonField("department", self_editable=True),
            PersonField("phone_number", self_editable=True, rule=Rule.PHONE),
        ),
    ),
}


# --- Derived, for every entry point ---------------------------------------------------------------

USER_FIELDS: tuple[str, ...] = tuple(f.name for f in USER_FIELDS_DECLARED)
USER_SELF_EDITABLE_FIELDS = frozenset(f.name for f in USER_FIELDS_DECLARED if f.self_editable)


def rule_fields(rule: Rule) -> tuple[str, ...]:
    """The names of the fields following ``rule`` in any role, each once, in declaration order."""
    return tuple(dict.fromkeys(name for role in ROLES.values() for name in role.names(rule=rule)))


def model_field(model: type[models.Model], name: str) -> models.Field:
    """The model field called ``name`` (a declared name is always one: ``test_people_schema`` checks it)."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise LookupError(f"{model.__name__}.{name} is not a model field.")
    return field


def max_length(model: type[models.Model], name: str) -> int | None:
    """The longest text the service accepts for a field: the model's ``max_length``, ``TEXT_MAX_LENGTH`` for text."""
    field = model_field(model, name)
    if isinstance(field, models.TextField):
        return TEXT_MAX_LENGTH
    return field.max_length if isinstance(field, models.CharField) else None


def label(model: type[models.Model], name: str) -> str:
    """The field's name in messages: its model ``verbose_name`` (``student id``, ``course id``)."""
    return str(model_field(model, name).verbose_name)


def user_field_required(name: str) -> bool:
    """A user field a person cannot be created without (the model does not allow it blank)."""
    return not model_field(CustomUser, name).blank
