"""The OpenID Connect endpoints a browser or a relying party calls: authorization (with consent) and token.

django-oauth-toolkit validates the request (client, exact redirect URI, response type, PKCE, scopes) once, and the
code is issued for that validated request (``users.services.oidc.server``); this view adds the sign-in
session (``users.web.signin``), ``prompt`` and ``max_age``, and consent (``users.services.oidc.consent``). An error
about the client or its redirect URI is shown as a page and never redirected (the redirect URI cannot be trusted);
any other error goes back to the client with ``state`` and ``iss``.
"""

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from oauth2_provider.exceptions import FatalClientError, OAuthToolkitError
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.models import Application
from oauth2_provider.oauth2_backends import _add_iss_to_redirect
from oauth2_provider.signals import app_authorized
from oauth2_provider.views import TokenView
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

from user_service.exceptions import error_status
from users.exceptions import ApplicationError
from users.http import client_credentials, client_ip
from users.models import CustomUser, UserSession
from users.services.oidc.clients import oidc_client_changed
from users.services.oidc.consent import consent_needed, consent_record
from users.services.service_accounts import service_token_issue
from users.services.throttle import CLIENT_CREDENTIALS_SCOPE, client_wait_seconds
from users.web.security import page_headers
from users.web.signin import SignIn, signin_get

# Parameters that force a new sign-in; they are dropped from the request the sign-in page returns to, which the
# new sign-in satisfies by being new.
FRESH_SIGN_IN_PARAMETERS = ("prompt", "max_age")


class _OAuthLib(OAuthLibMixin):
    """django-oauth-toolkit's configured oauthlib server (OpenID Connect) and its Django adapter."""


def _core() -> Any:
    return _OAuthLib.get_oauthlib_core()


def _code_issue(validated: OAuthRequest, *, user: CustomUser, session_id: str) -> str:
    """A code for a request oauthlib validated above (not validated again): the redirect URI with it, ``state`` and
    ``iss``."""
    validated.user = user
    validated.ums_sid = session_id
    return _core().server.authorization_code_response(validated, issuer=settings.JWT_ISSUER)


def _with_iss(uri: str) -> str:
    return _add_iss_to_redirect(uri, settings.JWT_ISSUER)


def _error_page(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    context = {"site_name": settings.SSO_SITE_NAME, "error": message}
    return render(request, "web/error.html", context, status=status)


def _back_to_client(uri: str, application: Application | None) -> HttpResponse:
    schemes = application.get_allowed_schemes() if application else list(settings.OIDC_REDIRECT_URI_SCHEMES)
    return OAuth2ResponseRedirect(uri, schemes)


def _error_redirect(
    error: oauth_errors.OAuth2Error, redirect_uri: str, application: Application | None
) -> HttpResponse:
    return _back_to_client(_with_iss(error.in_uri(redirect_uri)), application)


def _sign_in_redirect(request: HttpRequest) -> HttpResponse:
    params = [(k, v) for k, v in request.GET.items() if k not in FRESH_SIGN_IN_PARAMETERS]
    back = f"{request.path}?{urlencode(params)}"
    return HttpResponseRedirect(f"{reverse('web:sign-in')}?{urlencode({'next': back})}")


def _fresh_sign_in_needed(validated: OAuthRequest, prompt: list[str], signin: SignIn) -> bool:
    if "login" in prompt:
        return True
    max_age = validated.max_age or ""
    if max_age.isascii() and max_age.isdigit():
        times = UserSession.objects.filter(pk=signin.session_id).values_list("auth_time", "created_at").first()
        if times is None:
            return True
        auth_time = times[0] or times[1]
        return (timezone.now() - auth_time).total_seconds() > int(max_age)
    return False


@page_headers
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    """The authorization endpoint: GET asks; POST is the consent page's answer (CSRF-checked)."""
    try:
        scopes, credentials = _core().validate_authorization_request(request)
    except FatalClientError as exc:
        return _error_page(request, exc.oauthlib_error.description or "The request names no valid client.")
    except OAuthToolkitError as exc:
        error = exc.oauthlib_error
        if not error.redirect_uri:
            return _error_page(request, error.description or error.error)
        application = Application.objects.filter(client_id=error.client_id).first() if error.client_id else None
        return _error_redirect(error, error.redirect_uri, application)
    validated: OAuthRequest = credentials["request"]  # oauthlib's request: the client it loaded; the code is its
    application = validated.client
    redirect_uri = credentials["redirect_uri"]
    state = credentials.get("state")
    prompt = (validated.prompt or "").split()  # the query's parameters as oauthlib read them

    signin = signin_get(request)
    if signin is None or _fresh_sign_in_needed(validated, prompt, signin):
        if "none" in prompt:
            return _error_redirect(oauth_errors.LoginRequired(state=state), redirect_uri, application)
        return _sign_in_redirect(request)
    # The person by id: the consent and the grant rows need nothing else, and the sign-in check above already
    # refused an ended session or a deactivated person. The consent page loads the whole row.
    user = CustomUser(pk=signin.user_id)

    allow = True
    if request.method == "POST":
        allow = "allow" in request.POST
        if allow:
            try:
                consent_record(user=user, application=application, scopes=scopes)
            except IntegrityError:  # the person's row was deleted since the session's state was cached
                return _sign_in_redirect(request)
    elif "consent" in prompt or consent_needed(user=user, application=application, scopes=scopes):
        if "none" in prompt:
            return _error_redirect(oauth_errors.ConsentRequired(state=state), redirect_uri, application)
        person = CustomUser.objects.filter(pk=signin.user_id).first()
        if person is None:
            return _sign_in_redirect(request)
        return render(
            request,
            "web/consent.html",
            {
                "site_name": settings.SSO_SITE_NAME,
                "application": application,
                "scopes": [(scope, settings.OIDC_SCOPES.get(scope, scope)) for scope in scopes],
                "user": person,
                "action": request.get_full_path(),
            },
        )

    request.user = user  # for the request's log line
    if not allow:
        return _error_redirect(oauth_errors.AccessDeniedError(state=state), redirect_uri, application)
    try:
        uri = _code_issue(validated, user=user, session_id=signin.session_id)
    except oauth_errors.OAuth2Error as exc:
        return _error_redirect(exc, redirect_uri, application)
    except IntegrityError:  # the session's, the person's or the client's row was deleted since it was cached
        oidc_client_changed(client_id=application.client_id)
        return _sign_in_redirect(request)
    return _back_to_client(uri, application)


@csrf_exempt
@require_http_methods(["POST"])
def token(request: HttpRequest) -> HttpResponse:
    """The token endpoint: codes and refresh tokens (django-oauth-toolkit); client credentials are service accounts'
    (``service-token/``'s owner, ``users.services.service_accounts``)."""
    if request.POST.get("grant_type") == "client_credentials":
        return _client_credentials(request)
    return _token_view(request)


class _TokenView(TokenView):
    """django-oauth-toolkit's token endpoint, which reads the issued access token's row back for its
    ``app_authorized`` signal: here only when a receiver is connected (none is, unless a deployment adds one)."""

    def create_token_response(self, request: HttpRequest) -> tuple[Any, dict[str, str], str, int]:
        uri, headers, body, status = super().create_token_response(request)
        # An error raised once the request is validated (storing the tokens: a code spent concurrently, a resource
        # outside the grant's) comes back with the error's own headers only; it is the endpoint's JSON all the same.
        headers = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache", **headers}
        return uri, headers, body, status

    @method_decorator(sensitive_post_parameters("password", "client_secret"))
    def authorization_flow_token_response(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if app_authorized.has_listeners():
            return super().authorization_flow_token_response(request, *args, **kwargs)
        _uri, headers, body, status = self.create_token_response(request)
        response = HttpResponse(content=body, status=status)
        for name, value in headers.items():
            response[name] = value
        return response


_token_view = _TokenView.as_view()


def _client_credentials(request: HttpRequest) -> HttpResponse:
    """``service-token/``'s grant with the OAuth error format: the same counter per client IP (``service_token``
    scope), credentials parser and owner."""
    if (wait := client_wait_seconds(request, scope=CLIENT_CREDENTIALS_SCOPE)) is not None:
        return _oauth_error(429, "throttled", f"Too many token requests; try again in {wait} seconds.", wait)
    try:
        client_id, client_secret = client_credentials(request, request.POST)
        issued = service_token_issue(client_id=client_id, client_secret=client_secret, ip=client_ip(request))
    except ApplicationError as exc:
        status = error_status(exc)
        error = "invalid_client" if status == 401 else exc.code
        return _oauth_error(status, error, exc.message, exc.extra.get("retry_after"))
    return JsonResponse(issued.response_body, headers={"Cache-Control": "no-store"})


def _oauth_error(status: int, error: str, description: str, retry_after: int | None = None) -> JsonResponse:
    """An error of the token endpoint (RFC 6749 5.2), with ``Retry-After`` when the client must wait."""
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
