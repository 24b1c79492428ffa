"""Passkeys: registering and removing them, their options for the second step of a login and for reauthentication,
and the passwordless sign-in. Parse, call a service (``users.services.mfa.webauthn``, ``login``), shape the answer.

Every ceremony is two calls: ``.../options/`` answers what the browser passes to ``navigator.credentials.create()``
or ``.get()`` (``PublicKeyCredential.parseCreationOptionsFromJSON`` / ``parseRequestOptionsFromJSON`` take it as is),
then the browser's answer (``credential.toJSON()``) goes to the matching endpoint.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from users.api.mfa import ENROLMENT_PERMISSIONS
from users.api.permissions import recent_authentication_require
from users.api.schema import errors
from users.api.serializers import TokenResponseSerializer
from users.api.throttles import PublicEndpointThrottle
from users.api.views import LOGIN_REFUSED, NO_STORE, PublicAPIView, login_respond
from users.api.webauthn_serializers import (
    MfaTokenInputSerializer,
    PasskeyLoginInputSerializer,
    PasskeyRegisteredSerializer,
    PasskeyRegisterInputSerializer,
    credential_json,
)
from users.authentication import ENROLMENT_AUTHENTICATION
from users.http import client_ip, user_agent
from users.services import mfa
from users.services.credentials import Channel
from users.services.login import passkey_login
from users.services.mfa import webauthn

CREATION_OPTIONS = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="PublicKeyCredentialCreationOptions as JSON (binary values base64url): rp, user, challenge, "
    "pubKeyCredParams, timeout, excludeCredentials, authenticatorSelection (userVerification required).",
)
REQUEST_OPTIONS = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="PublicKeyCredentialRequestOptions as JSON (binary values base64url): challenge, timeout, rpId, "
    "allowCredentials, userVerification (required).",
)


class PasskeyRegisterOptionsView(APIView):
    authentication_classes = ENROLMENT_AUTHENTICATION
    permission_classes = ENROLMENT_PERMISSIONS
    mfa_token_methods = ("POST",)

    @extend_schema(
        tags=["mfa"],
        summary="Start registering a passkey: options for navigator.credentials.create() (bearer, or an enrolment "
        "mfa_token)",
        description="The challenge is single use and lives three minutes. 409 `webauthn_limit` at 20 passkeys.",
        request=None,
        responses={200: CREATION_OPTIONS, **errors(401, 403, 409)},
    )
    def post(self, request):
        return Response(webauthn.registration_options(user=request.user), headers=NO_STORE)


class PasskeyRegisterView(APIView):
    authentication_classes = ENROLMENT_AUTHENTICATION
    permission_classes = ENROLMENT_PERMISSIONS
    mfa_token_methods = ("POST",)

    @extend_schema(
        tags=["mfa"],
        summary="Finish registering a passkey: the browser's answer (bearer, or an enrolment mfa_token)",
        description="`credential` is `credential.toJSON()` of navigator.credentials.create(). An answer that does "
        "not check out (another origin, no user verification, a challenge expired, used or not yours) is 400 "
        "`webauthn_invalid` or `webauthn_challenge_invalid`. A person's first factor also answers the recovery "
        "codes; with an enrolment mfa_token, complete the login next with POST login/mfa/webauthn/options/ and "
        "POST login/mfa/.",
        request=PasskeyRegisterInputSerializer,
        responses={201: PasskeyRegisteredSerializer, **errors(400, 401, 403, 409, 415)},
    )
    def post(self, request):
        data = PasskeyRegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        registered = webauthn.registration_verify(
            user=request.user,
            credential=credential_json(data.validated_data["credential"]),
            name=data.validated_data.get("name", ""),
            ip=client_ip(request),
            user_agent=user_agent(request),
        )
        passkey = next(p for p in webauthn.WEBAUTHN.summary(request.user) if p["id"] == registered.credential.pk)
        body = PasskeyRegisteredSerializer({**passkey, "recovery_codes": registered.recovery_codes}).data
        return Response(body, status=status.HTTP_201_CREATED, headers=NO_STORE)


class PasskeyView(APIView):
    @extend_schema(
        tags=["mfa"],
        summary="Remove one of your passkeys (bearer; needs a recent authentication)",
        description="`{id}` is the id from GET mfa/. Removing the last factor removes the recovery codes too. 403 "
        "`reauthentication_required` without a login or reauthenticate/ within REAUTH_SECONDS.",
        responses={204: OpenApiResponse(description="Removed."), **errors(401, 403, 404)},
    )
    def delete(self, request, pk: int):
        recent_authentication_require(request)
        webauthn.credential_remove(
            user=request.user, credential_pk=pk, ip=client_ip(request), user_agent=user_agent(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class LoginMfaPasskeyOptionsView(PublicAPIView):
    throttle_classes = [PublicEndpointThrottle]
    throttle_scope = "login"

    @extend_schema(
        tags=["auth"],
        summary="Options for the second step of a login with a passkey (the mfa_token of login/)",
        description="Answers the options for navigator.credentials.get() limited to the person's passkeys; send "
        "the answer to POST login/mfa/ as `webauthn` with the same mfa_token. 401 `mfa_token_invalid`; 409 "
        "`webauthn_not_enrolled` when the account has no passkey.",
        request=MfaTokenInputSerializer,
        responses={200: REQUEST_OPTIONS, **errors(400, 401, 409, 415, 429)},
    )
    def post(self, request):
        data = MfaTokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        challenge = mfa.challenge_get(data.validated_data["mfa_token"], channel=Channel.API.value)
        return Response(webauthn.second_factor_options(challenge=challenge), headers=NO_STORE)


class PasskeyLoginOptionsView(PublicAPIView):
    throttle_classes = [PublicEndpointThrottle]
    throttle_scope = "login"

    @extend_schema(
        tags=["auth"],
        summary="Start a passwordless sign-in: options for navigator.credentials.get()",
        description="No account is named: the authenticator offers its discoverable passkeys for this site.",
        request=None,
        responses={200: REQUEST_OPTIONS, **errors(429)},
    )
    def post(self, request):
        return Response(webauthn.passwordless_options(), headers=NO_STORE)


class PasskeyLoginView(PublicAPIView):
    throttle_classes = [PublicEndpointThrottle]
    throttle_scope = "login"

    @extend_schema(
        tags=["auth"],
        summary="Passwordless sign-in with a passkey (user verification required; counts as two factors)",
        description="`credential` is `credential.toJSON()` of navigator.credentials.get() with the options of "
        "login/webauthn/options/. Answers like login/, with `amr` [hwk, user, mfa]. Anything wrong is 401 "
        "`invalid_credentials` and counts toward the account's (and the IP's) lockout like a wrong password.",
        request=PasskeyLoginInputSerializer,
        responses={200: TokenResponseSerializer, 401: LOGIN_REFUSED, **errors(400, 403, 415, 429)},
    )
    def post(self, request):
        return login_respond(
            request,
            input_serializer=PasskeyLoginInputSerializer,
            login=passkey_login,
            arguments=lambda data: {"credential": credential_json(data["credential"])},
        )


class ReauthenticatePasskeyOptionsView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="Options for confirming it is you with a passkey (then POST reauthenticate/ with `webauthn`)",
        description="Bound to the caller's session. 409 `webauthn_not_enrolled` without a passkey.",
        request=None,
        responses={200: REQUEST_OPTIONS, **errors(401, 403, 409)},
    )
    def post(self, request):
        options = webauthn.reauthentication_options(user=request.user, session_id=request.auth["sid"])
        return Response(options, headers=NO_STORE)
