"""OpenAPI helpers: the error body and the error responses every view declares."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

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
    415: "Unsupported media type (send JSON).",
    429: "Too many requests; see Retry-After.",
    503: "A dependency (database, or Redis for ending sessions) is unavailable; nothing was changed; see Retry-After.",
}


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
