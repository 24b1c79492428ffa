"""Authenticator apps (TOTP, RFC 6238: 30-second steps, 6 digits, HMAC-SHA-1, the apps' common ground).

Enrolment: ``totp_enrol_begin`` stores a new secret as pending and answers it (with its ``otpauth://`` URI and a QR
code); ``totp_enrol_confirm`` accepts it once the person types a code from their app. A code is accepted for the
current step and one step either side (clock drift), and a step is accepted once: ``last_used_step`` only moves
forward, through one conditional UPDATE, so a code (or an earlier one) used again is refused, even by two requests
racing each other.
"""

import hashlib
import io
import time
from dataclasses import dataclass
from typing import Any

import pyotp
import segno
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pyotp.utils import strings_equal

from users.exceptions import FactorConflict, NotFound, ProofRejected
from users.models import CustomUser, TOTPDevice
from users.services.mfa import crypto, recovery
from users.services.mfa.changes import FACTORS_CHANGED_TEMPLATE, Change, mfa_changed
from users.services.mfa.factors import FactorContext, factor_register, factors_confirmed

DIGITS = 6
PERIOD_SECONDS = 30
DRIFT_STEPS = 1  # steps accepted either side of the current one


@dataclass(frozen=True)
class TOTPEnrolment:
    """What the person's app needs: the secret, as text and as an ``otpauth://`` URI and its QR code (SVG)."""

    secret: str
    otpauth_uri: str
    qr_svg: str


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_SECONDS, digest=hashlib.sha1)


def _matching_step(secret: str, code: str, now: float) -> int | None:
    """The latest time step within the drift whose code is ``code``, or None."""
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    totp = _totp(secret)
    current = totp.timecode(now)
    matched = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if strings_equal(code, totp.generate_otp(step)):  # every step compared: no early exit
            matched = step
    return matched


def _code_accept(device: TOTPDevice, code: str) -> bool:
    """Whether ``code`` is good now for ``device`` and its step was not used before; spends the step if so."""
    step = _matching_step(crypto.secret_decrypt(device.secret_encrypted), code, time.time())
    if step is None:
        return False
    spent = TOTPDevice.objects.filter(pk=device.pk, last_used_step__lt=step).update(
        last_used_step=step, last_used_at=timezone.now()
    )
    return spent == 1


class TOTPFactor:
    name: str = "totp"
    proof_field: str = "code"
    summary_key: str = "totp"
    amr: tuple[str, ...] = ("otp",)
    standalone: bool = True

    def confirmed(self, user: CustomUser) -> bool:
        return TOTPDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()

    def verify(self, *, user: CustomUser, proof: Any, context: FactorContext) -> bool:
        device = TOTPDevice.objects.filter(user=user, confirmed_at__isnull=False).first()
        return device is not None and isinstance(proof, str) and _code_accept(device, proof)

    def summary(self, user: CustomUser) -> dict[str, Any]:
        device = TOTPDevice.objects.filter(user=user).first()
        return {
            "enabled": bool(device and device.confirmed_at),
            "pending": bool(device and not device.confirmed_at),
            "confirmed_at": device.confirmed_at if device else None,
            "last_used_at": device.last_used_at if device else None,
        }

    def remove_all(self, user: CustomUser) -> int:
        return TOTPDevice.objects.filter(user=user).delete()[0]


TOTP = factor_register(TOTPFactor())


@transaction.atomic
def totp_enrol_begin(*, user: CustomUser) -> TOTPEnrolment:
    """Start (or start again) setting up an authenticator app: a new pending secret; one app per person."""
    device = TOTPDevice.objects.select_for_update().filter(user=user).first()
    if device is not None and device.confirmed_at is not None:
        raise FactorConflict(
            "An authenticator app is already set up; remove it (DELETE mfa/totp/) to set up another.",
            code="totp_already_enrolled",
        )
    secret = pyotp.random_base32()  # 160 bits, as RFC 4226 recommends
    stored = crypto.secret_encrypt(secret)
    if device is None:
        TOTPDevice.objects.create(user=user, secret_encrypted=stored)
    else:
        device.secret_encrypted, device.created_at, device.last_used_step = stored, timezone.now(), 0
        device.save(update_fields=["secret_encrypted", "created_at", "last_used_step"])
    uri = _totp(secret).provisioning_uri(name=user.email or user.get_username(), issuer_name=settings.MFA_TOTP_ISSUER)
    return TOTPEnrolment(secret=secret, otpauth_uri=uri, qr_svg=_qr_svg(uri))


def _qr_svg(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", xmldecl=False, scale=4, nl=False, title="TOTP QR code")
    return buffer.getvalue().decode()


def totp_enrol_confirm(*, user: CustomUser, code: str, ip: str | None = None, user_agent: str = "") -> list[str]:
    """Confirm the pending app with a code from it; answers the recovery codes, new when the person had none.

    A person who already holds recovery codes (from another factor) keeps them and gets an empty list.
    """
    device = TOTPDevice.objects.filter(user=user, confirmed_at__isnull=True).first()
    if device is None:
        raise FactorConflict(
            "No authenticator app is waiting for confirmation; start with POST mfa/totp/.", code="no_pending_enrolment"
        )
    if not _code_accept(device, code):
        raise ProofRejected("The code is wrong or expired; type the code your app shows now.")
    with transaction.atomic():
        confirmed = TOTPDevice.objects.filter(pk=device.pk, confirmed_at__isnull=True).update(
            confirmed_at=timezone.now()
        )
        if not confirmed:
            raise FactorConflict("This authenticator app was confirmed already.", code="no_pending_enrolment")
        codes = recovery.recovery_codes_issue_first(user=user)
        mfa_changed(
            user=user,
            change=Change.ENROLLED,
            method=TOTP.name,
            ip=ip,
            user_agent=user_agent,
            email=FACTORS_CHANGED_TEMPLATE,
        )
    return codes


@transaction.atomic
def totp_remove(*, user: CustomUser, ip: str | None = None, user_agent: str = "") -> None:
    """Remove the person's authenticator app (pending or confirmed); the last factor takes the recovery codes along."""
    device = TOTPDevice.objects.select_for_update().filter(user=user).first()
    if device is None:
        raise NotFound("No authenticator app is set up.")
    device.delete()
    if device.confirmed_at is None:
        return  # never a factor: nothing to record
    data: dict[str, Any] = {}
    if not factors_confirmed(user):
        data["recovery_codes_removed"] = recovery.RECOVERY_CODES.remove_all(user)
    mfa_changed(
        user=user,
        change=Change.REMOVED,
        method=TOTP.name,
        ip=ip,
        user_agent=user_agent,
        data=data,
        email=FACTORS_CHANGED_TEMPLATE,
    )


def totp_secrets_reencrypt(*, batch_size: int = 500) -> int:
    """Encrypt every stored TOTP secret again under the first of ``MFA_ENCRYPTION_KEYS`` (after adding a new key
    first); afterwards the older keys can be dropped. Returns how many were rewritten."""
    done, last_pk = 0, 0
    while True:
        rows = TOTPDevice.objects.filter(pk__gt=last_pk).order_by("pk").only("pk", "secret_encrypted")
        batch = list(rows[:batch_size])
        if not batch:
            return done
        for device in batch:
            # one row at a time, conditional on the text read: a secret replaced meanwhile is left to its writer
            done += TOTPDevice.objects.filter(pk=device.pk, secret_encrypted=device.secret_encrypted).update(
                secret_encrypted=crypto.secret_reencrypt(device.secret_encrypted)
            )
        last_pk = batch[-1].pk
