"""Authentication, profile, session and token-validation endpoints: parse, call a service, shape output."""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.http import JsonResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from clients.claims import AUTH_TIME, claims_amr
from users import metrics
from users.api import serializers as s
from users.api.people import user_detail_data
from users.api.permissions import email_change_step_up, recent_authentication_require
from users.api.schema import errors
from users.api.throttles import PublicEndpointThrottle
from users.authentication import bearer_token_from
from users.exceptions import MfaEnrolmentRequired, MfaRequired, TokenInvalid
from users.http import client_ip, user_agent
from users.principal import principal_resolve
from users.selectors import session_apps, sessions_active_for, users_with_profiles
from users.services import auth as auth_services
from users.services import login as login_services
from users.services import people as people_services
from users.services import users as user_services
from users.services.auth import Login
from users.services.credentials import Channel
from users.services.login import LoginOutcome, LoginPending, Step

NO_STORE = {"Cache-Control": "no-store"}
LOGIN_REFUSED = OpenApiResponse(
    s.LoginRefusedSerializer,
    description="Wrong credentials (`invalid_credentials`), or a second step is needed (`mfa_required`, "
    "`mfa_enrolment_required`: with `mfa_token`, `methods`, `expires_in`).",
)


def login_answer(outcome: LoginOutcome) -> Response:
    """The API's answer to a login: the tokens, or 401 ``mfa_required``/``mfa_enrolment_required`` with the
    ``mfa_token`` that carries the login to its second step."""
    if isinstance(outcome, LoginPending):
        error = MfaEnrolmentRequired if outcome.step is Step.ENROLMENT else MfaRequired
        detail = (
            "Your role needs a second factor: set one up with the mfa_token as bearer token (POST mfa/totp/), "
            "then complete the login with POST login/mfa/."
            if outcome.step is Step.ENROLMENT
            else "Enter a code from your authenticator app (or a recovery code) with POST login/mfa/."
        )
        raise error(
            detail,
            extra={"mfa_token": outcome.mfa_token, "methods": outcome.methods, "expires_in": outcome.expires_in},
        )
    assert outcome.session is not None  # noqa: S101 - the API's logins always open a session
    return Response(_token_response(outcome.session), headers=NO_STORE)


def login_respond(
    request: Request,
    *,
    input_serializer: type[BaseSerializer],
    login: Callable[..., LoginOutcome],
    arguments: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> Response:
    """An API login view's whole work: parse the body with ``input_serializer``, call the ``login`` service (of
    ``users.services.login``) with ``arguments(validated_data)`` on the API channel with the caller's IP and user
    agent, and answer ``login_answer`` (the tokens, or the 401 of a second step)."""
    data = input_serializer(data=request.data)
    data.is_valid(raise_exception=True)
    outcome = login(
        **arguments(data.validated_data), channel=Channel.API, ip=client_ip(request), user_agent=user_agent(request)
    )
    return login_answer(outcome)


def _token_response(login: Login, *, user: dict | None = None) -> dict:
    """The login and refresh answer; ``user``: the person's JSON if the caller has it (else from ``login.user``)."""
    metrics.TOKENS_ISSUED.labels(type="access").inc()
    metrics.TOKENS_ISSUED.labels(type="refresh").inc()
    return {
        "access_token": login.tokens.access_token,
        "refresh_token": login.tokens.refresh_token,
        "token_type": "Bearer",
        "expires_in": login.tokens.expires_in,
        "user": user or s.UserWithProfileSerializer(login.user).data,
    }


class PublicAPIView(APIView):
    """An endpoint anyone may call: no authentication is attempted, so a stale header cannot fail it."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []  # public views opt into a scoped throttle (users/api/throttles.py)


class RegisterView(PublicAPIView):
    throttle_classes = [PublicEndpointThrottle]
    throttle_scope = "register"

    @extend_schema(
        tags=["auth"],
        summary="Register a Student account",
        request=s.RegisterInputSerializer,
        responses={201: s.UserWithProfileSerializer, **errors(400, 403, 415, 429)},
    )
    def post(self, request):
        data = s.RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = {k: v for k, v in data.validated_data.items() if k != "user_type"}
        user = user_services.user_register(**fields)
        user = users_with_profiles().get(pk=user.pk)
        return Response(s.UserWithProfileSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginView(PublicAPIView):
    throttle_classes = [PublicEndpointThrottle]
    throttle_scope = "login"

    @extend_schema(
        tags=["auth"],
        summary="Log in with username or e-mail and password",
        description=(
            "A wrong password (or anything else wrong) is 401 `invalid_credentials`. A right password for an "
            "account that needs a second factor is 401 `mfa_required` (or `mfa_enrolment_required`: the role needs "
            "one and none is set up yet) with an `mfa_token` and the `methods` that can finish the login at "
            "`login/mfa/`; no tokens."
        ),
        request=s.LoginInputSerializer,
        responses={200: s.TokenResponseSerializer, 401: LOGIN_REFUSED, **errors(400, 403, 415, 429)},
    )
    def post(self, request):
        return login_respond(
            request,
            input_serializer=s.LoginInputSerializer,
            login=login_services.password_login,
            arguments=lambda data: {"identifier": data["username"], "password": data["password"]},
        )


class TokenRefreshView(PublicAPIView):
    throttle_classes = [PublicEndpointThrottle]
    throttle_scope = "refresh"

    @extend_schema(
        tags=["auth"],
        summary="Exchange a refresh token for a new token pair (rotation)",
        description="The refresh token is single-use: presenting a used one again ends its whole session.",
        request=s.RefreshInputSerializer,
        responses={200: s.RefreshResponseSerializer, **errors(400, 401, 415, 429, 503)},
    )
    def post(self, request):
        data = s.RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        login = auth_services.tokens_refresh(refresh_token=data.validated_data["refresh_token"], ip=client_ip(request))
        # user/{id}/'s JSON of the person, cached per user: a refresh reads no profile from the database
        body = _token_response(login, user=user_detail_data(user_id=login.user.pk))
        if "refresh" in data.initial_data:  # sent as SimpleJWT's view takes it: answer SimpleJWT's names too
            body = {**body, "access": body["access_token"], "refresh": body["refresh_token"]}
        return Response(body)


class LogoutView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="End the current session (or every session with all=true)",
        request=s.LogoutInputSerializer,
        responses={204: OpenApiResponse(description="Logged out."), **errors(400, 401, 403, 415, 503)},
    )
    def post(self, request):
        data = s.LogoutInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        auth_services.user_logout(
            user=request.user,
            session_id=request.auth["sid"],
            refresh_token=data.validated_data.get("refresh_token"),
            everywhere=data.validated_data["all"],
            ip=client_ip(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProfileView(APIView):
    @extend_schema(
        tags=["profile"],
        summary="The caller's account and role profile",
        responses={200: s.UserWithProfileSerializer, **errors(401, 403)},
    )
    def get(self, request):
        user = users_with_profiles().get(pk=request.user.pk)
        return Response(s.UserWithProfileSerializer(user).data)

    @extend_schema(
        tags=["profile"],
        summary="Update the caller's own names, e-mail and editable profile fields",
        description="Fields the caller may not change (user_type, username, is_active, student_id, ...) give 400. "
        "A new e-mail address needs a recent authentication (login or reauthenticate/ within REAUTH_SECONDS): "
        "403 `reauthentication_required` otherwise.",
        request=s.ProfileUpdateInputSerializer,
        responses={200: s.UserWithProfileSerializer, **errors(400, 401, 403, 415)},
    )
    def patch(self, request):
        data = s.ProfileUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        profile_data = fields.pop("profile", {})
        email_change_step_up(request, user=request.user, email=fields.get("email"))
        user_services.profile_update(user=request.user, user_data=fields, profile_data=profile_data)
        user = users_with_profiles().get(pk=request.user.pk)
        return Response(s.UserWithProfileSerializer(user).data)


class ChangePasswordView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="Change the password; every other session ends",
        description="Needs a recent authentication (login or reauthenticate/ within REAUTH_SECONDS): "
        "403 `reauthentication_required` otherwise.",
        request=s.ChangePasswordInputSerializer,
        responses={200: s.DetailSerializer, **errors(400, 401, 403, 415, 503)},
    )
    def post(self, request):
        data = s.ChangePasswordInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        recent_authentication_require(request)
        people_services.password_change(
            user=request.user, **data.validated_data, current_session_id=request.auth["sid"]
        )
        return Response({"detail": "Password changed; your other sessions have been ended."})


class SessionListView(APIView):
    @extend_schema(
        tags=["sessions"],
        summary="The caller's open sessions",
        responses={200: s.SessionSerializer(many=True), **errors(401, 403)},
    )
    def get(self, request):
        sessions = list(sessions_active_for(user=request.user))
        apps = session_apps(session_ids=[session.id for session in sessions])
        context = {"current_session_id": request.auth["sid"], "apps": apps}
        return Response(s.SessionSerializer(sessions, many=True, context=context).data)


class SessionDetailView(APIView):
    @extend_schema(
        tags=["sessions"],
        summary="Revoke one of the caller's sessions",
        responses={204: OpenApiResponse(description="Session ended."), **errors(401, 403, 404, 503)},
    )
    def delete(self, request, session_id):
        auth_services.session_revoke(user=request.user, session_id=str(session_id), ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ValidateTokenView(PublicAPIView):
    """Checked here rather than by the authentication class so failures carry ``valid: false``.

    The hottest endpoint of the system (a gateway asks it for every request it serves), so GET skips
    DRF's request wrapping, negotiation and rendering: there is no authentication class, permission,
    throttle or body for DRF to apply, and the answer is always JSON. Other methods go through DRF.
    The verdict is the one verifier's (``principal_resolve``, as for every authenticated request), asked for
    the user's public data: one cache round trip and no SQL when warm.
    """

    @extend_schema(
        tags=["services"],
        summary="Validate a bearer access token (for other services)",
        responses={
            200: s.ValidateTokenResponseSerializer,
            401: OpenApiResponse(s.InvalidTokenResponseSerializer, description="Token missing, invalid or revoked."),
        },
    )
    def get(self, request):
        return self._validate(request)  # only reached through DRF's OPTIONS/HEAD handling and the schema

    def dispatch(self, request, *args, **kwargs):
        if request.method != "GET":
            return super().dispatch(request, *args, **kwargs)
        self.request, self.args, self.kwargs = request, args, kwargs
        return self._validate(request)

    def _validate(self, request) -> JsonResponse:
        try:
            raw = bearer_token_from(request)
            if raw is None:
                raise TokenInvalid("Authentication credentials were not provided.", code="not_authenticated")
            principal = principal_resolve(raw, load_user="data")
        except exceptions.AuthenticationFailed as exc:
            return self._invalid(str(exc.detail), "token_not_valid")
        except TokenInvalid as exc:
            return self._invalid(exc.message, exc.code)
        metrics.TOKENS_VALIDATED.labels("valid").inc()
        expires_at = datetime.fromtimestamp(principal.claims["exp"], tz=UTC)
        body = {
            "valid": True,
            "user": principal.user_data,
            "session_id": principal.session_id,
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            "amr": claims_amr(principal.claims),
            "auth_time": principal.claims.get(AUTH_TIME),
        }
        return JsonResponse(body, headers=NO_STORE)

    @staticmethod
    def _invalid(detail: str, code: str) -> JsonResponse:
        metrics.TOKENS_VALIDATED.labels(code).inc()
        return JsonResponse(
            {"valid": False, "detail": detail, "code": code},
            status=status.HTTP_401_UNAUTHORIZED,
            headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'},
        )
