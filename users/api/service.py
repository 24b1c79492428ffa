"""Endpoints for sibling services: client-credentials tokens, introspection, bulk lookups, revocations."""

from datetime import UTC, datetime

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from clients.claims import AMR, claims_amr
from users import cache, tokens
from users.api import parsers
from users.api.permissions import HasServiceScope, IsService, IsStaffOrHOD
from users.api.schema import errors
from users.api.serializers import StrictInputSerializer, UserSerializer
from users.api.throttles import PublicEndpointThrottle
from users.api.views import PublicAPIView
from users.authentication import LEGACY_READ_AUTHENTICATION
from users.exceptions import TokenInvalid
from users.http import client_credentials, client_ip
from users.principal import ServicePrincipal, principal_resolve
from users.selectors import users_public_json_rows
from users.services.revocations import revocations_since
from users.services.service_accounts import service_token_issue

FORM_OR_JSON = [parsers.JSONParser, parsers.FormParser]
MAX_BULK_IDS = 1000
MAX_ID = 2**63 - 1
EPOCH_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z: the range datetime can hold
EPOCH_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z


class ServiceTokenInputSerializer(serializers.Serializer):
    grant_type = serializers.ChoiceField(choices=["client_credentials"], required=False)
    client_id = serializers.CharField(max_length=64, required=False)
    client_secret = serializers.CharField(max_length=256, required=False, trim_whitespace=False)


class ServiceTokenView(PublicAPIView):
    parser_classes = FORM_OR_JSON
    throttle_classes = [PublicEndpointThrottle]
    throttle_scope = "service_token"

    @extend_schema(
        tags=["services"],
        summary="Client-credentials grant: a short-lived service token",
        description="Credentials as JSON or form fields `client_id` + `client_secret`, or HTTP Basic.",
        request=ServiceTokenInputSerializer,
        responses={
            200: inline_serializer(
                name="ServiceTokenResponse",
                fields={
                    "access_token": serializers.CharField(),
                    "token_type": serializers.CharField(),
                    "expires_in": serializers.IntegerField(),
                    "scope": serializers.CharField(),
                },
            ),
            **errors(400, 401, 415, 429),
        },
    )
    def post(self, request):
        data = ServiceTokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        client_id, client_secret = client_credentials(request, data.validated_data)
        issued = service_token_issue(client_id=client_id, client_secret=client_secret, ip=client_ip(request))
        return Response(issued.response_body, headers={"Cache-Control": "no-store"})


class IntrospectInputSerializer(StrictInputSerializer):
    token = serializers.CharField(max_length=8192)
    token_type_hint = serializers.CharField(max_length=32, required=False, allow_blank=True, help_text="Ignored.")


class IntrospectView(APIView):
    parser_classes = FORM_OR_JSON
    permission_classes = [HasServiceScope("tokens:introspect")]

    @extend_schema(
        tags=["services"],
        summary="Token introspection (RFC 7662)",
        description=(
            '`{"active": false}` for anything invalid, expired or revoked; otherwise the claims. A person\'s token '
            'reports `amr` (RFC 8176; `["pwd"]` for a token minted before the claim existed) and `auth_time`.'
        ),
        request=IntrospectInputSerializer,
        responses={200: OpenApiTypes.OBJECT, **errors(400, 401, 403, 415)},
    )
    def post(self, request):
        data = IntrospectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        raw = data.validated_data["token"]
        try:
            principal = principal_resolve(raw, token_types=(tokens.ACCESS, tokens.SERVICE))
        except TokenInvalid:
            return Response({"active": False})
        claims = dict(principal.claims)
        if isinstance(principal, ServicePrincipal):
            claims["client_id"] = principal.client_id
            claims["scope"] = " ".join(claims["scope"])  # RFC 7662: space-separated, in the token's order
        else:
            claims[AMR] = claims_amr(claims)  # a token minted before the claim existed: a password alone
        return Response({"active": True, **claims})


class BulkInfoInputSerializer(StrictInputSerializer):
    user_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), max_length=MAX_BULK_IDS, allow_empty=True
    )


class BulkInfoView(APIView):
    authentication_classes = LEGACY_READ_AUTHENTICATION
    permission_classes = [IsStaffOrHOD | HasServiceScope("users:read")]

    @extend_schema(
        tags=["services"],
        summary=f"Users by id, in one query (at most {MAX_BULK_IDS} ids; unknown ids are absent)",
        request=BulkInfoInputSerializer,
        responses={200: UserSerializer(many=True), **errors(400, 401, 403, 415)},
    )
    def post(self, request):
        user_ids = _plain_ids(request.data)
        if user_ids is None:  # anything unusual gets the serializer's exact validation and errors
            data = BulkInfoInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            user_ids = data.validated_data["user_ids"]
        body = cache.users_public_json_get(user_ids, load=users_public_json_rows)
        return HttpResponse(body, content_type="application/json")


def _plain_ids(data) -> list[int] | None:
    """The ids of the usual body, ``{"user_ids": [int, ...]}`` within bounds, checked in one pass; else None.

    The serializer validates each of up to a thousand ids through DRF's field machinery, one at a time;
    this accepts exactly the bodies it would accept unchanged and leaves every other one to it.
    """
    if type(data) is not dict or data.keys() != {"user_ids"}:
        return None
    ids = data["user_ids"]
    if type(ids) is not list or len(ids) > MAX_BULK_IDS:
        return None
    if not all(type(i) is int and 0 < i <= MAX_ID for i in ids):
        return None
    return ids


class RevocationsView(APIView):
    permission_classes = [IsService]

    @extend_schema(
        tags=["services"],
        summary="Ended session ids and deactivated user ids since a cursor",
        description=(
            "Poll with the returned `cursor` as `since`. Entries may repeat (treat them as a set). "
            "Only revocations within the access-token lifetime are returned; older ones cannot matter."
        ),
        parameters=[
            OpenApiParameter(
                "since",
                {"type": "number", "minimum": EPOCH_MIN_SECONDS, "maximum": EPOCH_MAX_SECONDS},
                description="Cursor: epoch seconds (years 1 to 9999).",
            )
        ],
        responses={
            200: inline_serializer(
                name="Revocations",
                fields={
                    "session_ids": serializers.ListField(child=serializers.UUIDField()),
                    "user_ids": serializers.ListField(child=serializers.IntegerField()),
                    "cursor": serializers.FloatField(),
                    "truncated": serializers.BooleanField(),
                },
            ),
            **errors(400, 401, 403),
        },
    )
    def get(self, request):
        since = request.query_params.get("since")
        try:
            since_at = None if since in (None, "") else datetime.fromtimestamp(float(since), tz=UTC)
        except (ValueError, OverflowError, OSError):
            return Response(
                {"detail": "since must be a number of epoch seconds.", "code": "invalid"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        feed = revocations_since(since=since_at)
        return Response(
            {
                "session_ids": feed.session_ids,
                "user_ids": feed.user_ids,
                "cursor": feed.cursor.timestamp(),
                "truncated": feed.truncated,
            }
        )
