"""The signed-in person's own page: profile, open sessions (sign out one), second factors, password, apps.

Each change is the existing owner's: ending a session ``users.services.auth.session_revoke``, the password
``users.services.people.passwords.password_change``, the factors ``users.services.mfa`` (removing one and new
recovery codes after the same recent-authentication check as the API's), withdrawing an app's access
``users.services.oidc.consent.consent_revoke``.
"""

from typing import Any
from uuid import UUID

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from user_service.exceptions import error_status
from users.exceptions import ApplicationError
from users.http import client_ip, user_agent
from users.models import UserSession
from users.selectors import consents_for, session_apps, sessions_active_for, user_public_data
from users.services import mfa
from users.services.auth import session_revoke
from users.services.oidc.consent import consent_revoke
from users.services.people.passwords import password_change
from users.services.reauth import session_recent_authentication_require
from users.web.security import page_headers
from users.web.signin import signin_cookie_clear, signin_session_get

PASSWORD_MAX_LENGTH = 4096


class TOTPConfirmForm(forms.Form):
    code = forms.CharField(label="Code from your authenticator app", max_length=64)


class PasswordChangeForm(forms.Form):
    old_password = forms.CharField(
        label="Current password", max_length=PASSWORD_MAX_LENGTH, strip=False, widget=forms.PasswordInput
    )
    new_password = forms.CharField(
        label="New password", max_length=PASSWORD_MAX_LENGTH, strip=False, widget=forms.PasswordInput
    )
    confirm_password = forms.CharField(
        label="New password again", max_length=PASSWORD_MAX_LENGTH, strip=False, widget=forms.PasswordInput
    )


def _sign_in_first() -> HttpResponse:
    return HttpResponseRedirect(f"{reverse('web:sign-in')}?next={reverse('web:account')}")


def _account_page(
    request: HttpRequest,
    session: UserSession,
    *,
    form: PasswordChangeForm | None = None,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> HttpResponse:
    user = session.user
    sessions = list(sessions_active_for(user=user))
    apps = session_apps(session_ids=[s.id for s in sessions])
    context: dict[str, Any] = {
        "site_name": settings.SSO_SITE_NAME,
        "profile": user_public_data(user),
        "sessions": [{"session": s, "current": s.pk == session.pk, "apps": apps.get(str(s.id), [])} for s in sessions],
        "factors": mfa.factors_summary(user),
        "consents": consents_for(user=user),
        "password_form": form or PasswordChangeForm(),
        "error": error,
        "notice": notice,
    }
    return render(request, "web/account.html", context, status=status)


@page_headers
@require_http_methods(["GET"])
def account(request: HttpRequest) -> HttpResponse:
    session = signin_session_get(request)
    if session is None:
        return _sign_in_first()
    notice = {
        "totp-removed": "The authenticator app was removed.",
        "password": "Your password was changed; your other sessions were signed out.",
        "app": "The app's access was withdrawn.",
        "session": "That session was signed out.",
    }.get(request.GET.get("done", ""))
    return _account_page(request, session, notice=notice)


@page_headers
@require_http_methods(["POST"])
def session_end(request: HttpRequest, session_id: UUID) -> HttpResponse:
    session = signin_session_get(request)
    if session is None:
        return _sign_in_first()
    try:
        session_revoke(user=session.user, session_id=str(session_id), ip=client_ip(request))
    except ApplicationError as exc:
        return _account_page(request, session, status=error_status(exc), error=exc.message)
    if session_id == session.pk:
        response = HttpResponseRedirect(reverse("web:sign-in"))
        signin_cookie_clear(response)
        return response
    return HttpResponseRedirect(f"{reverse('web:account')}?done=session")


@page_headers
@require_http_methods(["POST"])
def app_revoke(request: HttpRequest, application_id: int) -> HttpResponse:
    session = signin_session_get(request)
    if session is None:
        return _sign_in_first()
    consent_revoke(user=session.user, application_id=application_id)
    return HttpResponseRedirect(f"{reverse('web:account')}?done=app")


@page_headers
@require_http_methods(["POST"])
def password(request: HttpRequest) -> HttpResponse:
    session = signin_session_get(request)
    if session is None:
        return _sign_in_first()
    form = PasswordChangeForm(request.POST)
    if not form.is_valid():
        return _account_page(request, session, form=form, status=400)
    try:
        session_recent_authentication_require(session_id=str(session.pk))
        password_change(
            user=session.user,
            old_password=form.cleaned_data["old_password"],
            new_password=form.cleaned_data["new_password"],
            confirm_password=form.cleaned_data["confirm_password"],
            current_session_id=str(session.pk),
            ip=client_ip(request),
        )
    except ApplicationError as exc:
        message = exc.message
        if exc.code == "reauthentication_required":
            message = "Sign in again to change your password (it has been a while since you did)."
        return _account_page(request, session, form=form, status=error_status(exc), error=message)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
        return _account_page(request, session, form=form, status=400)
    return HttpResponseRedirect(f"{reverse('web:account')}?done=password")


def _refused(request: HttpRequest, session: UserSession, exc: ApplicationError) -> HttpResponse:
    message = exc.message
    if exc.code == "reauthentication_required":
        message = "Sign in again to change this (it has been a while since you did)."
    return _account_page(request, session, status=error_status(exc), error=message)


def _factor_page(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return render(request, "web/account_factor.html", {"site_name": settings.SSO_SITE_NAME, **context}, status=status)


@page_headers
@require_http_methods(["POST"])
def totp_begin(request: HttpRequest) -> HttpResponse:
    session = signin_session_get(request)
    if session is None:
        return _sign_in_first()
    try:
        enrolment = mfa.totp_enrol_begin(user=session.user)
    except ApplicationError as exc:
        return _refused(request, session, exc)
    return _factor_page(request, {"enrolment": enrolment, "form": TOTPConfirmForm()})


@page_headers
@require_http_methods(["POST"])
def totp_confirm(request: HttpRequest) -> HttpResponse:
    session = signin_session_get(request)
    if session is None:
        return _sign_in_first()
    form = TOTPConfirmForm(request.POST)
    if not form.is_valid():
        return _factor_page(request, {"form": form, "enrolment": mfa.totp_enrol_begin(user=session.user)}, 400)
    try:
        codes = mfa.totp_enrol_confirm(
            user=session.user, code=form.cleaned_data["code"], ip=client_ip(request), user_agent=user_agent(request)
        )
    except ApplicationError as exc:  # a wrong code: a new secret to scan (the pending one is not shown again)
        context = {"form": TOTPConfirmForm(), "enrolment": mfa.totp_enrol_begin(user=session.user)}
        return _factor_page(request, {**context, "error": exc.message}, error_status(exc))
    return _factor_page(request, {"recovery_codes": codes, "enrolled": True})


@page_headers
@require_http_methods(["POST"])
def totp_remove(request: HttpRequest) -> HttpResponse:
    session = signin_session_get(request)
    if session is None:
        return _sign_in_first()
    try:
        session_recent_authentication_require(session_id=str(session.pk))
        mfa.totp_remove(user=session.user, ip=client_ip(request), user_agent=user_agent(request))
    except ApplicationError as exc:
        return _refused(request, session, exc)
    return HttpResponseRedirect(f"{reverse('web:account')}?done=totp-removed")


@page_headers
@require_http_methods(["POST"])
def recovery_codes(request: HttpRequest) -> HttpResponse:
    session = signin_session_get(request)
    if session is None:
        return _sign_in_first()
    try:
        session_recent_authentication_require(session_id=str(session.pk))
        codes = mfa.recovery_codes_regenerate(user=session.user, ip=client_ip(request), user_agent=user_agent(request))
    except ApplicationError as exc:
        return _refused(request, session, exc)
    return _factor_page(request, {"recovery_codes": codes})
