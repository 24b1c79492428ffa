"""Pages for the e-mail links when the service has no frontend: forgot password, set a new password, confirm e-mail.

The links are ``{FRONTEND_URL}/reset-password?uid=&token=``, ``/verify-email?...`` and ``/login``: with
``FRONTEND_URL`` set to ``{issuer}/account`` they land here. Each page calls the owner the API's endpoints call
(``users.services.account``): the same single-use links, the same answer for any address, every session ended
by a reset.
"""

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from user_service.exceptions import error_status
from users.exceptions import ApplicationError
from users.services.account import email_verify, password_reset_confirm, password_reset_request
from users.services.throttle import sign_in_wait_seconds
from users.web.security import page_headers

PASSWORD_MAX_LENGTH = 4096
LINK_FIELD_MAX_LENGTH = 256


class ForgotPasswordForm(forms.Form):
    email = forms.EmailField(label="Your e-mail address", max_length=254)


class LinkForm(forms.Form):
    """The ``uid`` and ``token`` of a single-use e-mail link, carried in hidden fields from the GET to the POST."""

    uid = forms.CharField(max_length=LINK_FIELD_MAX_LENGTH, widget=forms.HiddenInput)
    token = forms.CharField(max_length=LINK_FIELD_MAX_LENGTH, widget=forms.HiddenInput)


class ResetPasswordForm(LinkForm):
    new_password = forms.CharField(
        label="New password", max_length=PASSWORD_MAX_LENGTH, strip=False, widget=forms.PasswordInput
    )
    confirm_password = forms.CharField(
        label="New password again", max_length=PASSWORD_MAX_LENGTH, strip=False, widget=forms.PasswordInput
    )


class VerifyEmailForm(LinkForm):
    """Confirming an address: the link alone, sent by a button (see ``verify_email``)."""


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    return render(request, f"web/{template}", {"site_name": settings.SSO_SITE_NAME, **context}, status=status)


@page_headers
@require_http_methods(["GET", "POST"])
def forgot_password(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, "forgot_password.html", {"form": ForgotPasswordForm()})
    if (wait := sign_in_wait_seconds(request)) is not None:
        response = _page(
            request, "forgot_password.html", {"form": ForgotPasswordForm(), "error": "Too many attempts."}, 429
        )
        response["Retry-After"] = str(wait)
        return response
    form = ForgotPasswordForm(request.POST)
    if not form.is_valid():
        return _page(request, "forgot_password.html", {"form": form}, status=400)
    password_reset_request(email=form.cleaned_data["email"])
    return _page(
        request,
        "message.html",
        {
            "title": "Check your e-mail",
            "message": (
                "If an account uses this address, we sent it a link to set a new password. The link works once."
            ),
        },
    )


def _link_page(
    request: HttpRequest,
    *,
    form_class: type[LinkForm],
    template: str,
    act: Callable[[dict[str, Any]], object],
    done: dict[str, Any],
) -> HttpResponse:
    """A page of a single-use e-mail link: GET shows ``form_class`` with the link's ``uid`` and ``token``; POST
    validates it and calls ``act`` (the owner's service) with its cleaned data, then shows ``done`` (the
    message page's context). The service's refusal is shown on the form with its status: an ``ApplicationError`` as
    the page's error, a ``ValidationError`` on the fields it names."""
    if request.method == "GET":
        form = form_class(initial={"uid": request.GET.get("uid", ""), "token": request.GET.get("token", "")})
        return _page(request, template, {"form": form})
    form = form_class(request.POST)
    if not form.is_valid():
        return _page(request, template, {"form": form}, status=400)
    try:
        act(form.cleaned_data)
    except ApplicationError as exc:
        return _page(request, template, {"form": form, "error": exc.message}, error_status(exc))
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
        return _page(request, template, {"form": form}, status=400)
    return _page(request, "message.html", done)


@page_headers
@require_http_methods(["GET", "POST"])
def reset_password(request: HttpRequest) -> HttpResponse:
    return _link_page(
        request,
        form_class=ResetPasswordForm,
        template="reset_password.html",
        act=lambda data: password_reset_confirm(
            uid=data["uid"],
            token=data["token"],
            new_password=data["new_password"],
            confirm_password=data["confirm_password"],
        ),
        done={
            "title": "Your password is set",
            "message": "You were signed out everywhere. Sign in with your new password.",
            "sign_in": True,
        },
    )


@page_headers
@require_http_methods(["GET", "POST"])
def verify_email(request: HttpRequest) -> HttpResponse:
    """A button, not a GET: mail scanners that open links must not use the single-use link up."""
    return _link_page(
        request,
        form_class=VerifyEmailForm,
        template="verify_email.html",
        act=lambda data: email_verify(uid=data["uid"], token=data["token"]),
        done={"title": "Your e-mail address is confirmed", "message": "", "sign_in": True},
    )


@require_http_methods(["GET"])
def login_link(request: HttpRequest) -> HttpResponse:
    """``{FRONTEND_URL}/login`` of the e-mails: the sign-in page."""
    return HttpResponseRedirect(reverse("web:sign-in"))
