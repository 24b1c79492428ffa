"""Account recovery and proof of address: password reset, invitations and e-mail verification.

Links carry ``uid`` (the user id, base64) and a token from a ``PasswordResetTokenGenerator``.
Tokens are made when the e-mail is delivered, never stored, and hash the state they change, so
they work once: a reset or invitation token dies when the password changes (or the user logs in),
a verification token when ``email_verified`` or the address changes. Each kind has its own salt and
lifetime (``PASSWORD_RESET_TIMEOUT``, ``INVITATION_TIMEOUT_SECONDS``,
``EMAIL_VERIFICATION_TIMEOUT_SECONDS``).
"""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import transaction
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_decode, urlsafe_base64_encode

from user_service.exceptions import ApplicationError
from users.models import CustomUser, OutboxMessage
from users.services.outbox import email_enqueue, message_enqueue
from users.services.people.passwords import password_set_by_reset
from users.services.people.update import email_verified_set


class LinkInvalid(ApplicationError):
    default_code = "invalid_link"


INVALID_LINK = "This link is invalid or has expired; request a new one."


class _TimedTokenGenerator(PasswordResetTokenGenerator):
    """Django's generator with its own salt and lifetime (Django's reads only PASSWORD_RESET_TIMEOUT)."""

    def timeout_seconds(self) -> int:
        return settings.PASSWORD_RESET_TIMEOUT

    def check_token(self, user, token) -> bool:
        if not (user and token and isinstance(token, str)):
            return False
        try:
            ts_b36, _ = token.split("-")
            ts = base36_to_int(ts_b36)
        except ValueError:
            return False
        for secret in [self.secret, *self.secret_fallbacks]:
            if constant_time_compare(self._make_token_with_timestamp(user, ts, secret), token):
                break
        else:
            return False
        return self._num_seconds(self._now()) - ts <= self.timeout_seconds()


class PasswordResetTokens(_TimedTokenGenerator):
    key_salt = "users.services.account.PasswordResetTokens"


class InvitationTokens(_TimedTokenGenerator):
    """Same single-use rule as a reset (the password hash is hashed in), a longer lifetime."""

    key_salt = "users.services.account.InvitationTokens"

    def timeout_seconds(self) -> int:
        return settings.INVITATION_TIMEOUT_SECONDS


class EmailVerificationTokens(_TimedTokenGenerator):
    """Bound to the address and to ``email_verified``: dead once used or once the address changes."""

    key_salt = "users.services.account.EmailVerificationTokens"

    def timeout_seconds(self) -> int:
        return settings.EMAIL_VERIFICATION_TIMEOUT_SECONDS

    def _make_hash_value(self, user, timestamp) -> str:
        return f"{user.pk}|{user.email.lower()}|{int(user.email_verified)}|{timestamp}"


password_reset_tokens = PasswordResetTokens()
invitation_tokens = InvitationTokens()
email_verification_tokens = EmailVerificationTokens()


def uid_encode(user: CustomUser) -> str:
    return urlsafe_base64_encode(force_bytes(user.pk))


def _user_from_uid(uid: str, *, lock: bool = False) -> CustomUser | None:
    try:
        pk = int(urlsafe_base64_decode(uid).decode())
    except (TypeError, ValueError, UnicodeDecodeError, OverflowError):
        return None
    users = CustomUser.objects.select_for_update() if lock else CustomUser.objects
    return users.filter(pk=pk, is_active=True).first()


def _link(path: str, user: CustomUser, token: str) -> str:
    return f"{settings.FRONTEND_URL}/{path}?{urlencode({'uid': uid_encode(user), 'token': token})}"


def password_reset_link(user: CustomUser) -> str:
    return _link("reset-password", user, password_reset_tokens.make_token(user))


def invitation_link(user: CustomUser) -> str:
    """Invitations use the reset page: the invited person chooses their first password there."""
    return _link("reset-password", user, invitation_tokens.make_token(user))


def email_verification_link(user: CustomUser) -> str:
    return _link("verify-email", user, email_verification_tokens.make_token(user))


# --- Password reset ----------------------------------------------------------------------------


def password_reset_request(*, email: str) -> None:
    """Queue a reset e-mail for ``email``; the account is looked up at delivery, never here.

    Every request does the same work (one insert, one publish) whether or not the address belongs to
    an account, so neither the answer nor its timing tells who has an account.
    """
    message_enqueue(kind=OutboxMessage.Kind.EMAIL, topic="password_reset", payload={"email": email.strip()})


@transaction.atomic
def password_reset_confirm(*, uid: str, token: str, new_password: str, confirm_password: str) -> CustomUser:
    """Set a new password from a reset or invitation link; every session of the user ends."""
    user = _user_from_uid(uid, lock=True)
    if user is None or not (
        password_reset_tokens.check_token(user, token) or invitation_tokens.check_token(user, token)
    ):
        raise LinkInvalid(INVALID_LINK)
    return password_set_by_reset(user=user, new_password=new_password, confirm_password=confirm_password)


# --- E-mail verification -----------------------------------------------------------------------


@transaction.atomic
def email_verify(*, uid: str, token: str) -> CustomUser:
    """Mark the user's address verified from a verification link (single use)."""
    user = _user_from_uid(uid, lock=True)
    if user is None or user.email_verified or not email_verification_tokens.check_token(user, token):
        raise LinkInvalid(INVALID_LINK)
    email_verified_set(user=user)
    return user


def email_verification_resend(*, user: CustomUser) -> bool:
    """Queue a fresh verification e-mail for ``user``; False (nothing queued) if already verified."""
    user = CustomUser.objects.get(pk=user.pk)
    if user.email_verified:
        return False
    email_enqueue(user=user, template="verify_email")
    return True


def email_verification_request(*, email: str) -> None:
    """Anonymous resend (a login refused for an unverified address cannot get a token): same work for any address."""
    message_enqueue(kind=OutboxMessage.Kind.EMAIL, topic="verify_email", payload={"email": email.strip()})
