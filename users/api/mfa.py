"""Second factors: the caller's factors, enrolment, recovery codes, the second step of a login, reauthentication,
and an HOD's reset of another person's factors. Parse, call a service (``users.services.mfa``, ``login``,
``reauth``), shape the answer.

The enrolment endpoints (``GET mfa/``, ``POST mfa/totp/``, ``POST mfa/totp/confirm/``) also take an enrolment
``mfa_token`` as the bearer token, for the methods each lists in ``mfa_token_methods``.
"""

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from users.api.permissions import IsHOD, IsPerson, MfaTokenScope, recent_authentication_require
from users.api.schema import errors
from users.api.serializers import StrictInputSerializer, TokenResponseSerializer
from users.api.throttles import PublicEndpointThrottle
from users.api.views import NO_STORE, PublicAPIView, login_respond
from users.api.webauthn_serializers import AssertionSerializer, PasskeySerializer, credential_json
from users.authentication import ENROLMENT_AUTHENTICATION
from users.exceptions import NotFound
from users.http import client_ip, user_agent
from users.models import CustomUser
from users.services import mfa
from users.services.login import mfa_required_for, second_factor_login
from users.services.reauth import PASSWORD_FIELD, reauthenticate

ENROLMENT_PERMISSIONS = [IsPerson, MfaTokenScope]


def _code_field(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(
        r"^[0-9]{6}$", max_length=6, help_text="The 6-digit code the authenticator app shows now.", **kwargs
    )


def _recovery_code_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        max_length=64, help_text="One of the recovery codes (case, spaces and dashes do not matter).", **kwargs
    )


class TOTPStatusSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="Confirmed: logins ask for its code.")
    pending = serializers.BooleanField(help_text="Set up but not confirmed yet (POST mfa/totp/confirm/).")
    confirmed_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class RecoveryCodesStatusSerializer(serializers.Serializer):
    remaining = serializers.IntegerField(help_text="Unused recovery codes.")
    created_at = serializers.DateTimeField(allow_null=True)


class MfaStatusSerializer(serializers.Serializer):
    methods = serializers.ListField(
        child=serializers.CharField(), help_text="The methods that can complete a login now (empty: a password alone)."
    )
    # The JSON key; DRF's metaclass takes declared fields off the class, so Field.required is not shadowed.
    required = serializers.BooleanField(  # type: ignore[assignment]
        help_text="Whether the caller's role must have a second factor."
    )
    totp = TOTPStatusSerializer()
    recovery_codes = RecoveryCodesStatusSerializer()
    webauthn = PasskeySerializer(many=True, help_text="The caller's passkeys and security keys.")


class TOTPEnrolmentSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32 secret, for typing into an app by hand.")
    otpauth_uri = serializers.CharField(help_text="otpauth://totp/... (what the QR code holds).")
    qr_svg = serializers.CharField(help_text="The QR code of otpauth_uri as a standalone SVG document.")


class RecoveryCodesSerializer(serializers.Serializer):
    recovery_codes = serializers.ListField(
        child=serializers.CharField(),
        help_text="Shown this once: store them somewhere safe. Empty when confirming a factor while earlier codes "
        "are still unused (they stay valid).",
    )


class CodeInputSerializer(StrictInputSerializer):
    code = _code_field()


class LoginMfaInputSerializer(StrictInputSerializer):
    """The second step of a login: the mfa_token and exactly one proof."""

    schema_one_of = (("mfa_token", "code"), ("mfa_token", "recovery_code"), ("mfa_token", "webauthn"))

    mfa_token = serializers.CharField(max_length=256, help_text="From the 401 mfa_required answer of login/.")
    code = _code_field(required=False)
    recovery_code = _recovery_code_field(required=False)
    webauthn = AssertionSerializer(
        required=False, help_text="A passkey's answer to the options of POST login/mfa/webauthn/options/."
    )

    def validate(self, attrs: dict) -> dict:
        return _one_proof(super().validate(attrs), fields=tuple(f for f in mfa.proof_fields() if f in self.fields))


class ReauthenticateInputSerializer(StrictInputSerializer):
    """Exactly one proof: the password, a code from the authenticator app, a recovery code, or a passkey."""

    schema_one_of = (("password",), ("code",), ("recovery_code",), ("webauthn",))

    password = serializers.CharField(max_length=4096, required=False, write_only=True, trim_whitespace=False)
    code = _code_field(required=False)
    recovery_code = _recovery_code_field(required=False)
    webauthn = AssertionSerializer(
        required=False, help_text="A passkey's answer to the options of POST reauthenticate/webauthn/options/."
    )

    def validate(self, attrs: dict) -> dict:
        proofs = (PASSWORD_FIELD, *(f for f in mfa.proof_fields() if f in self.fields))
        return _one_proof(super().validate(attrs), fields=proofs)


class ReauthenticatedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds during which sensitive changes are allowed.")


class MfaResetInputSerializer(StrictInputSerializer):
    """No fields: the person is the one in the path."""


class MfaResetSerializer(serializers.Serializer):
    detail = serializers.CharField()
    removed = serializers.ListField(child=serializers.CharField(), help_text="The methods removed.")


def _one_proof(attrs: dict, *, fields: tuple[str, ...]) -> dict:
    if len([name for name in fields if name in attrs]) != 1:
        raise serializers.ValidationError(f"Give exactly one of {', '.join(fields)}.")
    return attrs


def _proof(attrs: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[str, Any]:
    field = next(name for name in fields if name in attrs)
    return field, credential_json(attrs[field])


def _second_step_arguments(data: Mapping[str, Any]) -> dict[str, Any]:
    proof_field, proof = _proof(data, mfa.proof_fields())
    return {"mfa_token": data["mfa_token"], "proof_field": proof_field, "proof": proof}


class MfaStatusView(APIView):
    authentication_classes = ENROLMENT_AUTHENTICATION
    permission_classes = ENROLMENT_PERMISSIONS
    mfa_token_methods = ("GET",)

    @extend_schema(
        tags=["mfa"],
        summary="The caller's second factors (bearer, or an enrolment mfa_token)",
        responses={200: MfaStatusSerializer, **errors(401, 403)},
    )
    def get(self, request):
        user = request.user
        body = {
            "methods": mfa.methods_for(user),
            "required": mfa_required_for(user),
            **mfa.factors_summary(user),
        }
        return Response(MfaStatusSerializer(body).data, headers=NO_STORE)


class TOTPView(APIView):
    authentication_classes = ENROLMENT_AUTHENTICATION
    permission_classes = ENROLMENT_PERMISSIONS
    mfa_token_methods = ("POST",)

    @extend_schema(
        tags=["mfa"],
        summary="Set up an authenticator app: a new pending secret (bearer, or an enrolment mfa_token)",
        description="Starting again replaces a pending secret. Confirm with POST mfa/totp/confirm/. One app per "
        "person: 409 `totp_already_enrolled` while one is confirmed.",
        request=None,
        responses={201: TOTPEnrolmentSerializer, **errors(401, 403, 409)},
    )
    def post(self, request):
        enrolment = mfa.totp_enrol_begin(user=request.user)
        body = {"secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri, "qr_svg": enrolment.qr_svg}
        return Response(body, status=status.HTTP_201_CREATED, headers=NO_STORE)

    @extend_schema(
        tags=["mfa"],
        summary="Remove the authenticator app (bearer; needs a recent authentication)",
        description="Removing the last factor removes the recovery codes too. 403 `reauthentication_required` "
        "without a login or reauthenticate/ within REAUTH_SECONDS.",
        responses={204: OpenApiResponse(description="Removed."), **errors(401, 403, 404)},
    )
    def delete(self, request):
        recent_authentication_require(request)
        mfa.totp_remove(user=request.user, ip=client_ip(request), user_agent=user_agent(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TOTPConfirmView(APIView):
    authentication_classes = ENROLMENT_AUTHENTICATION
    permission_classes = ENROLMENT_PERMISSIONS
    mfa_token_methods = ("POST",)

    @extend_schema(
        tags=["mfa"],
        summary="Confirm the pending authenticator app with a code from it (bearer, or an enrolment mfa_token)",
        description="Answers the recovery codes, shown this once. With an enrolment mfa_token, complete the login "
        "next with POST login/mfa/ and the app's next code (a code is accepted once).",
        request=CodeInputSerializer,
        responses={200: RecoveryCodesSerializer, **errors(400, 401, 403, 409, 415)},
    )
    def post(self, request):
        data = CodeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        codes = mfa.totp_enrol_confirm(
            user=request.user, code=data.validated_data["code"], ip=client_ip(request), user_agent=user_agent(request)
        )
        return Response({"recovery_codes": codes}, headers=NO_STORE)


class RecoveryCodesView(APIView):
    @extend_schema(
        tags=["mfa"],
        summary="Create a new set of recovery codes; the earlier ones stop working (needs a recent authentication)",
        request=None,
        responses={200: RecoveryCodesSerializer, **errors(401, 403, 409)},
    )
    def post(self, request):
        recent_authentication_require(request)
        codes = mfa.recovery_codes_regenerate(user=request.user, ip=client_ip(request), user_agent=user_agent(request))
        return Response({"recovery_codes": codes}, headers=NO_STORE)


class LoginMfaView(PublicAPIView):
    throttle_classes = [PublicEndpointThrottle]
    throttle_scope = "login"

    @extend_schema(
        tags=["auth"],
        summary="Second step of a login: the mfa_token and a code, a recovery code or a passkey's assertion",
        description="Answers like login/. A wrong code is 401 `invalid_code` and counts toward the account's "
        "lockout like a wrong password (so does a passkey's assertion that does not check out: get its "
        "options from POST login/mfa/webauthn/options/); the mfa_token stays usable until it expires or completes "
        "a login. "
        "A used, expired or unknown mfa_token is 401 `mfa_token_invalid`; an enrolment mfa_token before a factor "
        "is confirmed is 409 `mfa_not_enrolled`. A login with a recovery code e-mails the person.",
        request=LoginMfaInputSerializer,
        responses={200: TokenResponseSerializer, **errors(400, 401, 409, 415, 429)},
    )
    def post(self, request):
        return login_respond(
            request,
            input_serializer=LoginMfaInputSerializer,
            login=second_factor_login,
            arguments=_second_step_arguments,
        )


class ReauthenticateView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="Confirm it is you (password, code, recovery code or passkey) before a sensitive change",
        description="Marks the caller's session: for REAUTH_SECONDS, changing the e-mail or password, removing a "
        "factor, regenerating recovery codes, resetting someone's factors and creating an HOD are allowed. A wrong "
        "password or code is 400 (`invalid_password`, `invalid_code`) and counts toward the lockout.",
        request=ReauthenticateInputSerializer,
        responses={200: ReauthenticatedSerializer, **errors(400, 401, 403, 415, 429)},
    )
    def post(self, request):
        data = ReauthenticateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        proof_field, proof = _proof(data.validated_data, (PASSWORD_FIELD, *mfa.proof_fields()))
        reauthenticate(
            user=request.user,
            session_id=request.auth["sid"],
            proof_field=proof_field,
            proof=proof,
            ip=client_ip(request),
            user_agent=user_agent(request),
        )
        return Response({"detail": "Confirmed.", "expires_in": settings.REAUTH_SECONDS})


class MfaResetView(APIView):
    permission_classes = [IsHOD]

    @extend_schema(
        tags=["mfa"],
        summary="Remove another person's second factors (HOD; needs a recent authentication)",
        description="`{id}` is the user id. Their authenticator app and recovery codes are removed, their sessions "
        "and pending logins end, the reset is audited and they get an e-mail. Your own: 409 `mfa_reset_self`.",
        request=MfaResetInputSerializer,
        responses={200: MfaResetSerializer, **errors(400, 401, 403, 404, 409, 415, 503)},
    )
    def post(self, request, pk: int):
        MfaResetInputSerializer(data=request.data).is_valid(raise_exception=True)
        recent_authentication_require(request)
        user = CustomUser.objects.filter(pk=pk).first()
        if user is None:
            raise NotFound("No user with this id.")
        removed = mfa.mfa_reset(user=user, actor=request.user, ip=client_ip(request), user_agent=user_agent(request))
        return Response({"detail": "Their second factors are removed and their sessions ended.", "removed": removed})
