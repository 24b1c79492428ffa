"""Login sessions: opening one, token refresh with rotation and reuse detection, logout, session revocation.

Whether a login may be completed (and so a session opened) is ``users.services.login``'s decision; a password
change (which ends sessions too) is owned by ``users.services.people.passwords``.
"""

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
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


@transaction.atomic(savepoint=False)  # inside a caller's transaction (login_complete), no savepoint of its own
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


_SESSION = UserSession._meta.db_table
_USER = CustomUser._meta.db_table
_OUTSTANDING = OutstandingToken._meta.db_table
_ROTATE = f"""
WITH presented AS (
    SELECT id FROM {_OUTSTANDING} WHERE jti = %(jti)s
), live AS (
    SELECT s.id, s.amr, s.auth_time, s.created_at, u.username, u.user_type
    FROM {_SESSION} s JOIN {_USER} u ON u.id = s.user_id
    WHERE s.id = %(sid)s AND s.user_id = %(sub)s AND s.ended_at IS NULL AND s.expires_at > %(now)s AND u.is_active
    FOR UPDATE OF s
), claimed AS (
    INSERT INTO {BlacklistedToken._meta.db_table} (token_id, blacklisted_at)
    SELECT id, %(now)s FROM presented WHERE EXISTS (SELECT 1 FROM live)
    ON CONFLICT (token_id) DO NOTHING
    RETURNING token_id
), extended AS (
    UPDATE {_SESSION} SET last_used_at = %(now)s, expires_at = %(expires_at)s
    WHERE id = (SELECT id FROM live) AND EXISTS (SELECT 1 FROM claimed)
    RETURNING id
), recorded AS (
    INSERT INTO {_OUTSTANDING} (user_id, jti, token, created_at, expires_at)
    SELECT %(sub)s, %(new_jti)s, '', %(now)s, %(expires_at)s FROM extended
    RETURNING id
)
SELECT (SELECT count(*) FROM presented), (SELECT count(*) FROM recorded), live.amr, live.auth_time,
    live.created_at, live.username, live.user_type
FROM (SELECT 1) AS one LEFT JOIN live ON true
"""  # noqa: S608 - the table names are the models'; every value is a parameter


def tokens_refresh(*, refresh_token: str, ip: str | None = None) -> Login:
    """Rotate a refresh token. The used one is claimed atomically; presenting it again ends the session.

    One SQL statement (its own transaction: one round trip, one commit to flush) claims the presented token,
    extends its session and records the new refresh token, all or nothing. The claim is an insert into the
    blacklist's unique column, made only while the session is alive (its row locked for the statement): among
    concurrent refreshes with one token exactly one inserts; the others wait for its commit and find the
    token taken, which is reuse. The new tokens are signed after the commit.
    """
    claims = tokens.decode(refresh_token, token_type=tokens.REFRESH)
    now = timezone.now().replace(microsecond=0)
    new_jti = uuid.uuid4().hex
    params = {
        "jti": claims["jti"],
        "now": now,
        "expires_at": now + settings.JWT_REFRESH_LIFETIME,
        "sid": claims["sid"],
        "sub": int(claims["sub"]),
        "new_jti": new_jti,
    }
    with connection.cursor() as cursor:
        cursor.execute(_ROTATE, params)
        presented, recorded, amr, auth_time, created_at, username, user_type = cursor.fetchone()
    if not presented:
        raise TokenInvalid("Token is invalid.")
    if username is None:  # no live session: nothing was claimed
        raise SessionEnded("Session has ended; log in again.")
    if recorded:
        session_id = claims["sid"]
        user = CustomUser.from_db(
            connection.alias, ["id", "username", "user_type"], [params["sub"], username, user_type]
        )
        amr = json.loads(amr) if isinstance(amr, str) else amr
        pair = tokens.token_pair_issue(
            user=user, session_id=session_id, amr=amr, auth_time=auth_time or created_at, now=now, refresh_jti=new_jti
        )
        session = UserSession.from_db(  # the values in the model's field order, as from_db reads them
            connection.alias,
            ["id", "user_id", "created_at", "last_used_at", "expires_at", "amr", "auth_time"],
            [uuid.UUID(session_id), user.pk, created_at, now, params["expires_at"], amr, auth_time],
        )
        return Login(user=user, session=session, tokens=pair)
    with transaction.atomic():
        ended = _sessions_end(UserSession.objects.filter(pk=claims["sid"]), reason=SessionEndReason.REFRESH_REUSE)
        if ended:
            logger.warning("refresh token reuse: session %s of user %s ended", claims["sid"], claims["sub"])
            security_event_record(
                event_type=SecurityEvent.Type.REFRESH_REUSE,
                user=CustomUser.objects.filter(pk=claims["sub"]).first(),
                ip=ip,
                data={"session_id": claims["sid"]},
            )
    raise SessionEnded("Refresh token was already used; the session has been ended.", code="token_reused")


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
