"""Which changes are sensitive: they need a recent authentication (step-up) whichever way in makes them.

The API's views and the Django admin ask here whether a change is sensitive, and ``users.services.reauth`` whether
the person authenticated recently enough (``REAUTH_SECONDS``). Sensitive, because each hands over an account or
the keys to many: a new e-mail address of any account (password-reset links go there), setting or changing a
password, removing a factor or regenerating recovery codes, resetting someone's factors, creating an HOD (who
controls every identity) and creating a service account (a key to every person's data). The last ones are
sensitive whatever their fields, so their entry points ask ``reauth`` directly; the two below depend on the
change.
"""

from users.models import CustomUser, UserType


def person_create_needs_step_up(*, user_type: int | str | None) -> bool:
    """Whether creating a person of ``user_type`` needs a recent authentication: an HOD does."""
    try:
        return int(user_type) == UserType.HOD  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False  # not a role: the change is refused by its own validation


def email_change_needs_step_up(*, user: CustomUser, email: str | None) -> bool:
    """Whether giving ``user`` the address ``email`` needs a recent authentication: a new address does, for any
    account and whoever changes it (``None`` or the same address, in any case, is no change)."""
    if not isinstance(email, str):
        return False
    return email.strip().lower() != (user.email or "").strip().lower()
