"""Input of the users collection at the API prefix: a create naming its role, and a change of any role, both flat.

Both are built on the role endpoints' forms (``people_serializers``): a create is a role's flat create form plus
``user_type``; a change is a role's profile fields beside the user's own, every one optional, null meaning
"unchanged". Nothing here validates a value itself.
"""

from typing import Any, ClassVar

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from users.api import people_serializers as ps
from users.api.schema import AnyOfProxySerializer
from users.models import UserType

# --- user_type as the original frontend sends it -------------------------------------------------


class UserTypeField(serializers.Field):
    """``user_type`` as a number (``3``) or as the same number in a string (``"3"``), one of ``choices``."""

    def __init__(self, *, choices: tuple[UserType, ...] = tuple(UserType), **kwargs: Any) -> None:
        self.choices = choices
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> UserType:
        if isinstance(data, int | str) and not isinstance(data, bool):
            for choice in self.choices:
                if str(data) == str(choice.value):
                    return choice
        accepted = ", ".join(f"{choice.value} ({choice.label})" for choice in self.choices)
        raise serializers.ValidationError(f"Must be {accepted}, as a number or a string.")

    def to_representation(self, value: Any) -> int:
        return int(value)


class UserTypeChoiceSerializer(serializers.Serializer):
    """Reads only ``user_type`` of a create body, to pick the role's form (which then checks every key)."""

    user_type = UserTypeField()


# --- Create: a role's flat form, naming the role ---------------------------------------------------


# A role's flat create form plus that role's user_type (and no other). Its docstring is the schema's description.
class UserTypeFormMixin(ps.ProfileFieldsSerializer):
    """A person of the role user_type names: the user's fields beside the profile's; username defaults to the
    e-mail address."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {"user_type": UserTypeField(choices=(UserType(self.user_type),)), **super().get_fields()}

    def validate(self, attrs: dict) -> dict:
        attrs = dict(attrs)
        attrs.pop("user_type")
        return super().validate(attrs)


def role_forms(
    mixin: type[serializers.Serializer], forms: dict[UserType, type[ps.ProfileFieldsSerializer]], *, kind: str
) -> dict[int, type[ps.ProfileFieldsSerializer]]:
    """One form per role: ``mixin`` over that role's form, named ``{Role}User{kind}InputSerializer`` (the name is
    the OpenAPI component's)."""
    roles = {UserType.HOD: "AdminHOD", UserType.STAFF: "Staff", UserType.STUDENT: "Student"}
    return {
        user_type: type(f"{roles[user_type]}User{kind}InputSerializer", (mixin, form), {"__module__": __name__})
        for user_type, form in forms.items()
    }


USER_CREATE_FORMS = role_forms(
    UserTypeFormMixin,
    {
        UserType.HOD: ps.AdminHODCreateFlatInputSerializer,
        UserType.STAFF: ps.StaffCreateFlatInputSerializer,
        UserType.STUDENT: ps.StudentCreateFlatInputSerializer,
    },
    kind="Create",
)
# user_type tells the forms apart, so exactly one fits a body.
USER_CREATE_SCHEMA = PolymorphicProxySerializer(
    component_name="UserCreate", serializers=list(USER_CREATE_FORMS.values()), resource_type_field_name=None
)


def user_create_form(data: Any) -> tuple[UserType, ps.ProfileFieldsSerializer]:
    """The role a create body names and the form that checks it; a bad ``user_type`` is a 400 naming it."""
    choice = UserTypeChoiceSerializer(data=data)
    choice.is_valid(raise_exception=True)
    user_type = choice.validated_data["user_type"]
    return user_type, USER_CREATE_FORMS[user_type](data=data)


# --- Change: the user's fields beside the profile's, null = unchanged ------------------------------


# Validated data comes out in the nested form's shape, {"user": {...}, **profile}, with only the fields given and not
# null. The docstring is the schema's description.
class FlatChangeMixin(serializers.Serializer):
    """The user's fields beside the role profile's, every one optional: a field left out or null stays unchanged."""

    user_key: ClassVar[str | None] = None

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = {**ps.UserUpdateInputSerializer().get_fields(), **super().get_fields()}
        for field in fields.values():
            field.required = False
            field.allow_null = True  # null means "unchanged" (dropped in validate), whatever the field
        return fields

    def validate(self, attrs: dict) -> dict:
        attrs = {name: value for name, value in super().validate(attrs).items() if value is not None}
        user_keys = set(ps.UserUpdateInputSerializer().fields)
        user = {name: attrs.pop(name) for name in list(attrs) if name in user_keys}
        return {**attrs, "user": user}


USER_CHANGE_FORMS = role_forms(
    FlatChangeMixin,
    {
        UserType.HOD: ps.AdminHODFieldsSerializer,
        UserType.STAFF: ps.StaffFieldsSerializer,
        UserType.STUDENT: ps.StudentFieldsSerializer,
    },
    kind="Change",
)
# The target's role picks the form; a body of shared keys ({"first_name": ...}) fits every form, hence anyOf.
USER_CHANGE_SCHEMA = AnyOfProxySerializer(
    component_name="UserChange", serializers=list(USER_CHANGE_FORMS.values()), resource_type_field_name=None
)


def user_change_fields(*, user_type: int, data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The user's and the profile's changes a body of a person of ``user_type`` asks for (null and absent keys
    left out); 400 for unknown keys and bad values."""
    form = USER_CHANGE_FORMS[user_type](data=data)
    form.is_valid(raise_exception=True)
    fields = dict(form.validated_data)
    return dict(fields.pop("user")), fields
