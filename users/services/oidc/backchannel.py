"""OpenID Connect Back-Channel Logout 1.0: when a login session ends, each client that got tokens for it hears so.

``users.services.auth._sessions_end`` (the one place sessions end: logout, password change, revoke,
deactivation, MFA reset, token reuse) calls ``backchannel_logout_enqueue`` inside its transaction: one outbox row
per client that exchanged a code in one of the ended sessions and registered a ``backchannel_logout_uri``. The
outbox delivers it after commit and retries with backoff until the client answers 2xx (nothing is lost when the
client or the broker is down); ``backchannel_logout_deliver`` mints the logout token at each attempt (a short
``exp``), with the message id as ``jti`` so a client can drop a duplicate.
"""

import time
from collections.abc import Iterable

import requests
from django.conf import settings

from users import tokens
from users.models import OidcAuthorization, OutboxMessage
from users.services.outbox import PermanentDeliveryError, message_enqueue

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_SECONDS = 120


class LogoutDeliveryFailed(Exception):
    """The client did not take the logout token this time (network error, 5xx); the outbox retries."""


def backchannel_logout_enqueue(*, session_ids: Iterable[str]) -> int:
    """In the transaction ending ``session_ids``: one outbox message per (session, client with a logout URI)."""
    rows = (
        OidcAuthorization.objects.filter(session_id__in=list(session_ids), exchanged_at__isnull=False)
        .exclude(application__oidc_client__backchannel_logout_uri="")
        .exclude(application__oidc_client__isnull=True)
        .values_list(
            "session_id",
            "session__user_id",
            "application__client_id",
            "application__oidc_client__backchannel_logout_uri",
        )
        .distinct()
    )
    count = 0
    for session_id, user_id, client_id, uri in rows:
        payload = {"sid": str(session_id), "sub": str(user_id), "client_id": client_id, "uri": uri}
        message_enqueue(kind=OutboxMessage.Kind.LOGOUT, topic=client_id[:64], payload=payload)
        count += 1
    return count


def logout_token(*, message: OutboxMessage) -> str:
    payload = message.payload
    now = int(time.time())
    return tokens.encode(
        {
            "iss": settings.JWT_ISSUER,
            "sub": payload["sub"],
            "aud": payload["client_id"],
            "iat": now,
            "exp": now + LOGOUT_TOKEN_SECONDS,
            "jti": str(message.pk),
            "sid": payload["sid"],
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        },
        typ="logout+jwt",
    )


def backchannel_logout_deliver(message: OutboxMessage) -> str | None:
    """POST the logout token to the client; a 400 (the client refused the token) is final, anything else retried."""
    timeout = settings.OIDC_BACKCHANNEL_TIMEOUT_SECONDS
    try:
        response = requests.post(
            message.payload["uri"],
            data={"logout_token": logout_token(message=message)},
            headers={"Cache-Control": "no-store", "User-Agent": "user-service-oidc/1"},
            timeout=(min(2.0, timeout), timeout),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise LogoutDeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    response.close()
    if 200 <= response.status_code < 300:
        return None
    if response.status_code == 400:
        raise PermanentDeliveryError(f"the client refused the logout token (HTTP {response.status_code})")
    raise LogoutDeliveryFailed(f"the client answered HTTP {response.status_code}")
