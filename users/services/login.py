"""Completing a login, for every way in: the one owner of "what does this login still need?" and "log them in".

A login is a first factor (a password, or a passkey that proves two factors at once), then, when the policy says
so, a second step, then the completion. Every way in calls this module rather than deciding for itself: the API's
``login/`` and ``login/mfa/``, the passkey sign-in (``passkey_login``), the admin's login pages
(``users.admin_auth``) and the single sign-on pages (``users.web``).

- ``password_login``: checks the password (``credentials.credentials_check``, lockout included), then
  ``login_continue``.
- ``login_continue``: after any first factor, applies the policy (``login_step_needed``): complete the login now,
  or open its second step (an ``mfa_token``, ``users.services.mfa.challenges``) and say which methods finish it.
- ``second_factor_login``: the second step (a code, a recovery code, a WebAuthn assertion: any factor of the
  registry), checked under the same lockout as passwords (``credentials.factor_check``), then completes.
- ``enrolment_login``: for a way in that sets up the factor and completes the login on one page (the admin), the
  enrolment's confirming code completes it.
- ``login_complete``: opens the session with its ``amr`` and ``auth_time`` (``auth.session_start``) when the way
  in wants API tokens, and records the login (``credentials.login_succeeded``). The admin, which opens Django's own
  session, passes ``start_session=False``.

The policy: a login whose ``amr`` already holds ``mfa`` (a passkey with user verification) needs nothing more; a
person with a confirmed factor needs it (``mfa_required``); a person whose role is in ``MFA_REQUIRED_ROLES`` and who
has none must set one up first (``mfa_enrolment_required``); anyone else is in. Service accounts never come here.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction

from users.exceptions import FactorConflict, MfaRequired, MfaTokenInvalid
from users.models import CustomUser, MfaChallenge
from users.services import mfa
from users.services.auth import Login, session_start
from users.services.credentials import Channel, credentials_check, factor_check, login_succeeded, passkey_check
from users.services.mfa import webauthn

PASSWORD_AMR = ("pwd",)


class Step(StrEnum):
    """What a login needs after its first factor; the values are the API's ``code``."""

    NONE = "none"
    FACTOR = "mfa_required"
    ENROLMENT = "mfa_enrolment_required"


@dataclass(frozen=True)
class LoginCompleted:
    """A complete login: how the person authenticated, and the API session when one was asked for."""

    user: CustomUser
    amr: list[str]
    session: Login | None


@dataclass(frozen=True)
class LoginPending:
    """A first factor passed; ``mfa_token`` carries the login to its second step, which ``methods`` can finish
    (for an enrolment: the factors the person can set up)."""

    user: CustomUser
    step: Step
    mfa_token: str
    methods: list[str]
    expires_in: int


LoginOutcome = LoginCompleted | LoginPending


def mfa_required_for(user: CustomUser) -> bool:
    """Whether ``user``'s role must have a second factor (``MFA_REQUIRED_ROLES``)."""
    return user.role in settings.MFA_REQUIRED_ROLES


def login_step_needed(user: CustomUser, *, amr: tuple[str, ...] | list[str]) -> Step:
    """The policy: what a login of ``user`` that has proved ``amr`` still needs."""
    if mfa.MFA in amr:
        return Step.NONE
    if mfa.factors_confirmed(user):
        return Step.FACTOR
    if mfa_required_for(user):
        return Step.ENROLMENT
    return Step.NONE


def _password_checked(
    *,
    identifier: str,
    password: str,
    channel: Channel,
    ip: str | None,
    user_agent: str,
    admit: Callable[[CustomUser], bool] | None = None,
) -> tuple[CustomUser, Step]:
    """The account the password opens (``credentials_check``) and what its login still needs.

    The policy is asked inside the check, once the password is known to be right, so that a right password of an
    account with a second step ahead leaves the lockout's failure count for that step to clear.
    """
    steps: dict[int, Step] = {}

    def factor_pending(user: CustomUser) -> bool:
        steps[user.pk] = login_step_needed(user, amr=PASSWORD_AMR)
        return steps[user.pk] is not Step.NONE

    user = credentials_check(
        identifier=identifier,
        password=password,
        ip=ip,
        user_agent=user_agent,
        channel=channel,
        admit=admit,
        factor_pending=factor_pending,
    )
    return user, steps[user.pk]


def password_login(
    *,
    identifier: str,
    password: str,
    channel: Channel,
    ip: str | None,
    user_agent: str,
    admit: Callable[[CustomUser], bool] | None = None,
    start_session: bool = True,
) -> LoginOutcome:
    """A login with a username or e-mail and a password; one answer for every failure (``credentials_check``)."""
    user, step = _password_checked(
        identifier=identifier, password=password, channel=channel, ip=ip, user_agent=user_agent, admit=admit
    )
    return _continue(
        user=user,
        amr=list(PASSWORD_AMR),
        step=step,
        channel=channel,
        ip=ip,
        user_agent=user_agent,
        start_session=start_session,
    )


def password_alone_check(
    *, identifier: str, password: str, channel: Channel, ip: str | None, user_agent: str
) -> CustomUser:
    """For a way in that can take nothing but a password (Django's ``authenticate()``): the user, if the policy lets
    a password alone in; ``MfaRequired`` (no ``mfa_token``: such a caller could not use one) otherwise."""
    user, step = _password_checked(
        identifier=identifier, password=password, channel=channel, ip=ip, user_agent=user_agent
    )
    if step is not Step.NONE:
        raise MfaRequired("This account needs a second factor; sign in where one can be given.", code=step.value)
    return user


def login_continue(
    *,
    user: CustomUser,
    amr: list[str],
    channel: Channel,
    ip: str | None,
    user_agent: str,
    start_session: bool = True,
) -> LoginOutcome:
    """After a first factor that proved ``amr``: complete the login, or open its second step."""
    step = login_step_needed(user, amr=amr)
    return _continue(
        user=user, amr=amr, step=step, channel=channel, ip=ip, user_agent=user_agent, start_session=start_session
    )


def _continue(
    *,
    user: CustomUser,
    amr: list[str],
    step: Step,
    channel: Channel,
    ip: str | None,
    user_agent: str,
    start_session: bool,
) -> LoginOutcome:
    if step is Step.NONE:
        return login_complete(
            user=user, amr=amr, channel=channel, ip=ip, user_agent=user_agent, start_session=start_session
        )
    purpose = MfaChallenge.Purpose.FACTOR if step is Step.FACTOR else MfaChallenge.Purpose.ENROLMENT
    token, _ = mfa.challenge_issue(
        user=user, purpose=purpose, amr=amr, channel=channel.value, ip=ip, user_agent=user_agent
    )
    methods = mfa.methods_for(user) if step is Step.FACTOR else mfa.enrollable_methods()
    return LoginPending(user=user, step=step, mfa_token=token, methods=methods, expires_in=settings.MFA_TOKEN_SECONDS)


def second_factor_login(
    *,
    mfa_token: str,
    proof_field: str,
    proof: Any,
    channel: Channel,
    ip: str | None,
    user_agent: str,
    start_session: bool = True,
) -> LoginCompleted:
    """The second step of a login: ``proof`` for the factor whose request key is ``proof_field``.

    Raises ``MfaTokenInvalid`` (unknown, expired, spent, or opened on another way in), ``FactorConflict`` when the
    person has no factor yet (an enrolment token before its factor is confirmed), ``AccountLocked``, or
    ``FactorInvalid`` (counted toward the lockout). The token is spent only by a success.
    """
    challenge = mfa.challenge_get(mfa_token, channel=channel.value)
    user = challenge.user
    if not mfa.factors_confirmed(user):
        raise FactorConflict(
            "Set up a second factor first (POST mfa/totp/ with the mfa_token as bearer token).",
            code="mfa_not_enrolled",
        )
    factor = mfa.factor_by_proof_field(proof_field)
    context = mfa.FactorContext(ip=ip, user_agent=user_agent, challenge_id=challenge.pk)
    factor_check(
        user=user,
        method=factor.name,
        verify=lambda: factor.verify(user=user, proof=proof, context=context),
        channel=channel,
        ip=ip,
        user_agent=user_agent,
    )
    with transaction.atomic():
        if not mfa.challenge_spend(challenge):
            raise MfaTokenInvalid("The mfa_token was used already; log in again.")
        completed = login_complete(
            user=user,
            amr=mfa.amr_merge(challenge.amr, factor.amr),
            channel=channel,
            ip=ip,
            user_agent=user_agent,
            start_session=start_session,
            data={"method": factor.name},
        )
        mfa.factor_used(user=user, factor=factor, purpose="login", channel=channel.value, ip=ip, user_agent=user_agent)
    return completed


def passkey_login(
    *,
    credential: dict[str, Any],
    channel: Channel,
    ip: str | None,
    user_agent: str,
    start_session: bool = True,
    browser_binding: str | None = None,
) -> LoginOutcome:
    """A passwordless sign-in: an assertion of a discoverable passkey with user verification, answering the
    challenge of ``webauthn.passwordless_options`` given the same ``browser_binding`` (None: a challenge bound to
    no browser, the API's). A first factor that proves two (``amr`` holds ``mfa``), so the policy lets it in at
    once; checked under the same lockout as a password (``credentials.passkey_check``)."""
    saved = webauthn.credential_named(credential)
    user = passkey_check(
        user=saved.user if saved is not None else None,
        credential_key=str(credential.get("rawId")),
        verify=lambda: webauthn.assertion_check(
            credential=credential,
            user=None,
            purpose=webauthn.Purpose.PASSWORDLESS,
            named=saved,
            session_id=browser_binding,
        ),
        channel=channel,
        ip=ip,
        user_agent=user_agent,
    )
    with transaction.atomic():
        outcome = login_continue(
            user=user,
            amr=list(webauthn.PASSWORDLESS_AMR),
            channel=channel,
            ip=ip,
            user_agent=user_agent,
            start_session=start_session,
        )
        mfa.factor_used(
            user=user, factor=webauthn.WEBAUTHN, purpose="login", channel=channel.value, ip=ip, user_agent=user_agent
        )
    return outcome


def enrolment_login(
    *,
    mfa_token: str,
    code: str,
    channel: Channel,
    ip: str | None,
    user_agent: str,
    start_session: bool = True,
) -> tuple[LoginCompleted, list[str]]:
    """The second step of a login that had to set up a factor first, in one go: confirm the pending authenticator
    app with a code from it (``mfa.totp_enrol_confirm``) and complete the login; returns it and the recovery codes.

    For a way in that shows the enrolment as one page (the admin's): the password opened the enrolment token and the
    code proves the new factor, so the login has both. The API's clients confirm (``mfa/totp/confirm/``) and then
    complete with ``login/mfa/``. Raises ``MfaTokenInvalid`` (not an enrolment token of ``channel``, expired, spent,
    or a factor is already confirmed), ``FactorConflict`` (no app is waiting for confirmation) or ``ProofRejected``.
    """
    challenge = mfa.enrolment_grant_resolve(mfa_token, channel=channel.value)
    user = challenge.user
    with transaction.atomic():
        codes = mfa.totp_enrol_confirm(user=user, code=code, ip=ip, user_agent=user_agent)
        if not mfa.challenge_spend(challenge):
            raise MfaTokenInvalid("The mfa_token was used already; log in again.")
        completed = login_complete(
            user=user,
            amr=mfa.amr_merge(challenge.amr, mfa.TOTP.amr),
            channel=channel,
            ip=ip,
            user_agent=user_agent,
            start_session=start_session,
            data={"method": mfa.TOTP.name, "enrolled": True},
        )
    return completed, codes


def login_complete(
    *,
    user: CustomUser,
    amr: list[str],
    channel: Channel,
    ip: str | None,
    user_agent: str,
    start_session: bool = True,
    data: dict[str, Any] | None = None,
) -> LoginCompleted:
    """Complete a login whose every required step has passed: the session (when asked) and the login's record.

    Only this module decides that the steps have passed; other ways in reach this through ``password_login``,
    ``login_continue`` or ``second_factor_login``.
    """
    # The session and its record commit together: one commit, one flush. Inside a caller's transaction (a second
    # step spending its token) no savepoint: an error here fails the whole step, which rolls back as one.
    with transaction.atomic(savepoint=False):
        session = session_start(user=user, ip=ip, user_agent=user_agent, amr=amr) if start_session else None
        details: dict[str, Any] = {"amr": list(amr), **(data or {})}
        if session is not None:
            details["session_id"] = str(session.session.id)
        login_succeeded(user=user, channel=channel, ip=ip, user_agent=user_agent, data=details)
    return LoginCompleted(user=user, amr=list(amr), session=session)
