"""The admin's sign-in pages: password, second step, enrolment, and "confirm it's you" before a sensitive change.

Each page parses a form and calls one service: ``password_login``, ``second_factor_login`` and ``enrolment_login``
(``users.services.login``, the one owner of completing a login, with ``Channel.ADMIN``: the lockout, the audit and
the policy are the API's), ``reauthenticate`` (``users.services.reauth``). Django's ``login()`` opens the admin's
session only once a login is complete. A locked account is answered 429 with ``Retry-After`` on every page.

A passkey is a proof like a code: ``users/static/users/passkey.js`` asks the page's options view
(``webauthn.second_factor_options`` for the pending login, ``webauthn.reauthentication_options`` for the person and
this session) and puts the browser's answer in the form's hidden ``webauthn`` field; the form goes to the same
service as a code. Without JavaScript the pages take codes as before.
"""

from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import login as auth_login
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from users.admin_auth import session
from users.admin_auth.forms import EnrolmentForm, HODLoginForm, ReauthenticateForm, SecondStepForm, locked_error
from users.exceptions import FactorConflict, FactorInvalid, MfaTokenInvalid, ProofRejected
from users.http import client_ip, user_agent
from users.models import CustomUser
from users.services import mfa
from users.services.credentials import Channel
from users.services.lockout import AccountLocked
from users.services.login import LoginCompleted, Step, enrolment_login, second_factor_login
from users.services.mfa import webauthn
from users.services.reauth import reauthenticate
from users.services.throttle import sign_in_wait_seconds

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite

NO_STORE = "no-store"
EXPIRED = "Your sign-in took too long or was already used. Please sign in again."


def _url(site: "AdminSite", name: str) -> str:
    return reverse(f"admin:{name}", current_app=site.name)


def _with_next(url: str, next_url: str) -> str:
    return f"{url}?{urlencode({REDIRECT_FIELD_NAME: next_url})}" if next_url else url


def _render(
    site: "AdminSite", request: HttpRequest, template: str, context: dict[str, Any], *, status: int = 200
) -> TemplateResponse:
    request.current_app = site.name
    response = TemplateResponse(request, template, {**site.each_context(request), **context}, status=status)
    response["Cache-Control"] = NO_STORE
    return response


def _locked(response: TemplateResponse, exc: AccountLocked) -> TemplateResponse:
    response.status_code = 429
    response["Retry-After"] = str(exc.extra["retry_after"])
    return response


def _json(body: dict[str, Any], *, status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = NO_STORE
    return response


THROTTLED = "Too many sign-in attempts; try again in a moment."


def _throttled(request: HttpRequest, *, json: bool = False) -> HttpResponse | None:
    """429 with ``Retry-After`` when a POST goes over the client's sign-in rate (``users.services.throttle``, the
    counter the API's ``login/`` and the SSO pages share), else None; a page's refusal is plain text."""
    if request.method != "POST" or (wait := sign_in_wait_seconds(request)) is None:
        return None
    if json:
        response: HttpResponse = _json({"detail": THROTTLED, "code": "throttled"}, status=429)
    else:
        response = HttpResponse(f"{THROTTLED}\n", status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(wait)
    return response


def _has_passkey(user: CustomUser) -> bool:
    return webauthn.WEBAUTHN.confirmed(user)


def _signed_in(site: "AdminSite", request: HttpRequest, completed: LoginCompleted, next_url: str) -> str:
    """Open the admin's Django session for a completed login; where to go next."""
    session.pending_clear(request)
    auth_login(request, completed.user, backend=settings.AUTHENTICATION_BACKENDS[0])
    return session.safe_next(request, next_url, default=_url(site, "index"))


def _start_again(
    site: "AdminSite", request: HttpRequest, next_url: str, message: str = EXPIRED
) -> HttpResponseRedirect:
    session.pending_clear(request)
    messages.error(request, message)
    return HttpResponseRedirect(_with_next(_url(site, "login"), next_url))


class AdminLoginView(LoginView):
    """The password page: a login that needs a second step goes on to it instead of signing in."""

    form_class = HODLoginForm
    admin_site: "AdminSite | None" = None  # given by ``login_page``

    def form_valid(self, form: HODLoginForm) -> HttpResponse:  # type: ignore[override]
        if form.pending is None:
            return super().form_valid(form)
        next_url = self.get_redirect_url()
        session.pending_store(self.request, outcome=form.pending, next_url=next_url)
        page = "login_second_step" if form.pending.step is Step.FACTOR else "login_enrol"
        assert self.admin_site is not None  # noqa: S101 - login_page always gives it
        return HttpResponseRedirect(_url(self.admin_site, page))

    def form_invalid(self, form: HODLoginForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_invalid(form)
        if form.retry_after:  # a locked-out sign-in is answered 429 with Retry-After, like the API
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response


def login_page(site: "AdminSite", request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """``AdminSite.login`` with the admin's own login view (same context, same template)."""
    if request.method == "GET" and site.has_permission(request):
        return HttpResponseRedirect(_url(site, "index"))
    if throttled := _throttled(request):
        return throttled
    context: dict[str, Any] = {
        **site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = _url(site, "index")
    context.update(extra_context or {})
    request.current_app = site.name
    view = AdminLoginView.as_view(
        extra_context=context,
        authentication_form=site.login_form or HODLoginForm,
        template_name=site.login_template or "admin/login.html",
        admin_site=site,
    )
    return cast(HttpResponse, view(request))  # LoginView answers a page or a redirect: both HttpResponse


@sensitive_post_parameters()
@csrf_protect
@never_cache
def second_step(request: HttpRequest, site: "AdminSite") -> HttpResponseBase:
    """The second page of a sign-in: a code from the authenticator app or a recovery code."""
    if throttled := _throttled(request):
        return throttled
    pending = session.pending_get(request)
    if pending is None:
        return _start_again(site, request, request.GET.get(REDIRECT_FIELD_NAME, ""))
    if pending.step is Step.ENROLMENT:
        return HttpResponseRedirect(_url(site, "login_enrol"))
    try:
        person = mfa.challenge_get(pending.mfa_token, channel=Channel.ADMIN.value).user
    except MfaTokenInvalid:
        return _start_again(site, request, pending.next_url)
    form = SecondStepForm(request.POST if request.method == "POST" else None)
    context = {
        "title": "Second step",
        "form": form,
        "app_path": request.get_full_path(),
        "has_passkey": _has_passkey(person),
        "has_app": mfa.TOTP.confirmed(person),
        "passkey_options_url": _url(site, "login_second_step_passkey"),
    }
    if request.method != "POST" or not form.is_valid():
        return _render(site, request, "admin/users/login_second_step.html", context)
    proof_field, proof = form.proof()
    try:
        completed = second_factor_login(
            mfa_token=pending.mfa_token,
            proof_field=proof_field,
            proof=proof,
            channel=Channel.ADMIN,
            ip=client_ip(request),
            user_agent=user_agent(request),
            start_session=False,
        )
    except MfaTokenInvalid:
        return _start_again(site, request, pending.next_url)
    except FactorConflict:  # the factor went away meanwhile (an HOD's reset): sign in again
        return _start_again(site, request, pending.next_url)
    except FactorInvalid as exc:
        form.add_error(None, ValidationError(exc.message, code=exc.code))
        return _render(site, request, "admin/users/login_second_step.html", context)
    except AccountLocked as exc:
        form.add_error(None, locked_error(exc))
        return _locked(_render(site, request, "admin/users/login_second_step.html", context), exc)
    return HttpResponseRedirect(_signed_in(site, request, completed, pending.next_url))


@csrf_protect
@never_cache
@require_POST
def second_step_passkey_options(request: HttpRequest, site: "AdminSite") -> HttpResponseBase:
    """The options for ``navigator.credentials.get()`` of the pending sign-in's second step, as JSON."""
    if throttled := _throttled(request, json=True):
        return throttled
    pending = session.pending_get(request)
    if pending is None or pending.step is not Step.FACTOR:
        return _json({"detail": EXPIRED, "code": "mfa_token_invalid"}, status=400)
    try:
        challenge = mfa.challenge_get(pending.mfa_token, channel=Channel.ADMIN.value)
        return _json(webauthn.second_factor_options(challenge=challenge))
    except MfaTokenInvalid:
        return _json({"detail": EXPIRED, "code": "mfa_token_invalid"}, status=400)
    except FactorConflict as exc:
        return _json({"detail": exc.message, "code": exc.code}, status=409)


@sensitive_post_parameters()
@csrf_protect
@never_cache
def enrol(request: HttpRequest, site: "AdminSite") -> HttpResponseBase:
    """Set up an authenticator app (an HOD whose role needs a factor and who has none), then sign in.

    GET starts (again) with a new secret and shows its QR code; POST confirms it with a code and completes the login
    in one go (``enrolment_login``), then shows the recovery codes, this once.
    """
    if throttled := _throttled(request):
        return throttled
    pending = session.pending_get(request)
    if pending is None or pending.step is not Step.ENROLMENT:
        return _start_again(site, request, request.GET.get(REDIRECT_FIELD_NAME, ""))
    try:
        challenge = mfa.enrolment_grant_resolve(pending.mfa_token, channel=Channel.ADMIN.value)
    except MfaTokenInvalid:
        return _start_again(site, request, pending.next_url)
    user: CustomUser = challenge.user
    template = "admin/users/login_enrol.html"
    context: dict[str, Any] = {"title": "Set up your authenticator app", "app_path": request.path, "person": user}
    if request.method != "POST":
        enrolment = mfa.totp_enrol_begin(user=user)
        # segno's SVG of our own otpauth:// URI: markup we generated, nothing the person typed
        qr_svg = mark_safe(enrolment.qr_svg)  # noqa: S308
        return _render(
            site, request, template, {**context, "form": EnrolmentForm(), "enrolment": enrolment, "qr_svg": qr_svg}
        )
    form = EnrolmentForm(request.POST)
    context["form"] = form
    if not form.is_valid():
        return _render(site, request, template, context)
    try:
        completed, recovery_codes = enrolment_login(
            mfa_token=pending.mfa_token,
            code=form.cleaned_data["code"],
            channel=Channel.ADMIN,
            ip=client_ip(request),
            user_agent=user_agent(request),
            start_session=False,
        )
    except ProofRejected as exc:
        form.add_error("code", ValidationError(exc.message, code=exc.code))
        return _render(site, request, template, context)
    except FactorConflict:  # no app waiting for confirmation (set up on another tab, or never started): start again
        return HttpResponseRedirect(_url(site, "login_enrol"))
    except MfaTokenInvalid:
        return _start_again(site, request, pending.next_url)
    next_url = _signed_in(site, request, completed, pending.next_url)
    return _render(
        site,
        request,
        "admin/users/login_recovery_codes.html",
        {"title": "Your recovery codes", "recovery_codes": recovery_codes, "next_url": next_url},
    )


@sensitive_post_parameters()
@csrf_protect
@never_cache
def reauthenticate_page(request: HttpRequest, site: "AdminSite") -> HttpResponseBase:
    """ "Confirm it's you": the password, a code or a passkey; then back to the change that asked for it."""
    next_url = session.safe_next(
        request,
        request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME),
        default=_url(site, "index"),
    )
    form = ReauthenticateForm(request.POST if request.method == "POST" else None)
    user: CustomUser = request.user  # type: ignore[assignment]  # admin_view let only a signed-in HOD in
    context = {
        "title": "Confirm it's you",
        "form": form,
        "next": next_url,
        "app_path": request.path,
        "has_factor": bool(mfa.methods_for(user)),
        "has_app": mfa.TOTP.confirmed(user),
        "has_passkey": _has_passkey(user),
        "passkey_options_url": _url(site, "reauthenticate_passkey"),
        "reauth_seconds": settings.REAUTH_SECONDS,
    }
    template = "admin/users/reauthenticate.html"
    if request.method != "POST" or not form.is_valid():
        return _render(site, request, template, context)
    proof_field, proof = form.proof()
    try:
        at = reauthenticate(
            user=user,
            session_id=None,
            proof_field=proof_field,
            proof=proof,
            ip=client_ip(request),
            user_agent=user_agent(request),
            ceremony_session_id=session.passkey_binding(request),
        )
    except ProofRejected as exc:
        form.add_error(None, ValidationError(exc.message, code=exc.code))
        return _render(site, request, template, context)
    except AccountLocked as exc:
        form.add_error(None, locked_error(exc))
        return _locked(_render(site, request, template, context), exc)
    session.auth_time_mark(request, at=at)
    return HttpResponseRedirect(next_url)


@csrf_protect
@never_cache
@require_POST
def reauthenticate_passkey_options(request: HttpRequest, site: "AdminSite") -> HttpResponseBase:
    """The options for ``navigator.credentials.get()`` of "confirm it's you", bound to the person and this session."""
    if throttled := _throttled(request, json=True):
        return throttled
    user: CustomUser = request.user  # type: ignore[assignment]  # admin_view let only a signed-in HOD in
    try:
        options = webauthn.reauthentication_options(user=user, session_id=session.passkey_binding(request))
    except FactorConflict as exc:
        return _json({"detail": exc.message, "code": exc.code}, status=409)
    return _json(options)
