"""What the admin keeps in Django's session between its pages: the pending second step, and when the person signed in.

The pending second step is an ``mfa_token`` (``users.services.mfa.challenges``): the database row is the state (its
expiry, its single use, its channel), the session holds only the token, as the API's client holds it. Nobody is
signed in to Django's session until the step completes. ``auth_time`` is when this session's person last proved it
was them (the login, or the admin's "confirm it's you" page), for the step-up rule (``users.services.reauth``).
``passkey_binding`` is a random id this session keeps for binding its "confirm it's you" passkey challenges to (the
API binds them to its session's id; the admin has no API session).
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from users.services.login import LoginPending, Step

PENDING_KEY = "admin_mfa_pending"
AUTH_TIME_KEY = "admin_auth_time"
PASSKEY_BINDING_KEY = "admin_passkey_binding"


@dataclass(frozen=True)
class Pending:
    """A login waiting for its second step on the admin's pages."""

    mfa_token: str
    step: Step
    next_url: str


def pending_store(request: HttpRequest, *, outcome: LoginPending, next_url: str) -> None:
    request.session[PENDING_KEY] = {"mfa_token": outcome.mfa_token, "step": outcome.step.value, "next": next_url}


def pending_get(request: HttpRequest) -> Pending | None:
    raw: Any = request.session.get(PENDING_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        return Pending(mfa_token=str(raw["mfa_token"]), step=Step(raw["step"]), next_url=str(raw.get("next") or ""))
    except (KeyError, ValueError):
        return None


def pending_clear(request: HttpRequest) -> None:
    request.session.pop(PENDING_KEY, None)


def auth_time_mark(request: HttpRequest, *, at: datetime | None = None) -> None:
    request.session[AUTH_TIME_KEY] = (at or timezone.now()).timestamp()


def auth_time(request: HttpRequest) -> datetime | None:
    raw = request.session.get(AUTH_TIME_KEY)
    if not isinstance(raw, int | float):
        return None
    return datetime.fromtimestamp(raw, tz=UTC)


@receiver(user_logged_in)
def _signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Every Django login of a request (the admin's pages, ``django.contrib.auth.login`` after a backend's check)
    is an authentication of that session's person."""
    if request is not None and hasattr(request, "session"):
        pending_clear(request)
        auth_time_mark(request)


def passkey_binding(request: HttpRequest) -> str:
    """This session's id for its passkey reauthentication challenges (made the first time it is asked)."""
    raw = request.session.get(PASSKEY_BINDING_KEY)
    try:
        return str(uuid.UUID(str(raw)))
    except ValueError:
        binding = str(uuid.uuid4())
        request.session[PASSKEY_BINDING_KEY] = binding
        return binding


def safe_next(request: HttpRequest, url: str | None, *, default: str) -> str:
    """``url`` when it points into this site, else ``default`` (no open redirect)."""
    allowed = {request.get_host()}
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts=allowed, require_https=request.is_secure()):
        return url
    return default
