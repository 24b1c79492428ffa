"""Sign-in pages: password, then the second factor or its enrolment when the policy needs one.

Every step is ``users.services.login``'s (the one owner of completing a login: the same lockout, throttles, audit
records and metrics as the API's ``login/``); these views only read forms and render the answers. A completed
login opens a ``UserSession`` whose id the signed sign-in cookie carries (``users.web.signin``).
"""

from typing import Any

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import rotate_token
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from user_service.exceptions import error_status
from users.exceptions import ApplicationError, MfaTokenInvalid
from users.http import client_ip, user_agent
from users.services import login, mfa
from users.services.credentials import Channel
from users.services.login import LoginCompleted, LoginPending, Step
from users.web.security import page_headers
from users.web.signin import signin_cookie_set
from users.web.throttle import sign_in_wait_seconds

IDENTIFIER_MAX_LENGTH = 254
PASSWORD_MAX_LENGTH = 4096
CODE_MAX_LENGTH = 64


class SignInForm(forms.Form):
    username = forms.CharField(label="Username or e-mail", max_length=IDENTIFIER_MAX_LENGTH, strip=True)
    password = forms.CharField(label="Password", max_length=PASSWORD_MAX_LENGTH, strip=False)
    next = forms.CharField(required=False, max_length=4096, widget=forms.HiddenInput)


class SecondFactorForm(forms.Form):
    mfa_token = forms.CharField(max_length=256, widget=forms.HiddenInput)
    next = forms.CharField(required=False, max_length=4096, widget=forms.HiddenInput)
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
        signin_cookie_set(response, completed.session.session)
    return response


def _pending(request: HttpRequest, pending: LoginPending, target: str) -> HttpResponse:
    initial = {"mfa_token": pending.mfa_token, "next": target}
    if pending.step is Step.ENROLMENT:
        enrolment = mfa.totp_enrol_begin(user=pending.user)
        return _page(request, "enrol.html", {"form": EnrolForm(initial=initial), "enrolment": enrolment})
    return _page(request, "second_factor.html", {"form": SecondFactorForm(initial=initial), "methods": pending.methods})


@page_headers
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        form = SignInForm(initial={"next": request.GET.get("next", "")})
        return _page(request, "sign_in.html", {"form": form})
    form = SignInForm(request.POST)
    if (wait := sign_in_wait_seconds(request)) is not None:
        context = {"form": SignInForm(initial={"next": request.POST.get("next", "")})}
        response = _page(request, "sign_in.html", {**context, "error": "Too many attempts; try again later."}, 429)
        response["Retry-After"] = str(wait)
        return response
    if not form.is_valid():
        return _page(request, "sign_in.html", {"form": form}, status=400)
    target = safe_next(request, form.cleaned_data["next"])
    try:
        outcome = login.password_login(
            identifier=form.cleaned_data["username"],
            password=form.cleaned_data["password"],
            channel=Channel.SSO,
            ip=client_ip(request),
            user_agent=user_agent(request),
        )
    except ApplicationError as exc:
        return _refused(request, "sign_in.html", {"form": SignInForm(initial={"next": target})}, exc)
    if isinstance(outcome, LoginPending):
        return _pending(request, outcome, target)
    return _completed(request, outcome, target)


@page_headers
@require_http_methods(["POST"])
def second_factor(request: HttpRequest) -> HttpResponse:
    form = SecondFactorForm(request.POST)
    if not form.is_valid():
        return _page(request, "second_factor.html", {"form": form}, status=400)
    data = form.cleaned_data
    proof_field, proof = ("recovery_code", data["recovery_code"]) if data["recovery_code"] else ("code", data["code"])
    target = safe_next(request, data["next"])
    again = SecondFactorForm(initial={"mfa_token": data["mfa_token"], "next": target})
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
        return _refused(request, "sign_in.html", {"form": SignInForm(initial={"next": target})}, exc)
    except ApplicationError as exc:
        return _refused(request, "second_factor.html", {"form": again}, exc)
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
        return _refused(request, "sign_in.html", {"form": SignInForm(initial={"next": target})}, exc)
    try:
        recovery_codes = mfa.totp_enrol_confirm(
            user=challenge.user, code=data["code"], ip=client_ip(request), user_agent=user_agent(request)
        )
    except ApplicationError as exc:  # a wrong code: the page shows a new secret to scan (the old one is not kept)
        context = {"form": EnrolForm(initial=data), "enrolment": mfa.totp_enrol_begin(user=challenge.user)}
        return _refused(request, "enrol.html", context, exc)
    finish = SecondFactorForm(initial={"mfa_token": data["mfa_token"], "next": target})
    return _page(request, "second_factor.html", {"form": finish, "recovery_codes": recovery_codes, "enrolled": True})
