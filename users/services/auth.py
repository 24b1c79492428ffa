"""Logins, token refresh with rotation and reuse detection, logout, session revocation, password change."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from user_service.exceptions import ApplicationError
from users import tokens
from users.backends import user_for_login
from users.exceptions import InvalidCredentials, NotFound, SessionEnded, TokenInvalid
from users.models import CustomUser, SecurityEvent, SessionEndReason, UserSession
from users.services import lockout
from users.services.audit import security_event_record
from users.services.outbox import email_enqueue, event_enqueue
from users.session_state import sessions_mark_ended
from users.tokens import TokenPair

logger = logging.getLogger(__name__)


class EmailNotVerified(ApplicationError):
    """Login refused until the address is confirmed (REQUIRE_EMAIL_VERIFICATION)."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "email_not_verified"


@dataclass(frozen=True)
class Login:
    user: CustomUser
    session: UserSession
    tokens: TokenPair


def _outstanding_record(*, user: CustomUser, pair: TokenPair) -> None:
    # The token text itself is a bearer secret and is not stored; the jti identifies it.
    OutstandingToken.objects.create(
        user=user, jti=pair.refresh_jti, token="", created_at=timezone.now(), expires_at=pair.refresh_expires_at
    )


@transaction.atomic
def session_start(*, user: CustomUser, ip: str | None, user_agent: str) -> Login:
    """Open a login session for ``user`` and mint its first token pair."""
    now = timezone.now()
    session = UserSession(user=user, ip=ip, user_agent=user_agent[:512], created_at=now, last_used_at=now)
    pair = tokens.token_pair_issue(user=user, session_id=str(session.id))
    session.expires_at = pair.refresh_expires_at
    session.save(force_insert=True)
    _outstanding_record(user=user, pair=pair)
    CustomUser.objects.filter(pk=user.pk).update(last_login=now)
    return Login(user=user, session=session, tokens=pair)


def user_login(*, username: str, password: str, ip: str | None, user_agent: str) -> Login:
    """Check the credentials (username or e-mail) and start a session; one answer for every failure.

    Attempts go through the lockout protocol (429 while locked, even with the right password). Unknown
    accounts and accounts without a usable password cost the same password hash as real ones.
    """
    user = user_for_login(username)
    subject = lockout.Subject.for_login(user_id=user.pk if user else None, identifier=username, ip=ip)
    lockout.attempt_reserve(subject)
    if user is None or not user.has_usable_password():
        CustomUser().set_password(password)  # the same work as a real check: timing reveals nothing
        valid = False
    else:
        valid = user.check_password(password) and user.is_active
    if not valid:
        lockout.attempt_failed(subject)
        security_event_record(
            event_type=SecurityEvent.Type.LOGIN_FAILED,
            user=user,
            ip=ip,
            user_agent=user_agent,
            data={"known_account": user is not None},
        )
        raise InvalidCredentials("Invalid username/e-mail or password.")
    lockout.attempt_succeeded(subject)
    # checked only after the password, so it tells nothing to someone without it
    if settings.REQUIRE_EMAIL_VERIFICATION and not user.email_verified:
        raise EmailNotVerified(
            "Confirm your e-mail address before logging in: open the link we sent you, "
            "or ask for a new one at verify-email/resend/."
        )
    login = session_start(user=user, ip=ip, user_agent=user_agent)
    security_event_record(
        event_type=SecurityEvent.Type.LOGIN_SUCCEEDED,
        user=user,
        ip=ip,
        user_agent=user_agent,
        data={"session_id": str(login.session.id)},
    )
    return login


def tokens_refresh(*, refresh_token: str, ip: str | None = None) -> Login:
    """Rotate a refresh token. The used one is claimed atomically; presenting it again ends the session."""
    claims = tokens.decode(refresh_token, token_type=tokens.REFRESH)
    reused = False
    with transaction.atomic():
        outstanding = OutstandingToken.objects.filter(jti=claims["jti"]).only("id").first()
        if outstanding is None:
            raise TokenInvalid("Token is invalid.")
        try:
            with transaction.atomic():
                # The unique one-to-one makes this insert the single winner among concurrent refreshes.
                BlacklistedToken.objects.create(token=outstanding)
        except IntegrityError:
            reused = True
        if reused:
            ended = _sessions_end(UserSession.objects.filter(pk=claims["sid"]), reason=SessionEndReason.REFRESH_REUSE)
            if ended:
                logger.warning("refresh token reuse: session %s of user %s ended", claims["sid"], claims["sub"])
                security_event_record(
                    event_type=SecurityEvent.Type.REFRESH_REUSE,
                    user=CustomUser.objects.filter(pk=claims["sub"]).first(),
                    ip=ip,
                    data={"session_id": claims["sid"]},
                )
        else:
            session = (
                UserSession.objects.select_for_update(of=("self",))
                .select_related("user")
                .filter(pk=claims["sid"], user_id=claims["sub"])
                .first()
            )
            if session is None or not session.is_active or not session.user.is_active:
                raise SessionEnded("Session has ended; log in again.")
            pair = tokens.token_pair_issue(user=session.user, session_id=str(session.id))
            session.last_used_at = timezone.now()
            session.expires_at = pair.refresh_expires_at
            session.save(update_fields=["last_used_at", "expires_at"])
            _outstanding_record(user=session.user, pair=pair)
    if reused:
        raise SessionEnded("Refresh token was already used; the session has been ended.", code="token_reused")
    return Login(user=session.user, session=session, tokens=pair)


def _sessions_end(sessions, *, reason: str) -> list:
    """End the still-open sessions of ``sessions`` and refuse their tokens at once; returns their ids.

    Call inside a transaction: if Redis cannot record the end, ``RevocationUnavailable`` (503) rolls it back
    (``users.session_state``), so no caller ever reports an end that tokens would not see.
    """
    ids = list(sessions.filter(ended_at__isnull=True).values_list("id", flat=True))
    if ids:
        UserSession.objects.filter(pk__in=ids, ended_at__isnull=True).update(ended_at=timezone.now(), end_reason=reason)
        sessions_mark_ended(ids)
    return ids


@transaction.atomic
def sessions_end_for_user(*, user: CustomUser, reason: str, keep_session_id: str | None = None) -> list:
    """End every open session of ``user`` except ``keep_session_id``."""
    sessions = UserSession.objects.filter(user=user)
    if keep_session_id:
        sessions = sessions.exclude(pk=keep_session_id)
    return _sessions_end(sessions, reason=reason)


@transaction.atomic
def user_logout(
    *,
    user: CustomUser,
    session_id: str,
    refresh_token: str | None = None,
    everywhere: bool = False,
    ip: str | None = None,
) -> list:
    """End the current session, the one ``refresh_token`` belongs to, or (``everywhere``) all of them."""
    if everywhere:
        ended = sessions_end_for_user(user=user, reason=SessionEndReason.LOGOUT)
        security_event_record(event_type=SecurityEvent.Type.LOGOUT, user=user, ip=ip, data={"all": True})
        return ended
    session_ids = {session_id}
    if refresh_token:
        try:
            claims = tokens.decode(refresh_token, token_type=tokens.REFRESH)
        except TokenInvalid as exc:
            raise ValidationError({"refresh_token": [exc.message]}) from exc
        if claims["sub"] != str(user.pk):
            raise ValidationError({"refresh_token": ["This refresh token belongs to another user."]})
        session_ids.add(claims["sid"])
    ended = _sessions_end(UserSession.objects.filter(user=user, pk__in=session_ids), reason=SessionEndReason.LOGOUT)
    security_event_record(
        event_type=SecurityEvent.Type.LOGOUT, user=user, ip=ip, data={"session_ids": [str(i) for i in ended]}
    )
    return ended


@transaction.atomic
def session_revoke(*, user: CustomUser, session_id: str, ip: str | None = None) -> None:
    """End one of the user's own sessions; another user's session is reported as not found."""
    sessions = UserSession.objects.filter(user=user, pk=session_id)
    if not sessions.exists():
        raise NotFound("No such session.")
    ended = _sessions_end(sessions, reason=SessionEndReason.REVOKED)
    if ended:
        event_enqueue(event_type="session.revoked", user=user, data={"session_id": str(session_id)})
        security_event_record(
            event_type=SecurityEvent.Type.SESSION_REVOKED, user=user, ip=ip, data={"session_id": str(session_id)}
        )


@transaction.atomic
def password_change(
    *,
    user: CustomUser,
    old_password: str,
    new_password: str,
    confirm_password: str,
    current_session_id: str,
    ip: str | None = None,
) -> None:
    """Change the password after checking the old one; every other session of the user ends."""
    user = CustomUser.objects.select_for_update().get(pk=user.pk)
    if not user.check_password(old_password):
        raise ValidationError({"old_password": ["Current password is incorrect."]})
    if new_password != confirm_password:
        raise ValidationError({"confirm_password": ["The two passwords do not match."]})
    if new_password == old_password:
        raise ValidationError({"new_password": ["The new password must differ from the current one."]})
    try:
        password_validation.validate_password(new_password, user=user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from exc
    user.set_password(new_password)
    user.save(update_fields=["password", "updated_at"])
    sessions_end_for_user(user=user, reason=SessionEndReason.PASSWORD_CHANGED, keep_session_id=current_session_id)
    # notice to the owner, event to sibling services, audit record: all in the same transaction
    email_enqueue(user=user, template="password_changed")
    event_enqueue(event_type="user.password_changed", user=user, data={"via": "change"})
    security_event_record(event_type=SecurityEvent.Type.PASSWORD_CHANGED, user=user, ip=ip, data={"via": "change"})
