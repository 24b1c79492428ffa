"""Input and output serializers of the people endpoints: students, staff, HODs, users and roster imports."""

from collections.abc import Mapping
from typing import Any, ClassVar

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.db import models
from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from users.api.schema import PasswordField
from users.api.serializers import (
    AdminHODProfileSerializer,
    StaffProfileSerializer,
    StrictInputSerializer,
    StudentProfileSerializer,
    UserSerializer,
    password_confirmed,
)
from users.models import CustomUser, UserType
from users.people_schema import MAX_DB_ID, ROLES, RoleSchema, Rule, max_length
from users.services.people.validation import ACADEMIC_LABELS

# --- Output ---------------------------------------------------------------------------------------


class StudentSerializer(StudentProfileSerializer):
    user = UserSerializer(read_only=True)

    class Meta(StudentProfileSerializer.Meta):
        fields = [*StudentProfileSerializer.Meta.fields, "user"]


class StaffSerializer(StaffProfileSerializer):
    user = UserSerializer(read_only=True)

    class Meta(StaffProfileSerializer.Meta):
        fields = [*StaffProfileSerializer.Meta.fields, "user"]


class AdminHODSerializer(AdminHODProfileSerializer):
    user = UserSerializer(read_only=True)

    class Meta(AdminHODProfileSerializer.Meta):
        fields = [*AdminHODProfileSerializer.Meta.fields, "user"]


# --- Input: the nested user object -------------------------------------------------------------


# The user's fields of a person (users.people_schema.USER_FIELDS), their lengths the model's.
def _username(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(
        max_length=max_length(CustomUser, "username"), validators=[UnicodeUsernameValidator()], **kwargs
    )


def _email() -> serializers.EmailField:
    return serializers.EmailField(max_length=max_length(CustomUser, "email"))


def _name(name: str) -> serializers.CharField:
    return serializers.CharField(max_length=max_length(CustomUser, name), required=False, allow_blank=True)


class UserCreateInputSerializer(StrictInputSerializer):
    username = _username()
    email = _email()
    first_name = _name("first_name")
    last_name = _name("last_name")
    password = PasswordField(
        required=False,
        help_text="Optional. Without it the account gets an unusable password and an invitation e-mail.",
    )


class LegacyUserCreateInputSerializer(UserCreateInputSerializer):
    """The user as the original service's clients send it (nested as ``admin``, or flat beside the profile)."""

    confirm_password = PasswordField(required=False, help_text="Optional; when given, the same as password.")

    def validate(self, attrs: dict) -> dict:
        return password_confirmed(super().validate(attrs))


class UserUpdateInputSerializer(StrictInputSerializer):
    username = _username()
    email = _email()
    first_name = _name("first_name")
    last_name = _name("last_name")
    is_active = serializers.BooleanField(
        required=False, help_text="false deactivates (like DELETE); true reactivates a deactivated person."
    )


# --- Input: profile fields of each role --------------------------------------------------------


class PhoneField(serializers.CharField):
    """A phone number; the service checks its shape with the other fields, the schema states it (schema.py)."""


def _profile_input_field(role: RoleSchema, name: str) -> serializers.Field:
    """The input field of one declared profile field: its type, length and nullability from the model, its help
    from the field's rule."""
    field, rule = role.model_field(name), role.declared(name).rule
    if rule is Rule.PHONE:
        return PhoneField(
            max_length=field.max_length,
            required=False,
            allow_blank=field.blank,
            help_text="Optional +, 7-15 digits, spaces or dashes.",
        )
    if rule is Rule.ACADEMIC_ID:
        return serializers.IntegerField(
            min_value=1,
            max_value=MAX_DB_ID,
            required=False,
            allow_null=field.null,
            help_text=f"Id of the {ACADEMIC_LABELS[name]} in the academic service "
            "(checked there when ACADEMIC_VALIDATION is set).",
        )
    if field.choices:
        return serializers.ChoiceField(choices=field.choices, required=False, allow_blank=field.blank)
    if isinstance(field, models.DateField):
        not_future = "Not in the future." if rule is Rule.NOT_FUTURE else None
        return serializers.DateField(required=False, allow_null=field.null, help_text=not_future)
    return serializers.CharField(
        max_length=max_length(role.model, name), required=False, allow_blank=field.blank, allow_null=field.null
    )


def profile_input_fields(user_type: int) -> dict[str, serializers.Field]:
    """The profile fields the HOD API writes for a role (``users.people_schema``), in the model's order."""
    role = ROLES[user_type]
    return {name: _profile_input_field(role, name) for name in role.in_model_order(role.names(api=True))}


# A role's profile fields as input, derived from its declaration; subclasses add the nested ``user``. (No docstring:
# the schema describes these objects with StrictInputSerializer's.)
class ProfileFieldsSerializer(StrictInputSerializer):
    user_type: ClassVar[int]
    user_key: ClassVar[str | None] = "user"  # where the body carries the user's own fields (None: at the top)

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**profile_input_fields(self.user_type), **super().get_fields()}


class StudentFieldsSerializer(ProfileFieldsSerializer):
    user_type = UserType.STUDENT


class StaffFieldsSerializer(ProfileFieldsSerializer):
    user_type = UserType.STAFF


class AdminHODFieldsSerializer(ProfileFieldsSerializer):
    user_type = UserType.HOD


class StudentCreateInputSerializer(StudentFieldsSerializer):
    user = UserCreateInputSerializer()


class StudentUpdateInputSerializer(StudentFieldsSerializer):
    user = UserUpdateInputSerializer()


class StaffCreateInputSerializer(StaffFieldsSerializer):
    user = UserCreateInputSerializer()


class StaffUpdateInputSerializer(StaffFieldsSerializer):
    user = UserUpdateInputSerializer()


class AdminHODCreateInputSerializer(AdminHODFieldsSerializer):
    user = UserCreateInputSerializer()


class AdminHODUpdateInputSerializer(AdminHODFieldsSerializer):
    user = UserUpdateInputSerializer()


# --- Input: a create as the original service's clients send it ----------------------------------
#
# Besides the nested ``user``, a role create accepts the user nested as ``admin`` (the original service's name) and
# a flat body (the user's keys beside the profile's). Both carry the original's optional ``confirm_password``. Each
# form is validated by its own strict serializer and comes out in the nested form's shape, ``{"user": {...},
# **profile}``; the schema lists the forms as a oneOf (each closed, each with its own required key).


class AdminNestedCreateMixin(serializers.Serializer):  # a Serializer, so its field is declared
    """A create with the user nested as admin (the original service's name), confirm_password optional."""

    user_key: ClassVar[str | None] = "admin"
    admin = LegacyUserCreateInputSerializer()

    def validate(self, attrs: dict) -> dict:
        attrs = dict(super().validate(attrs))
        attrs["user"] = attrs.pop("admin")
        return attrs


class FlatCreateMixin(serializers.Serializer):
    """A create with the user's fields beside the profile's; username defaults to the e-mail address."""

    user_key: ClassVar[str | None] = None

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        user = LegacyUserCreateInputSerializer().get_fields()
        user["username"] = _username(required=False, help_text="Defaults to the e-mail address.")
        return {**user, **fields}

    def validate(self, attrs: dict) -> dict:
        attrs = dict(super().validate(attrs))
        user_keys = set(LegacyUserCreateInputSerializer().fields)
        user = password_confirmed({name: attrs.pop(name) for name in list(attrs) if name in user_keys})
        if "username" not in user:
            try:
                user["username"] = _username().run_validation(user["email"])
            except serializers.ValidationError as exc:
                # the caller sent no username: name the field they did send, and say what to do
                messages = [f"Cannot serve as the username ({m}); give a username." for m in exc.detail]
                raise serializers.ValidationError({"email": messages}) from exc
        return {**attrs, "user": user}


class StudentCreateAdminInputSerializer(AdminNestedCreateMixin, StudentFieldsSerializer):
    pass


class StudentCreateFlatInputSerializer(FlatCreateMixin, StudentFieldsSerializer):
    pass


class StaffCreateAdminInputSerializer(AdminNestedCreateMixin, StaffFieldsSerializer):
    pass


class StaffCreateFlatInputSerializer(FlatCreateMixin, StaffFieldsSerializer):
    pass


class AdminHODCreateAdminInputSerializer(AdminNestedCreateMixin, AdminHODFieldsSerializer):
    pass


class AdminHODCreateFlatInputSerializer(FlatCreateMixin, AdminHODFieldsSerializer):
    pass


class RoleCreateInput:
    """The forms of one role's create body: picks the form a body is in, and describes them all for the schema."""

    def __init__(
        self,
        name: str,
        nested: type[ProfileFieldsSerializer],
        admin: type[ProfileFieldsSerializer],
        flat: type[ProfileFieldsSerializer],
    ) -> None:
        self.name, self.nested, self.admin, self.flat = name, nested, admin, flat
        self.flat_user_keys = frozenset(LegacyUserCreateInputSerializer().fields)

    def __call__(self, *, data: Any) -> ProfileFieldsSerializer:
        """The serializer of the form ``data`` is in: ``admin`` given, or user keys at the top level without a
        ``user``; otherwise the nested form (whose errors a body in no form gets, as before)."""
        if isinstance(data, Mapping) and "user" not in data:
            if "admin" in data:
                return self.admin(data=data)
            if self.flat_user_keys & set(data):
                return self.flat(data=data)
        return self.nested(data=data)

    def schema(self) -> PolymorphicProxySerializer:
        return PolymorphicProxySerializer(
            component_name=self.name,
            serializers=[self.nested, self.admin, self.flat],
            resource_type_field_name=None,
        )


STUDENT_CREATE = RoleCreateInput(
    "StudentCreate",
    StudentCreateInputSerializer,
    StudentCreateAdminInputSerializer,
    StudentCreateFlatInputSerializer,
)
STAFF_CREATE = RoleCreateInput(
    "StaffCreate", StaffCreateInputSerializer, StaffCreateAdminInputSerializer, StaffCreateFlatInputSerializer
)
ADMIN_HOD_CREATE = RoleCreateInput(
    "AdminHODCreate",
    AdminHODCreateInputSerializer,
    AdminHODCreateAdminInputSerializer,
    AdminHODCreateFlatInputSerializer,
)


# --- Roster import -------------------------------------------------------------------------------


class RosterUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV, UTF-8 (with or without BOM); the first line names the columns.")


class RosterErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True, help_text="Line of the file (1 is the header).")
    field = serializers.CharField(allow_null=True, help_text="Column name, or null for the whole row.")
    message = serializers.CharField()


class RosterResultSerializer(serializers.Serializer):
    created = serializers.IntegerField(help_text="Accounts created (in a dry run: that would be created).")
    dry_run = serializers.BooleanField()
    rows = serializers.IntegerField(help_text="Data rows read (blank lines skipped).")
    error_count = serializers.IntegerField()
    # The serializer metaclass moves declared fields out of the class, so Serializer.errors stays intact.
    errors = RosterErrorSerializer(  # type: ignore[assignment]  # the stubs cannot see that
        many=True, help_text="At most the first 1000 errors, by line."
    )
