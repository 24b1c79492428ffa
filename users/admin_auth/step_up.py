"""The admin's step-up: a sensitive change (``users.services.step_up``) first asks "confirm it's you" unless this
session's person authenticated within ``REAUTH_SECONDS`` (the rule is ``users.services.reauth``'s)."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from users.admin_auth.session import auth_time
from users.exceptions import ReauthenticationRequired
from users.services.reauth import recent_authentication_check

CONFIRM_FIRST = "This change needs you to confirm it's you first; then make it again."


def recently_authenticated(request: HttpRequest) -> bool:
    try:
        recent_authentication_check(authenticated_at=auth_time(request))
    except ReauthenticationRequired:
        return False
    return True


def step_up_redirect(request: HttpRequest, *, next_url: str | None = None) -> HttpResponseRedirect | None:
    """None when the change may go ahead; otherwise the "confirm it's you" page, which returns to ``next_url``
    (default: this page) once the person has confirmed."""
    if recently_authenticated(request):
        return None
    if request.method == "POST":
        messages.warning(request, CONFIRM_FIRST)
    url = reverse("admin:reauthenticate", current_app=getattr(request, "current_app", None) or "admin")
    return HttpResponseRedirect(f"{url}?{urlencode({REDIRECT_FIELD_NAME: next_url or request.get_full_path()})}")
