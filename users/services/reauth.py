"""Step-up: sensitive changes need a recent authentication; ``reauthenticate/`` provides one.

The one rule (``recent_authentication_check``): the person authenticated within ``REAUTH_SECONDS``, by logging in
(the session's ``auth_time``) or by reauthenticating in that session. Every way in to a sensitive change asks it:
the API through ``session_recent_authentication_require`` (the session of the bearer token); a way in without an
API session (the Django admin) passes the time its own login completed. The sensitive changes: the person's own
e-mail address and password, removing a factor, regenerating recovery codes, resetting someone's factors, and
creating an HOD or a service account.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from users.exceptions import FactorInvalid, InvalidCredentials, ProofRejected, ReauthenticationRequired
from users.models import CustomUser, SecurityEvent, UserSession
from users.services import mfa
from users.services.audit import security_event_record
from users.services.credentials import Channel, credentials_check, factor_check

PASSWORD_FIELD = "password"  # noqa: S105 - a request key


def recent_authentication_check(*, authenticated_at: datetime | None) -> None:
    """Raise ``ReauthenticationRequired`` unless ``authenticated_at`` lies within ``REAUTH_SECONDS``."""
    if authenticated_at is None or timezone.now() - authenticated_at > timedelta(seconds=settings.REAUTH_SECONDS):
        raise ReauthenticationRequired(
            f"This change needs a recent sign-in: confirm it is you with POST reauthenticate/ (your password or a "
            f"code), then repeat it within {settings.REAUTH_SECONDS} seconds."
        )


def session_authenticated_at(*, session_id: str) -> datetime | None:
    """When the person last authenticated in this session: its login or its latest reauthentication."""
    session = UserSession.objects.filter(pk=session_id).only("auth_time", "created_at", "reauthenticated_at").first()
    if session is None:
        return None
    times = [time for time in (session.auth_time or session.created_at, session.reauthenticated_at) if time]
    return max(times, default=None)


def session_recent_authentication_require(*, session_id: str) -> None:
    """The step-up check of an API request: its session authenticated within ``REAUTH_SECONDS``."""
    recent_authentication_check(authenticated_at=session_authenticated_at(session_id=session_id))


def reauthenticate(
    *,
    user: CustomUser,
    session_id: str | None,
    proof_field: str,
    proof: Any,
    ip: str | None,
    user_agent: str,
    ceremony_session_id: str | None = None,
) -> datetime:
    """The signed-in person proves it is them again (their password, or a factor); marks the session; returns when.

    ``session_id`` is the API session to mark; a way in with its own session (the admin: ``None``) keeps the time
    returned itself, and passes as ``ceremony_session_id`` the id it bound its passkey challenges to
    (``webauthn.reauthentication_options(session_id=...)``), an id its own session keeps.

    Checked like a login (the lockout counts wrong passwords and codes alike); a wrong one is ``ProofRejected``.
    """
    factor = None
    if proof_field == PASSWORD_FIELD:
        try:
            credentials_check(
                identifier=user.get_username(),
                password=proof,
                ip=ip,
                user_agent=user_agent,
                channel=Channel.REAUTHENTICATE,
                admit=lambda candidate: candidate.pk == user.pk,
            )
        except InvalidCredentials as exc:
            raise ProofRejected("The password is wrong.", code="invalid_password") from exc
    else:
        factor = mfa.factor_by_proof_field(proof_field)
        context = mfa.FactorContext(ip=ip, user_agent=user_agent, session_id=session_id or ceremony_session_id)
        try:
            factor_check(
                user=user,
                method=factor.name,
                verify=lambda: factor.verify(user=user, proof=proof, context=context),
                channel=Channel.REAUTHENTICATE,
                ip=ip,
                user_agent=user_agent,
            )
        except FactorInvalid as exc:
            raise ProofRejected(exc.message) from exc
    now = timezone.now()
    with transaction.atomic():
        if session_id is not None:
            UserSession.objects.filter(pk=session_id, user=user).update(reauthenticated_at=now)
        method = factor.name if factor is not None else PASSWORD_FIELD
        where = {"session_id": str(session_id)} if session_id is not None else {"channel": Channel.ADMIN.value}
        security_event_record(
            event_type=SecurityEvent.Type.REAUTHENTICATED,
            user=user,
            ip=ip,
            user_agent=user_agent,
            data={"method": method, **where},
        )
        if factor is not None:
            mfa.factor_used(
                user=user,
                factor=factor,
                purpose="reauthenticate",
                channel=Channel.REAUTHENTICATE.value,
                ip=ip,
                user_agent=user_agent,
            )
    return now
