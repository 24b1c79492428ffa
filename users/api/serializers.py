"""Input and output serializers of the authentication, profile and session endpoints."""

import re
from collections.abc import Mapping

from django.contrib.auth.validators import UnicodeUsernameValidator
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from users.api.schema import PasswordField
from users.models import AdminHOD, CustomUser, Staff, Student, UserType
from users.people_schema import PUBLIC_USER_FIELDS, ROLES, max_length
from users.selectors import user_profile, user_public_data
from users.services.people import password_confirmation_check


def text_fields_not_strings(serializer: serializers.Serializer, data: dict) -> dict[str, list[str]]:
    """Errors for text fields given a number (DRF would quietly turn 0 into "0"; the schema says string)."""
    return {
        name: ["Not a valid string."]
        for name, field in serializer.fields.items()
        if isinstance(field, serializers.CharField)
        and not field.read_only
        and isinstance(data.get(name), int | float)  # bool is an int too: DRF refuses it anyway
    }


def boolean_fields_not_booleans(serializer: serializers.Serializer, data: dict) -> dict[str, list[str]]:
    """Errors for true/false fields given anything but true, false or null (DRF would quietly take 0, "yes" or "off";
    the schema says boolean)."""
    return {
        name: ["Must be true or false."]
        for name, field in serializer.fields.items()
        if isinstance(field, serializers.BooleanField)
        and not field.read_only
        and name in data
        and data[name] is not None
        and not isinstance(data[name], bool)
    }


def password_confirmed(attrs: dict) -> dict:
    """``attrs`` without ``confirm_password``, which (when given, as the original service's clients send it) must
    equal ``password``: the password service's rule."""
    attrs = dict(attrs)
    if "confirm_password" in attrs:
        password_confirmation_check(password=attrs.get("password"), confirm_password=attrs.pop("confirm_password"))
    return attrs


def user_max_length(name: str) -> int:
    """The user model's length limit of ``name`` (declared there once)."""
    length = max_length(CustomUser, name)
    assert length is not None, name  # noqa: S101 - every user text field has one
    return length


# The one strict base of every input serializer (account, auth and people): checked before the fields are, so
# an unknown key is reported whatever else is wrong, and nested serializers apply it to their own keys. Its
# docstring is the schema's description of every body that inherits it.
class StrictInputSerializer(serializers.Serializer):
    """Refuses keys it does not know or may not write, numbers given for text and non-booleans given for true/false
    fields, at any nesting level."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, item in self.fields.items() if not item.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown or read-only field."] for name in unknown})
            wrong_type = {**text_fields_not_strings(self, data), **boolean_fields_not_booleans(self, data)}
            if wrong_type:
                raise serializers.ValidationError(wrong_type)
        return super().to_internal_value(data)


# The user JSON every endpoint shares: the keys declared in users.people_schema.PUBLIC_USER_FIELDS.
class UserSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True)

    class Meta:
        model = CustomUser
        fields = list(PUBLIC_USER_FIELDS)
        read_only_fields = fields

    def to_representation(self, instance):
        return user_public_data(instance)


def profile_output_fields(user_type: int) -> list[str]:
    """The keys of a role's profile as the API returns it: its declared fields in the model's order, with its id and
    times (``users.people_schema``)."""
    role = ROLES[user_type]
    return ["id", *role.in_model_order(role.names()), "created_at", "updated_at"]


class RoleProfileSerializer(serializers.ModelSerializer):
    """A role profile as the API returns it: exactly its declared keys (the schema closes the object)."""

    # Output only (every field read-only): read-only fields are required in the schema, so oneOf is exact.

    def get_fields(self):
        fields = super().get_fields()
        model = self.Meta.model
        for name, field in fields.items():
            # DRF drops allow_blank from read-only fields, and "" (not chosen yet) is a real value of a blank choice.
            if isinstance(field, serializers.ChoiceField) and model._meta.get_field(name).blank:
                field.allow_blank = True
        return fields


class AdminHODProfileSerializer(RoleProfileSerializer):
    class Meta:
        model = AdminHOD
        fields = profile_output_fields(UserType.HOD)
        read_only_fields = fields


class StaffProfileSerializer(RoleProfileSerializer):
    class Meta:
        model = Staff
        fields = profile_output_fields(UserType.STAFF)
        read_only_fields = fields


class StudentProfileSerializer(RoleProfileSerializer):
    class Meta:
        model = Student
        fields = profile_output_fields(UserType.STUDENT)
        read_only_fields = fields


PROFILE_SERIALIZERS = {
    UserType.HOD: AdminHODProfileSerializer,
    UserType.STAFF: StaffProfileSerializer,
    UserType.STUDENT: StudentProfileSerializer,
}

ProfileSchema = PolymorphicProxySerializer(
    component_name="RoleProfile",
    serializers=[AdminHODProfileSerializer, StaffProfileSerializer, StudentProfileSerializer],
    resource_type_field_name=None,
)


class UserWithProfileSerializer(UserSerializer):
    profile = serializers.SerializerMethodField()

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "profile"]
        read_only_fields = fields

    @extend_schema_field(ProfileSchema)
    def get_profile(self, user):
        profile = user_profile(user)
        return None if profile is None else PROFILE_SERIALIZERS[user.user_type](profile).data

    def to_representation(self, instance):
        return {**user_public_data(instance), "profile": self.get_profile(instance)}


@extend_schema_field({"type": "integer", "enum": [UserType.STUDENT.value]})
class SelfRegisteredTypeField(serializers.IntegerField):
    """``user_type`` of a self-registration: the schema says 3, ``validate_user_type`` explains any other value."""


class RegisterInputSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=user_max_length("username"), validators=[UnicodeUsernameValidator()])
    email = serializers.EmailField(max_length=user_max_length("email"))
    password = PasswordField()
    first_name = serializers.CharField(
        max_length=user_max_length("first_name"), required=False, allow_blank=True, default=""
    )
    last_name = serializers.CharField(
        max_length=user_max_length("last_name"), required=False, allow_blank=True, default=""
    )
    user_type = SelfRegisteredTypeField(required=False, help_text="Only 3 (Student) may self-register.")
    confirm_password = PasswordField(required=False, help_text="Optional; when given, the same as password.")

    def validate_user_type(self, value):
        if value != UserType.STUDENT:
            raise serializers.ValidationError("Self-registration creates Student accounts only (user_type 3).")
        return value

    def validate(self, attrs: dict) -> dict:
        return password_confirmed(super().validate(attrs))


class LoginInputSerializer(StrictInputSerializer):
    username = serializers.CharField(
        max_length=max(user_max_length("username"), user_max_length("email")), help_text="Username or e-mail address."
    )
    password = serializers.CharField(max_length=4096, write_only=True, trim_whitespace=False)


class LoginRefusedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(help_text="invalid_credentials, mfa_required or mfa_enrolment_required.")
    mfa_token = serializers.CharField(
        required=False, help_text="mfa_required/mfa_enrolment_required: carries the login to login/mfa/."
    )
    methods = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="mfa_required: the methods that can finish the login; mfa_enrolment_required: those to set up.",
    )
    expires_in = serializers.IntegerField(required=False, help_text="Seconds the mfa_token stays usable.")


class TokenResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")
    user = UserWithProfileSerializer()


class RefreshResponseSerializer(TokenResponseSerializer):
    access = serializers.CharField(
        required=False, help_text="The same as access_token (SimpleJWT's name); when the token was sent as refresh."
    )
    refresh = serializers.CharField(
        required=False, help_text="The same as refresh_token (SimpleJWT's name); when the token was sent as refresh."
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_surrogates(value: str) -> None:
    if _SURROGATE.search(value):  # DRF's own validator words the refusal
        ProhibitSurrogateCharactersValidator()(value)


class TokenField(serializers.CharField):
    """A token as text: DRF's CharField with its no-surrogates rule checked by one regular expression.

    DRF checks it with a Python loop over the characters, which for a token of a kilobyte is most of the cost
    of reading a refresh request's body.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 4096)
        super().__init__(**kwargs)
        kept = [v for v in self.validators if not isinstance(v, ProhibitSurrogateCharactersValidator)]
        self.validators = [*kept, _no_surrogates]


class RefreshInputSerializer(StrictInputSerializer):
    schema_any_of = (("refresh_token",), ("refresh",))

    refresh_token = TokenField(required=False)
    refresh = TokenField(required=False, help_text="Alias of refresh_token.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        token = attrs.get("refresh_token") or attrs.get("refresh")
        if not token:
            raise serializers.ValidationError({"refresh_token": ["This field is required."]})
        return {"refresh_token": token}


class LogoutInputSerializer(StrictInputSerializer):
    refresh_token = TokenField(required=False)
    all = serializers.BooleanField(required=False, default=False, help_text="End every session of the user.")


class ProfileUpdateInputSerializer(StrictInputSerializer):
    first_name = serializers.CharField(max_length=user_max_length("first_name"), required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=user_max_length("last_name"), required=False, allow_blank=True)
    email = serializers.EmailField(max_length=user_max_length("email"), required=False)
    profile = serializers.DictField(required=False, help_text="Fields of the role profile the user may edit.")


class ChangePasswordInputSerializer(StrictInputSerializer):
    old_password = serializers.CharField(max_length=4096, trim_whitespace=False)
    new_password = PasswordField()
    confirm_password = PasswordField(help_text="The same as new_password.")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class SessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
    is_current = serializers.SerializerMethodField()
    apps = serializers.SerializerMethodField(
        help_text="The apps (OpenID Connect clients) that signed in through this session: client_id and name."
    )

    def get_is_current(self, session) -> bool:
        return str(session.id) == self.context["current_session_id"]

    @extend_schema_field(
        inline_serializer(
            name="SessionApp", fields={"client_id": serializers.CharField(), "name": serializers.CharField()}, many=True
        )
    )
    def get_apps(self, session) -> list[dict[str, str]]:
        return self.context.get("apps", {}).get(str(session.id), [])


class ValidateTokenResponseSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    user = UserSerializer()
    session_id = serializers.UUIDField()
    expires_at = serializers.DateTimeField()
    amr = serializers.ListField(
        child=serializers.CharField(),
        help_text='How the person authenticated (RFC 8176): ["pwd"], ["pwd", "otp", "mfa"], ... '
        '(["pwd"] for tokens minted before the claim existed).',
    )
    auth_time = serializers.IntegerField(
        allow_null=True, help_text="Epoch seconds of the login (null for tokens minted before the claim existed)."
    )


class InvalidTokenResponseSerializer(serializers.Serializer):
    valid = serializers.BooleanField(default=False)
    detail = serializers.CharField()
    code = serializers.CharField()
