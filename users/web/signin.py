"""The sign-in pages' cookies: the login session's (signed, holding its id; checked against the session's state), and
a passkey sign-in's binding (signed, a random id the passwordless challenge is bound to, so that only the browser
that asked for the options can answer them).

A browser holds one login session. When a sign-in completes while the browser's cookie still names a live session
(``prompt=login``, ``max_age``, another person signing in), that earlier session is signed out through
``users.services.auth.user_logout`` like the logout page does (its tokens stop working, its clients get a
back-channel logout) before the cookie names the new one; otherwise it would stay open with no browser to end it.
"""

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from users.http import client_ip
from users.models import UserSession
from users.services.auth import user_logout
from users.services.mfa.webauthn import CHALLENGE_SECONDS
from users.session_state import session_live_get

SALT = "users.web.signin"
PASSKEY_SALT = "users.web.passkey"


@dataclass(frozen=True)
class SignIn:
    """A live sign-in: the login session the cookie names and its owner."""

    session_id: str
    user_id: int


def signin_get(request: HttpRequest) -> SignIn | None:
    """The live sign-in the browser's cookie names, or None (no cookie, tampered, ended, expired).

    Liveness is the login session's state (``session_live_get``, the check every token goes through), so an
    ended or revoked session is refused here without its row being read.
    """
    raw = request.get_signed_cookie(settings.SSO_COOKIE_NAME, default=None, salt=SALT)
    if not raw:
        return None
    session_id, _, user_id = raw.partition(":")
    try:
        uuid.UUID(session_id)
        owner = int(user_id)
    except ValueError:
        return None
    if session_live_get(session_id=session_id, user_id=owner) is None:
        return None
    return SignIn(session_id=session_id, user_id=owner)


def signin_session_get(request: HttpRequest) -> UserSession | None:
    """The live login session the browser's cookie names, with its user, or None (see ``signin_get``)."""
    signin = signin_get(request)
    if signin is None:
        return None
    return UserSession.objects.select_related("user").filter(pk=signin.session_id, user_id=signin.user_id).first()


def signin_session_open(request: HttpRequest, response: HttpResponse, session: UserSession) -> None:
    """Make ``session`` the browser's login session; the live one its cookie named before is signed out."""
    earlier = signin_session_get(request)
    if earlier is not None and earlier.pk != session.pk:
        user_logout(user=earlier.user, session_id=str(earlier.pk), ip=client_ip(request))
    signin_cookie_set(response, session)


def signin_cookie_set(response: HttpResponse, session: UserSession) -> None:
    max_age = max(0, int((session.expires_at - timezone.now()).total_seconds()))
    response.set_signed_cookie(
        settings.SSO_COOKIE_NAME,
        f"{session.pk}:{session.user_id}",
        salt=SALT,
        max_age=max_age,
        secure=settings.SSO_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def signin_cookie_clear(response: HttpResponse) -> None:
    response.delete_cookie(settings.SSO_COOKIE_NAME, samesite="Lax")


def _passkey_cookie_name() -> str:
    return f"{settings.SSO_COOKIE_NAME}_passkey"


def passkey_binding_set(response: HttpResponse, binding: str) -> None:
    """Keep ``binding`` (a passkey sign-in's challenge is bound to it) in this browser while the challenge lives."""
    response.set_signed_cookie(
        _passkey_cookie_name(),
        binding,
        salt=PASSKEY_SALT,
        max_age=CHALLENGE_SECONDS,
        secure=settings.SSO_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def passkey_binding_get(request: HttpRequest) -> str | None:
    """The id this browser's passkey sign-in challenge is bound to; None without a good cookie."""
    raw = request.get_signed_cookie(_passkey_cookie_name(), default=None, salt=PASSKEY_SALT, max_age=CHALLENGE_SECONDS)
    try:
        return str(uuid.UUID(raw)) if raw else None
    except ValueError:
        return None


def passkey_binding_clear(response: HttpResponse) -> None:
    response.delete_cookie(_passkey_cookie_name(), samesite="Lax")
