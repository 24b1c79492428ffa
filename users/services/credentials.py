"""Checking credentials for every way in: API login, the admin's login form, Django's authenticate(), service-token.

The one owner of "are these credentials good": the lockout (``users.services.lockout``), the verify (the same
hashing work for unknown accounts), failure and success accounting, the audit records and the login metrics.
It checks credentials and nothing more: whether the login needs a second step, and opening the session, are
``users.services.login``'s (the one owner of completing a login), which calls ``credentials_check`` first and
``login_succeeded`` once the whole login is complete, so a password accepted while a second factor is still
pending is not recorded as a login. Second-factor codes are checked by ``factor_check`` against the same lockout:
a guessed code counts like a guessed password; so is a passwordless sign-in's passkey (``passkey_check``).
"""

import hashlib
import hmac
from collections.abc import Callable
from enum import StrEnum

from django.conf import settings

from users import metrics
from users.exceptions import EmailNotVerified, FactorInvalid, InvalidClient, InvalidCredentials
from users.models import CustomUser, SecurityEvent, ServiceAccount
from users.selectors import user_for_login
from users.services import lockout
from users.services.audit import security_event_record

_DUMMY_SECRET_HASH = "sha256$" + "0" * 64


class Channel(StrEnum):
    """The way in, written into the audit records."""

    API = "api"
    ADMIN = "admin"
    DJANGO_AUTH = "django-auth"  # django.contrib.auth.authenticate(): the test client, anything built on it
    SERVICE_TOKEN = "service-token"  # noqa: S105 - a channel name
    REAUTHENTICATE = "reauthenticate"  # a signed-in person confirming it is them (step-up)
    SSO = "sso"  # the single sign-on pages (users/web/)


def secret_hash(secret: str) -> str:
    """The stored form of a service account's secret."""
    # Secrets are 256 random bits: a fast hash is enough (no dictionary to attack) and keeps the grant cheap.
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


def _password_matches(user: CustomUser | None, password: str) -> bool:
    if user is None or not user.has_usable_password():
        CustomUser().set_password(password)  # the same work as a real check: timing reveals nothing
        return False
    return user.check_password(password)


def _attempt(subject: lockout.Subject, check: Callable[[], bool]) -> tuple[lockout.Attempt, bool]:
    """One attempt under the lockout of ``subject``: refused at once (``AccountLocked``) while it is locked, else
    ``check``'s answer; an error in ``check`` gives the attempt back uncounted. The caller ends the attempt."""
    try:
        attempt = lockout.attempt_begin(subject)
    except lockout.AccountLocked:
        metrics.LOGINS.labels(outcome="locked").inc()
        raise
    try:
        return attempt, bool(check())
    except BaseException:
        lockout.attempt_abandoned(attempt)
        raise


def _email_verified_require(user: CustomUser) -> None:
    if settings.REQUIRE_EMAIL_VERIFICATION and not user.email_verified:
        raise EmailNotVerified(
            "Confirm your e-mail address before logging in: open the link we sent you, "
            "or ask for a new one at verify-email/resend/."
        )


def credentials_check(
    *,
    identifier: str,
    password: str,
    ip: str | None,
    user_agent: str,
    channel: Channel,
    admit: Callable[[CustomUser], bool] | None = None,
    factor_pending: Callable[[CustomUser], bool] | None = None,
) -> CustomUser:
    """The active account that ``identifier`` (username or e-mail) and ``password`` open; one answer for every failure.

    Raises ``AccountLocked`` (even for the right password) while the account or the IP is locked out,
    ``InvalidCredentials`` for anything wrong, and ``EmailNotVerified`` (only to someone who had the password).
    ``admit`` is the entry point's own rule of who may come in (the admin: active HODs): an account it refuses
    fails exactly like a wrong password, counted and audited, so the rule reveals nothing about the password.
    ``factor_pending`` says whether a second step follows for the account: then the right password leaves the
    failure count as it is (``lockout.attempt_step_passed``) and only ``factor_check``'s success clears it.
    Must not run inside a transaction that the refusal rolls back (the failure must stay counted).
    """
    user = user_for_login(identifier)
    subject = lockout.Subject.for_login(user_id=user.pk if user else None, identifier=identifier, ip=ip)
    attempt, valid = _attempt(
        subject,
        lambda: (
            _password_matches(user, password) and user is not None and user.is_active and (admit is None or admit(user))
        ),
    )
    if not valid or user is None:
        lockout.attempt_failed(attempt)
        security_event_record(
            event_type=SecurityEvent.Type.LOGIN_FAILED,
            user=user,
            ip=ip,
            user_agent=user_agent,
            data={"channel": channel.value, "known_account": user is not None},
        )
        metrics.LOGINS.labels(outcome="failed").inc()
        raise InvalidCredentials("Invalid username/e-mail or password.")
    if factor_pending is not None and factor_pending(user):
        lockout.attempt_step_passed(attempt)
    else:
        lockout.attempt_succeeded(attempt)
    _email_verified_require(user)  # only after the password, so it tells nothing to someone without it
    return user


def factor_check(
    *, user: CustomUser, method: str, verify: Callable[[], bool], channel: Channel, ip: str | None, user_agent: str
) -> None:
    """Check a second factor of ``user`` (``verify`` does the factor's own check) under the account's lockout.

    A wrong code counts toward the same lockout as a wrong password (the account and the client IP), and a burst
    of guesses evaluates at most ``LOGIN_LOCKOUT_THRESHOLD`` at once. Raises ``AccountLocked`` while locked and
    ``FactorInvalid`` (audited as ``mfa_failed``) when ``verify`` says no; a success clears the failure count.
    Must not run inside a transaction that the refusal rolls back.
    """
    subject = lockout.Subject.for_login(user_id=user.pk, identifier=user.get_username(), ip=ip)
    attempt, valid = _attempt(subject, lambda: user.is_active and verify())
    if not valid:
        lockout.attempt_failed(attempt)
        security_event_record(
            event_type=SecurityEvent.Type.MFA_FAILED,
            user=user,
            ip=ip,
            user_agent=user_agent,
            data={"channel": channel.value, "method": method},
        )
        metrics.LOGINS.labels(outcome="mfa_failed").inc()
        raise FactorInvalid("The code is wrong, expired or already used.")
    lockout.attempt_succeeded(attempt)


def passkey_check(
    *,
    user: CustomUser | None,
    credential_key: str,
    verify: Callable[[], bool],
    channel: Channel,
    ip: str | None,
    user_agent: str,
) -> CustomUser:
    """A passwordless sign-in's passkey, under the same lockout as a password: ``user`` owns the credential the
    assertion names (None: no such credential; the attempt counts against that name and the IP), ``verify`` checks
    the assertion (and spends its challenge, so it runs whatever ``user`` is).

    Raises ``AccountLocked``, ``InvalidCredentials`` (one answer for every failure, audited as ``login_failed``) and
    ``EmailNotVerified`` like ``credentials_check``. Must not run inside a transaction that the refusal rolls back.
    """
    subject = lockout.Subject.for_login(
        user_id=user.pk if user else None, identifier=f"passkey:{credential_key[:200]}", ip=ip
    )
    attempt, valid = _attempt(subject, lambda: verify() and user is not None and user.is_active)
    if not valid or user is None:
        lockout.attempt_failed(attempt)
        security_event_record(
            event_type=SecurityEvent.Type.LOGIN_FAILED,
            user=user,
            ip=ip,
            user_agent=user_agent,
            data={"channel": channel.value, "method": "webauthn", "known_account": user is not None},
        )
        metrics.LOGINS.labels(outcome="failed").inc()
        raise InvalidCredentials("The passkey was not accepted.")
    lockout.attempt_succeeded(attempt)
    _email_verified_require(user)
    return user


def login_succeeded(
    *, user: CustomUser, channel: Channel, ip: str | None, user_agent: str, data: dict | None = None
) -> None:
    """Record a completed login (credentials checked, any further step passed): audit record and metric."""
    security_event_record(
        event_type=SecurityEvent.Type.LOGIN_SUCCEEDED,
        user=user,
        ip=ip,
        user_agent=user_agent,
        data={"channel": channel.value, **(data or {})},
    )
    metrics.LOGINS.labels(outcome="succeeded").inc()


def client_credentials_check(*, client_id: str, client_secret: str, ip: str | None) -> ServiceAccount:
    """The active service account these client credentials open; ``InvalidClient`` or ``AccountLocked`` otherwise."""
    subject = lockout.Subject.for_client(client_id=client_id, ip=ip)
    attempt = lockout.attempt_begin(subject)
    try:
        account = ServiceAccount.objects.filter(client_id=client_id, is_active=True).first()
        expected = account.secret_hash if account else _DUMMY_SECRET_HASH
        matches = hmac.compare_digest(expected, secret_hash(client_secret))
    except BaseException:
        lockout.attempt_abandoned(attempt)
        raise
    if account is None or not matches:
        lockout.attempt_failed(attempt)
        security_event_record(
            event_type=SecurityEvent.Type.LOGIN_FAILED,
            ip=ip,
            data={"channel": Channel.SERVICE_TOKEN.value, "client_id": client_id[:64], "known_account": bool(account)},
        )
        raise InvalidClient("Invalid client credentials.")
    lockout.attempt_succeeded(attempt)
    return account
