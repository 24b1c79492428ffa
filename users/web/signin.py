"""The sign-in session's cookie: signed, holding the login session's id; checked against the session's state."""

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from users.models import UserSession
from users.session_state import session_live_get

SALT = "users.web.signin"


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
