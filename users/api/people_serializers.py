"""Input and output serializers of the people endpoints: students, staff, HODs, users and roster imports."""

from collections.abc import Mapping

from django.contrib.auth.validators import UnicodeUsernameValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from users.api.schema import PasswordField
from users.api.serializers import (
    AdminHODProfileSerializer,
    StaffProfileSerializer,
    StudentProfileSerializer,
    UserSerializer,
    text_fields_not_strings,
)
from users.models import Gender
from users.services.people import ADDRESS_MAX_LENGTH, MAX_DB_ID
from users.services.people.validation import PHONE_PATTERN


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know or may not write, and numbers given for text, at any nesting level."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, item in self.fields.items() if not item.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown or read-only field."] for name in unknown})
            not_text = text_fields_not_strings(self, data)
            if not_text:
                raise serializers.ValidationError(not_text)
        return super().to_internal_value(data)


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


def _username() -> serializers.CharField:
    return serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])


def _name() -> serializers.CharField:
    return serializers.CharField(max_length=150, required=False, allow_blank=True)


class UserCreateInputSerializer(StrictSerializer):
    username = _username()
    email = serializers.EmailField(max_length=254)
    first_name = _name()
    last_name = _name()
    password = PasswordField(
        required=False,
        help_text="Optional. Without it the account gets an unusable password and an invitation e-mail.",
    )


class UserUpdateInputSerializer(StrictSerializer):
    username = _username()
    email = serializers.EmailField(max_length=254)
    first_name = _name()
    last_name = _name()
    is_active = serializers.BooleanField(
        required=False, help_text="false deactivates (like DELETE); true reactivates a deactivated person."
    )


# --- Input: profile fields of each role --------------------------------------------------------


def _text(max_length: int) -> serializers.CharField:
    return serializers.CharField(max_length=max_length, required=False, allow_blank=True)


@extend_schema_field({"type": "string", "maxLength": 20, "pattern": rf"^(?:{PHONE_PATTERN})?$"})
class PhoneField(serializers.CharField):
    """A phone number; the service checks its shape with every other field, the schema states it."""


def _phone() -> serializers.CharField:
    return PhoneField(
        max_length=20, required=False, allow_blank=True, help_text="Optional +, 7-15 digits, spaces or dashes."
    )


def _academic_id(what: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1,
        max_value=MAX_DB_ID,
        required=False,
        allow_null=True,
        help_text=f"Id of the {what} in the academic service (checked there when ACADEMIC_VALIDATION is set).",
    )


class StudentFieldsSerializer(StrictSerializer):
    gender = serializers.ChoiceField(choices=Gender.choices, required=False, allow_blank=True)
    date_of_birth = serializers.DateField(required=False, allow_null=True, help_text="Not in the future.")
    address = _text(ADDRESS_MAX_LENGTH)
    phone_number = _phone()
    student_id = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True)
    guardian_name = _text(150)
    guardian_phone = _phone()
    course_id = _academic_id("course")
    session_year_id = _academic_id("session year")


class StaffFieldsSerializer(StrictSerializer):
    address = _text(ADDRESS_MAX_LENGTH)
    phone_number = _phone()
    employee_id = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True)
    department = _text(120)
    designation = _text(120)
    date_of_joining = serializers.DateField(required=False, allow_null=True)


class AdminHODFieldsSerializer(StrictSerializer):
    department = _text(120)
    phone_number = _phone()


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
