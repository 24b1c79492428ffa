"""Sign-in pages: password or passkey, then the second factor or its enrolment when the policy needs one.

Every step is ``users.services.login``'s (the one owner of completing a login: the same lockout, throttles, audit
records and metrics as the API's ``login/``); these views only read forms and render the answers. A completed
login opens a ``UserSession`` whose id the signed sign-in cookie carries (``users.web.signin``).

A passkey needs the browser: ``users/static/users/passkey.js`` (the admin's script too) asks an options view for a
challenge, hands it to ``navigator.credentials.get()`` and posts the answer in the form's hidden ``webauthn``
field. The passwordless sign-in's challenge is bound to the browser that asked (``users.web.signin``'s passkey
cookie); the second step's is bound to its pending login (the ``mfa_token``). Without JavaScript the password and
codes work as before.
"""

import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import rotate_token
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from user_service.exceptions import error_status
from users.exceptions import ApplicationError, MfaTokenInvalid
from users.forms import PasskeyAnswerField
from users.http import client_ip, user_agent
from users.services import login, mfa
from users.services.credentials import Channel
from users.services.login import LoginCompleted, LoginPending, Step
from users.services.mfa import webauthn
from users.services.throttle import sign_in_wait_seconds
from users.web.security import page_headers
from users.web.signin import passkey_binding_clear, passkey_binding_get, passkey_binding_set, signin_session_open

IDENTIFIER_MAX_LENGTH = 254
PASSWORD_MAX_LENGTH = 4096
CODE_MAX_LENGTH = 64
THROTTLED = "Too many attempts; try again later."
UNREADABLE = "The passkey's answer could not be read; try again."


class SignInForm(forms.Form):
    username = forms.CharField(label="Username or e-mail", max_length=IDENTIFIER_MAX_LENGTH, strip=True)
    password = forms.CharField(label="Password", max_length=PASSWORD_MAX_LENGTH, strip=False)
    next = forms.CharField(required=False, max_length=4096, widget=forms.HiddenInput)


class PasskeySignInForm(forms.Form):
    """The sign-in page's second form: the passkey's answer (filled in by the script), and where to go next."""

    webauthn = PasskeyAnswerField()
    next = forms.CharField(required=False, max_length=4096, widget=forms.HiddenInput)


class SecondFactorForm(forms.Form):
    mfa_token = forms.CharField(max_length=256, widget=forms.HiddenInput)
    next = forms.CharField(required=False, max_length=4096, widget=forms.HiddenInput)
    webauthn = PasskeyAnswerField()
    code = forms.CharField(label="Code from your authenticator app", required=False, max_length=CODE_MAX_LENGTH)
    recovery_code = forms.CharField(label="Or a recovery code", required=False, max_length=CODE_MAX_LENGTH)


class EnrolForm(forms.Form):
    mfa_token = forms.CharField(max_length=256, widget=forms.HiddenInput)
    next = forms.CharField(required=False, max_length=4096, widget=forms.HiddenInput)
    code = forms.CharField(label="Code from your authenticator app", max_length=CODE_MAX_LENGTH)


def safe_next(request: HttpRequest, target: str | None) -> str:
    """Where to go after signing in: a path on this host only (never another site), else the account page."""
    target = target or ""
    local = target.startswith("/") and not target.startswith(("//", "/\\"))
    if local and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("web:account")


def _page(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return render(request, f"web/{template}", {"site_name": settings.SSO_SITE_NAME, **context}, status=status)


def _refused(request: HttpRequest, template: str, context: dict[str, Any], exc: ApplicationError) -> HttpResponse:
    response = _page(request, template, {**context, "error": exc.message}, status=error_status(exc))
    if retry_after := exc.extra.get("retry_after"):
        response["Retry-After"] = str(retry_after)
    return response


def _completed(request: HttpRequest, completed: LoginCompleted, target: str) -> HttpResponse:
    rotate_token(request)  # a new CSRF secret for the signed-in browser, as Django's own login does
    response = HttpResponseRedirect(target)
    if completed.session is not None:
        signin_session_open(request, response, completed.session.session)
    return response


def _second_factor_page(
    request: HttpRequest, form: SecondFactorForm, *, has_passkey: bool, status: int = 200, **context: Any
) -> HttpResponse:
    return _page(request, "second_factor.html", {"form": form, "has_passkey": has_passkey, **context}, status=status)


def _pending(request: HttpRequest, pending: LoginPending, target: str) -> HttpResponse:
    initial = {"mfa_token": pending.mfa_token, "next": target}
    if pending.step is Step.ENROLMENT:
        enrolment = mfa.totp_enrol_begin(user=pending.user)
        return _page(request, "enrol.html", {"form": EnrolForm(initial=initial), "enrolment": enrolment})
    has_passkey = webauthn.WEBAUTHN.name in pending.methods
    return _second_factor_page(request, SecondFactorForm(initial=initial), has_passkey=has_passkey)


def _sign_in_forms(target: str) -> dict[str, forms.Form]:
    return {
        "form": SignInForm(initial={"next": target}),
        "passkey_form": PasskeySignInForm(initial={"next": target}, auto_id=False),
    }


def _sign_in_page(request: HttpRequest, target: str, status: int = 200, **context: Any) -> HttpResponse:
    """The sign-in page: the password form, and the passkey's (its button shows when the browser has WebAuthn)."""
    return _page(request, "sign_in.html", {**_sign_in_forms(target), **context}, status=status)


def _throttled_page(request: HttpRequest, wait: int) -> HttpResponse:
    response = _sign_in_page(request, request.POST.get("next", "")[:4096], status=429, error=THROTTLED)
    response["Retry-After"] = str(wait)
    return response


def _throttled_json(wait: int) -> JsonResponse:
    response = JsonResponse({"detail": THROTTLED, "code": "throttled"}, status=429)
    response["Retry-After"] = str(wait)
    return response


@page_headers
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _sign_in_page(request, request.GET.get("next", "")[:4096])
    form = SignInForm(request.POST)
    if (wait := sign_in_wait_seconds(request)) is not None:
        return _throttled_page(request, wait)
    if not form.is_valid():
        return _sign_in_page(request, request.POST.get("next", "")[:4096], status=400, form=form)
    return _first_step(
        request,
        safe_next(request, form.cleaned_data["next"]),
        lambda: login.password_login(
            identifier=form.cleaned_data["username"],
            password=form.cleaned_data["password"],
            channel=Channel.SSO,
            ip=client_ip(request),
            user_agent=user_agent(request),
        ),
    )


def _first_step(
    request: HttpRequest, target: str, attempt: Callable[[], LoginCompleted | LoginPending]
) -> HttpResponse:
    """A sign-in's first step (password or passkey): on to the second step, or signed in; refused, the page again."""
    try:
        outcome = attempt()
    except ApplicationError as exc:
        return _refused(request, "sign_in.html", _sign_in_forms(target), exc)
    if isinstance(outcome, LoginPending):
        return _pending(request, outcome, target)
    return _completed(request, outcome, target)


@page_headers
@require_http_methods(["POST"])
def passkey_options(request: HttpRequest) -> HttpResponse:
    """The options of a passwordless sign-in (``webauthn.passwordless_options``) as JSON, bound to this browser."""
    if (wait := sign_in_wait_seconds(request)) is not None:
        return _throttled_json(wait)
    binding = str(uuid.uuid4())
    response = JsonResponse(webauthn.passwordless_options(browser_binding=binding))
    passkey_binding_set(response, binding)
    return response


@page_headers
@require_http_methods(["POST"])
def passkey_sign_in(request: HttpRequest) -> HttpResponse:
    """A passwordless sign-in: the answer to this browser's challenge (``login.passkey_login``)."""
    if (wait := sign_in_wait_seconds(request)) is not None:
        response = _throttled_page(request, wait)
    else:
        response = _passkey_signed_in(request)
    passkey_binding_clear(response)  # the challenge was spent (or is unusable): a new sign-in asks for a new one
    return response


def _passkey_signed_in(request: HttpRequest) -> HttpResponse:
    form = PasskeySignInForm(request.POST)
    if not form.is_valid() or form.cleaned_data["webauthn"] is None:
        return _sign_in_page(request, request.POST.get("next", "")[:4096], status=400, error=UNREADABLE)
    return _first_step(
        request,
        safe_next(request, form.cleaned_data["next"]),
        lambda: login.passkey_login(
            credential=form.cleaned_data["webauthn"],
            channel=Channel.SSO,
            ip=client_ip(request),
            user_agent=user_agent(request),
            # without its cookie the answer is tried against an id no challenge has: refused and counted as any
            browser_binding=passkey_binding_get(request) or str(uuid.uuid4()),
        ),
    )


@page_headers
@require_http_methods(["POST"])
def second_factor_passkey_options(request: HttpRequest) -> HttpResponse:
    """The options of a second step with a passkey (``webauthn.second_factor_options``), bound to its pending login."""
    if (wait := sign_in_wait_seconds(request)) is not None:
        return _throttled_json(wait)
    try:
        challenge = mfa.challenge_get(request.POST.get("mfa_token", "")[:256], channel=Channel.SSO.value)
        return JsonResponse(webauthn.second_factor_options(challenge=challenge))
    except ApplicationError as exc:  # MfaTokenInvalid (expired, spent, another way in's), FactorConflict (no passkey)
        return JsonResponse({"detail": exc.message, "code": exc.code}, status=error_status(exc))


def _passkey_offered(mfa_token: str) -> bool:
    """Whether the second step of the pending login ``mfa_token`` holds can take a passkey."""
    try:
        return webauthn.WEBAUTHN.confirmed(mfa.challenge_get(mfa_token, channel=Channel.SSO.value).user)
    except MfaTokenInvalid:
        return False


@page_headers
@require_http_methods(["POST"])
def second_factor(request: HttpRequest) -> HttpResponse:
    """The second step: a passkey (filled in by the script), a code, or a recovery code."""
    form = SecondFactorForm(request.POST)
    if not form.is_valid():
        has_passkey = _passkey_offered(request.POST.get("mfa_token", "")[:256])
        return _second_factor_page(request, form, has_passkey=has_passkey, status=400)
    data = form.cleaned_data
    if data["webauthn"] is not None:
        proof_field, proof = webauthn.WEBAUTHN.proof_field, data["webauthn"]
    elif data["recovery_code"]:
        proof_field, proof = "recovery_code", data["recovery_code"]
    else:
        proof_field, proof = "code", data["code"]
    target = safe_next(request, data["next"])
    try:
        completed = login.second_factor_login(
            mfa_token=data["mfa_token"],
            proof_field=proof_field,
            proof=proof,
            channel=Channel.SSO,
            ip=client_ip(request),
            user_agent=user_agent(request),
        )
    except MfaTokenInvalid as exc:
        return _refused(request, "sign_in.html", _sign_in_forms(target), exc)
    except ApplicationError as exc:
        again = SecondFactorForm(initial={"mfa_token": data["mfa_token"], "next": target})
        context = {"form": again, "has_passkey": _passkey_offered(data["mfa_token"])}
        return _refused(request, "second_factor.html", context, exc)
    return _completed(request, completed, target)


@page_headers
@require_http_methods(["POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """Confirm the authenticator app set up during sign-in; then the login finishes with a next code from it."""
    form = EnrolForm(request.POST)
    if not form.is_valid():
        return _page(request, "enrol.html", {"form": form}, status=400)
    data = form.cleaned_data
    target = safe_next(request, data["next"])
    try:
        challenge = mfa.enrolment_grant_resolve(data["mfa_token"], channel=Channel.SSO.value)
    except MfaTokenInvalid as exc:
        return _refused(request, "sign_in.html", _sign_in_forms(target), exc)
    try:
        recovery_codes = mfa.totp_enrol_confirm(
            user=challenge.user, code=data["code"], ip=client_ip(request), user_agent=user_agent(request)
        )
    except ApplicationError as exc:  # a wrong code: the page shows a new secret to scan (the old one is not kept)
        context = {"form": EnrolForm(initial=data), "enrolment": mfa.totp_enrol_begin(user=challenge.user)}
        return _refused(request, "enrol.html", context, exc)
    finish = SecondFactorForm(initial={"mfa_token": data["mfa_token"], "next": target})
    return _second_factor_page(request, finish, has_passkey=False, recovery_codes=recovery_codes, enrolled=True)
