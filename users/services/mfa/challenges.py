"""``mfa_token``: the pending second step of a login, opened by its first factor (a password).

The token is 256 random bits with a recognisable prefix, handed out once and stored only as its SHA-256, in
PostgreSQL (not Redis, so it holds through cache faults). It lives ``MFA_TOKEN_SECONDS``, completes at most one
login (spending it is one conditional UPDATE), belongs to the way in that opened it (``channel``: an admin login's
token does not complete an API login) and is no access token: every endpoint but the enrolment ones and
``login/mfa/`` refuses it. An enrolment token (the role needs a factor and the person has none) also works as a
bearer token on the enrolment endpoints, until a factor is confirmed; then only ``login/mfa/`` takes it.
"""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from users.exceptions import MfaTokenInvalid
from users.models import PROFILE_RELATED_NAMES, CustomUser, MfaChallenge
from users.services.mfa.factors import factors_confirmed

TOKEN_PREFIX = "mfa_"  # noqa: S105 - a prefix, not a secret
Purpose = MfaChallenge.Purpose


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_mfa_token(raw: str) -> bool:
    """Whether a bearer credential is an ``mfa_token`` (not an access token)."""
    return raw.startswith(TOKEN_PREFIX)


def challenge_issue(
    *, user: CustomUser, purpose: str, amr: list[str], channel: str, ip: str | None, user_agent: str
) -> tuple[str, MfaChallenge]:
    """A new pending second step for ``user``; returns the token (the only time it exists) and its row."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    challenge = MfaChallenge.objects.create(
        token_hash=_token_hash(token),
        user=user,
        purpose=purpose,
        amr=list(amr),
        channel=channel,
        ip=ip,
        user_agent=user_agent[:512],
        created_at=now,
        expires_at=now + timedelta(seconds=settings.MFA_TOKEN_SECONDS),
    )
    return token, challenge


def challenge_get(token: str, *, channel: str) -> MfaChallenge:
    """The live challenge of ``token`` opened on ``channel``, for an active user; ``MfaTokenInvalid`` otherwise."""
    if not isinstance(token, str) or not looks_like_mfa_token(token):
        raise MfaTokenInvalid("This is not an mfa_token; log in again.")
    people = [f"user__{name}" for name in PROFILE_RELATED_NAMES.values()]  # the login's answer shows the profile
    challenge = (
        MfaChallenge.objects.select_related("user", *people)
        .filter(token_hash=_token_hash(token), used_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if challenge is None or challenge.channel != channel or not challenge.user.is_active:
        raise MfaTokenInvalid("The mfa_token is invalid, expired or already used; log in again.")
    return challenge


def challenge_spend(challenge: MfaChallenge) -> bool:
    """Use the challenge up; False when another request did first (or it expired meanwhile)."""
    return (
        MfaChallenge.objects.filter(pk=challenge.pk, used_at__isnull=True, expires_at__gt=timezone.now()).update(
            used_at=timezone.now()
        )
        == 1
    )


def enrolment_grant_resolve(token: str, *, channel: str) -> MfaChallenge:
    """An enrolment token used as a bearer token: good only while its person has no factor confirmed."""
    challenge = challenge_get(token, channel=channel)
    if challenge.purpose != Purpose.ENROLMENT:
        raise MfaTokenInvalid("This mfa_token completes a login (POST login/mfa/); it is not a bearer token.")
    if factors_confirmed(challenge.user):
        raise MfaTokenInvalid("A factor is set up now; complete the login with POST login/mfa/.")
    return challenge


def challenges_end_for_user(*, user: CustomUser) -> int:
    """Void every pending second step of ``user`` (their factors were reset)."""
    return MfaChallenge.objects.filter(user=user, used_at__isnull=True).update(used_at=timezone.now())


def challenges_prune(*, batch_size: int) -> int:
    """Delete expired or spent challenges, at most ``batch_size``; returns the count."""
    done = MfaChallenge.objects.filter(Q(expires_at__lte=timezone.now()) | Q(used_at__isnull=False))
    ids = list(done.values_list("pk", flat=True)[:batch_size])
    return MfaChallenge.objects.filter(pk__in=ids).delete()[0] if ids else 0
