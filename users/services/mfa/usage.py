"""Using a factor, and an HOD resetting another person's factors."""

from django.db import transaction

from users.exceptions import FactorConflict
from users.models import CustomUser, SessionEndReason
from users.services.auth import sessions_end_for_user
from users.services.mfa.challenges import challenges_end_for_user
from users.services.mfa.changes import RECOVERY_CODE_USED_TEMPLATE, RESET_TEMPLATE, Change, mfa_changed
from users.services.mfa.factors import FACTORS, Factor
from users.services.mfa.recovery import RECOVERY_CODES, recovery_codes_remaining


def factor_used(
    *, user: CustomUser, factor: Factor, purpose: str, channel: str, ip: str | None, user_agent: str
) -> None:
    """Record a successful use of ``factor`` (``purpose``: ``login`` or ``reauthenticate``) in the current transaction.

    A recovery code used also e-mails the person, with how many codes they have left.
    """
    data: dict[str, object] = {"purpose": purpose, "channel": channel}
    email = None
    if factor is RECOVERY_CODES:
        data["recovery_codes_remaining"] = recovery_codes_remaining(user)
        email = RECOVERY_CODE_USED_TEMPLATE
    mfa_changed(user=user, change=Change.USED, method=factor.name, ip=ip, user_agent=user_agent, data=data, email=email)


@transaction.atomic
def mfa_reset(
    *, user: CustomUser, actor: CustomUser | None, ip: str | None = None, user_agent: str = "", via: str = "api"
) -> list[str]:
    """An HOD removes every factor of another person (a lost phone): their sessions and pending logins end too.

    The person logs in again with their password and, if their role needs one, sets up a factor then. Audited with
    the acting HOD (``actor``; None: an operator's command, ``via`` says which), a ``user.mfa_changed`` event, and
    an e-mail to the person. Returns the methods removed.
    """
    if actor is not None and user.pk == actor.pk:
        raise FactorConflict(
            "You cannot reset your own factors; remove them yourself (DELETE mfa/totp/) or ask another HOD.",
            code="mfa_reset_self",
        )
    CustomUser.objects.select_for_update().filter(pk=user.pk).first()
    removed = [factor.name for factor in FACTORS.values() if factor.remove_all(user)]
    challenges_end_for_user(user=user)
    sessions = sessions_end_for_user(user=user, reason=SessionEndReason.MFA_RESET)
    mfa_changed(
        user=user,
        change=Change.RESET,
        method="all",
        actor=actor,
        ip=ip,
        user_agent=user_agent,
        data={"removed": removed, "sessions_ended": len(sessions), "via": via},
        email=RESET_TEMPLATE,
    )
    return removed
