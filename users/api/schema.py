"""OpenAPI helpers: the error body, the error responses every view declares, and what the code enforces.

The extensions and the hook below make the schema state the rules the code already applies, read from the code
that applies them: strict serializers refuse unknown keys (``additionalProperties: false``), filters carry their
form fields' bounds, path ids are positive, and the HTTP layer's own refusals (413, 414) are documented.
"""

import threading
from typing import Any

import django_filters
from django.contrib.auth import password_validation
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.serializers import PolymorphicProxySerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers

from users.services.people.validation import PHONE_PATTERN

ErrorSerializer = inline_serializer(
    name="Error",
    fields={"detail": serializers.CharField(), "code": serializers.CharField()},
)

_DESCRIPTIONS = {
    400: "Invalid input: field errors keyed by field name, or {detail, code}.",
    401: "Missing, malformed, expired or revoked credentials.",
    403: "Authenticated but not allowed.",
    404: "No such object (or not yours).",
    405: "Method not allowed.",
    409: "The current state does not allow this (e.g. a factor already set up, or none to act on).",
    413: "Request body over REQUEST_MAX_BYTES (UPLOAD_MAX_BYTES for multipart uploads).",
    415: "Unsupported media type (send JSON).",
    429: "Too many requests; see Retry-After.",
    503: "A dependency (database, or Redis for ending sessions) is unavailable; nothing was changed; see Retry-After.",
}
# Answered by gunicorn (deploy/gunicorn.conf.py, limit_request_line) before the application sees the request.
REQUEST_LINE_TOO_LONG = {
    "description": "Request line (path and query string) over 8190 bytes; answered by the HTTP server, as HTML.",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
MAX_DB_BIGINT = 2**63 - 1  # primary keys are BigAutoFields
NO_NUL = r"^[^\x00]*$"  # DRF and Django text fields refuse NUL characters


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Responses for the given error statuses, for ``@extend_schema(responses=...)``."""
    return {
        code: OpenApiResponse(
            # 400 bodies are either {detail, code} or {field: [messages]}: an object either way.
            response=OpenApiTypes.OBJECT if code == 400 else ErrorSerializer,
            description=_DESCRIPTIONS[code],
        )
        for code in codes
    }


def password_length_bounds() -> tuple[int | None, int | None]:
    """The minimum and maximum password lengths of AUTH_PASSWORD_VALIDATORS (the validators stay the rule)."""
    low = high = None
    for validator in password_validation.get_default_password_validators():
        low = getattr(validator, "min_length", low)
        high = getattr(validator, "max_length", high)
    return low, high


def _password_schema() -> dict[str, Any]:
    low, high = password_length_bounds()
    schema: dict[str, Any] = {"type": "string", "writeOnly": True}
    if low is not None:
        schema["minLength"] = low
    if high is not None:
        schema["maxLength"] = high
    schema["description"] = "Checked against the password policy: length, common passwords, runs, similarity."
    return schema


class PasswordField(serializers.CharField):
    """A new password: validated by Django's password validators; the schema states their length bounds."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 4096)  # the validators give the precise message below this
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("write_only", True)
        super().__init__(**kwargs)


class ClosedObjectExtension(OpenApiSerializerExtension):
    """Serializers that refuse keys they do not declare: ``additionalProperties: false``, plus ``schema_any_of``
    and ``schema_one_of``.

    ``schema_any_of`` (a class attribute: lists of field names) says which fields must be given together, one
    list of which is required, e.g. ``refresh_token`` or its alias ``refresh``; ``schema_one_of`` the same, with
    exactly one list matching (one proof of several: a password, a code or a recovery code).
    """

    target_class = "users.api.serializers.StrictInputSerializer"
    match_subclasses = True

    def get_name(self, auto_schema, direction):
        """A nested serializer of a PATCH body is partial too (DRF passes partial down): its own component."""
        if direction == "request" and auto_schema.method == "PATCH" and self.target.parent is not None:
            return "Patched" + self.target.__class__.__name__.removesuffix("Serializer")
        return None

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request" and auto_schema.method == "PATCH":
            schema.pop("required", None)
        schema["additionalProperties"] = False
        properties = schema.get("properties", {})
        for name, field in self.target.fields.items():
            if name not in properties or not isinstance(field, serializers.CharField):
                continue
            if isinstance(field, PasswordField):
                description = properties[name].get("description")
                properties[name] = _password_schema()
                if description:
                    properties[name]["description"] = description
            _refuse_nul(properties[name])
        any_of = getattr(self.target, "schema_any_of", None)
        if any_of:
            schema["anyOf"] = [{"required": list(names)} for names in any_of]
        one_of = getattr(self.target, "schema_one_of", None)
        if one_of:
            schema["oneOf"] = [{"required": list(names)} for names in one_of]
        return schema


def _refuse_nul(schema: dict) -> None:
    """Add the no-NUL pattern to a string schema (or to the string branches of a oneOf) that has none."""
    for branch in schema.get("oneOf", [schema]):
        if branch.get("type") == "string" and "pattern" not in branch and branch.get("maxLength") != 0:
            branch["pattern"] = NO_NUL


class ClosedProfileExtension(ClosedObjectExtension):
    """Role profiles (and the people built on them) list every key they return, so ``oneOf`` picks exactly one."""

    target_class = "users.api.serializers.RoleProfileSerializer"


class PhoneFieldExtension(OpenApiSerializerFieldExtension):
    """A phone number: its length is the field's (the model's), its shape the one the service checks."""

    target_class = "users.api.people_serializers.PhoneField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "maxLength": self.target.max_length, "pattern": rf"^(?:{PHONE_PATTERN})?$"}


class UserTypeFieldExtension(OpenApiSerializerFieldExtension):
    """``user_type`` of the users collection's create: its numbers, as integers or as strings."""

    target_class = "users.api.directory_serializers.UserTypeField"

    def map_serializer_field(self, auto_schema, direction):
        values = [choice.value for choice in self.target.choices]
        return {
            "oneOf": [
                {"type": "integer", "enum": values},
                {"type": "string", "enum": [str(value) for value in values]},
            ],
            "description": ", ".join(f"{choice.value} {choice.label}" for choice in self.target.choices),
        }


class AnyOfProxySerializer(PolymorphicProxySerializer):
    """A body in one of several closed forms that may overlap (a partial change fits every form that has its keys):
    stated as ``anyOf``, where ``PolymorphicProxySerializer`` states ``oneOf``."""


class AnyOfProxyExtension(PolymorphicProxySerializerExtension):
    target_class = "users.api.schema.AnyOfProxySerializer"

    def map_serializer(self, auto_schema, direction):
        schema = super().map_serializer(auto_schema, direction)
        schema["anyOf"] = schema.pop("oneOf")
        return schema


class BoundedFilterExtension(DjangoFilterExtension):
    """django-filter parameters with the bounds their form fields enforce (min/max value, max length)."""

    priority = 1

    def resolve_filter_field(self, auto_schema, model, filterset_class, field_name, filter_field):
        parameters = super().resolve_filter_field(auto_schema, model, filterset_class, field_name, filter_field)
        field = filter_field.field
        bounds = {
            "minimum": getattr(field, "min_value", None),
            "maximum": getattr(field, "max_value", None),
            "maxLength": getattr(field, "max_length", None),
        }
        extra = getattr(field, "schema_extra", {})
        for parameter in parameters:
            schema = parameter["schema"]
            target = schema.get("items", schema) if schema.get("type") == "array" else schema
            for key, value in bounds.items():
                if value is not None and (key == "maxLength") == (target.get("type") == "string"):
                    target[key] = value
            target.update(extra)
            if isinstance(filter_field, django_filters.OrderingFilter) and "enum" in target:
                target["enum"] = [*target["enum"], ""]  # an empty element (``username,``) is ignored
            if target.get("type") == "string" and "enum" not in target:
                if "format" in target:  # an empty value means "no filter", as for every optional filter
                    parameter["schema"] = {"oneOf": [schema, {"type": "string", "maxLength": 0}]}
                elif "pattern" not in target:
                    target["pattern"] = NO_NUL
        return parameters


def postprocess_http_limits(result: dict, generator, request, public: bool) -> dict:
    """Positive path ids; 413 on every operation with a body; 414 on every operation with a query string."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            parameters = operation.get("parameters", [])
            for parameter in parameters:
                if parameter.get("in") == "path" and parameter["schema"].get("type") == "integer":
                    parameter["schema"].setdefault("minimum", 1)
                    parameter["schema"].setdefault("maximum", MAX_DB_BIGINT)
            responses = operation["responses"]
            if "requestBody" in operation and "413" not in responses:
                responses["413"] = {
                    "description": _DESCRIPTIONS[413],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            if any(parameter.get("in") == "query" for parameter in parameters):
                responses.setdefault("414", REQUEST_LINE_TOO_LONG)
            operation["responses"] = dict(sorted(responses.items()))
    return result


# drf-spectacular loads its extensions' target classes lazily, on the first generation in a process, and two threads
# doing that at once crash one of them (one sets a missing optional class to None while the other still reads its
# name). One generation at a time per process avoids it; the schema is the same for every caller.
_generation = threading.Lock()


class SchemaView(SpectacularAPIView):
    """``/api/schema/``: drf-spectacular's view, generating one schema at a time per process."""

    schema = None  # not an operation of the API it describes

    def get(self, request, *args, **kwargs):
        with _generation:
            return super().get(request, *args, **kwargs)
