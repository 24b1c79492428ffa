"""Login sessions: opening one, token refresh with rotation and reuse detection, logout, session revocation.

Whether a login may be completed (and so a session opened) is ``users.services.login``'s decision; a password
change (which ends sessions too) is owned by ``users.services.people.passwords``.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from clients.claims import DEFAULT_AMR
from users import tokens
from users.exceptions import NotFound, SessionEnded, TokenInvalid
from users.models import CustomUser, EventType, SecurityEvent, SessionEndReason, UserSession
from users.services.audit import security_event_record
from users.services.oidc.backchannel import backchannel_logout_enqueue
from users.services.outbox import event_enqueue
from users.session_state import sessions_mark_ended
from users.tokens import TokenPair

logger = logging.getLogger(__name__)


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
def session_start(*, user: CustomUser, ip: str | None, user_agent: str, amr: Sequence[str] = DEFAULT_AMR) -> Login:
    """Open a login session for ``user`` and mint its first token pair.

    ``amr``: how the person authenticated (RFC 8176); the session keeps it and the time, for every token of it.
    Whether the login may be completed is ``users.services.login``'s decision, which calls this.
    """
    now = timezone.now()
    session = UserSession(
        user=user,
        ip=ip,
        user_agent=user_agent[:512],
        created_at=now,
        last_used_at=now,
        amr=list(amr),
        auth_time=now.replace(microsecond=0),
    )
    pair = tokens.token_pair_issue(user=user, session_id=str(session.id), amr=session.amr, auth_time=session.auth_time)
    session.expires_at = pair.refresh_expires_at
    session.save(force_insert=True)
    _outstanding_record(user=user, pair=pair)
    CustomUser.objects.filter(pk=user.pk).update(last_login=now)
    return Login(user=user, session=session, tokens=pair)


def tokens_refresh(*, refresh_token: str, ip: str | None = None) -> Login:
    """Rotate a refresh token. The used one is claimed atomically; presenting it again ends the session."""
    claims = tokens.decode(refresh_token, token_type=tokens.REFRESH)
    reused = False
    session: UserSession | None = None
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
            pair = tokens.token_pair_issue(
                user=session.user,
                session_id=str(session.id),
                amr=session.amr,
                auth_time=session.auth_time or session.created_at,
            )
            session.last_used_at = timezone.now()
            session.expires_at = pair.refresh_expires_at
            session.save(update_fields=["last_used_at", "expires_at"])
            _outstanding_record(user=session.user, pair=pair)
    if reused or session is None:
        raise SessionEnded("Refresh token was already used; the session has been ended.", code="token_reused")
    return Login(user=session.user, session=session, tokens=pair)


def _sessions_end(sessions, *, reason: str) -> list:
    """End the still-open sessions of ``sessions`` and refuse their tokens at once; returns their ids.

    Call inside a transaction: if Redis cannot record the end, ``RevocationUnavailable`` (503) rolls it back
    (``users.session_state``), so no caller ever reports an end that tokens would not see. The clients that got
    tokens through these sessions get a back-channel logout token (``users.services.oidc.backchannel``, outbox).
    """
    ids = list(sessions.filter(ended_at__isnull=True).values_list("id", flat=True))
    if ids:
        UserSession.objects.filter(pk__in=ids, ended_at__isnull=True).update(ended_at=timezone.now(), end_reason=reason)
        sessions_mark_ended(ids)
        backchannel_logout_enqueue(session_ids=ids)  # the apps signed in through these sessions hear of it
    return ids


@transaction.atomic
def session_end_for_reuse(*, session_id: str, reason: str, ip: str | None = None, data: dict | None = None) -> list:
    """End one session because a single-use credential of it came back (a refresh token, an authorization code);
    audited as a reuse. Returns the ids ended (none if it had ended already)."""
    session = UserSession.objects.filter(pk=session_id).select_related("user").first()
    if session is None:
        return []
    ended = _sessions_end(UserSession.objects.filter(pk=session_id), reason=reason)
    if ended:
        logger.warning("single-use credential reused: session %s of user %s ended", session_id, session.user_id)
        security_event_record(
            event_type=SecurityEvent.Type.REFRESH_REUSE,
            user=session.user,
            ip=ip,
            data={"session_id": str(session_id), **(data or {})},
        )
    return ended


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
        event_enqueue(event_type=EventType.SESSION_REVOKED, user=user, data={"session_id": str(session_id)})
        security_event_record(
            event_type=SecurityEvent.Type.SESSION_REVOKED, user=user, ip=ip, data={"session_id": str(session_id)}
        )
