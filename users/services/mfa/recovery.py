"""Recovery codes: ten single-use codes that stand in for a lost factor, stored hashed and shown once.

Each code is 16 characters from an alphabet without look-alikes (about 79 bits), shown as four groups of four;
typing is forgiving (case, spaces and dashes are ignored). A code is spent by one conditional UPDATE, so two
requests racing with the same code cannot both use it.
"""

import secrets
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from users.exceptions import FactorConflict
from users.models import CustomUser, RecoveryCode
from users.services.mfa import crypto
from users.services.mfa.changes import FACTORS_CHANGED_TEMPLATE, Change, mfa_changed
from users.services.mfa.factors import FactorContext, factor_register, factors_confirmed

COUNT = 10
LENGTH = 16
GROUP = 4
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def _shown(code: str) -> str:
    return "-".join(code[i : i + GROUP] for i in range(0, LENGTH, GROUP))


def code_normalize(code: str) -> str:
    """The code as stored: lower case, without the spaces and dashes people type."""
    return "".join(code.split()).replace("-", "").lower()


def _unused(user: CustomUser):
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True)


class RecoveryCodeFactor:
    name: str = "recovery_code"
    proof_field: str = "recovery_code"
    summary_key: str = "recovery_codes"
    amr: tuple[str, ...] = ("otp",)  # a one-time password (RFC 8176), if a printed one
    standalone: bool = False

    def confirmed(self, user: CustomUser) -> bool:
        return _unused(user).exists()

    def verify(self, *, user: CustomUser, proof: Any, context: FactorContext) -> bool:
        if not isinstance(proof, str):
            return False
        code = code_normalize(proof)
        if len(code) != LENGTH:
            return False
        match = next(
            (
                row.pk
                for row in _unused(user).only("pk", "salt", "code_hash")
                if crypto.code_hash_matches(salt=row.salt, code=code, stored=row.code_hash)
            ),
            None,
        )
        if match is None:
            return False
        return RecoveryCode.objects.filter(pk=match, used_at__isnull=True).update(used_at=timezone.now()) == 1

    def summary(self, user: CustomUser) -> dict[str, Any]:
        return {
            "remaining": _unused(user).count(),
            "created_at": RecoveryCode.objects.filter(user=user).aggregate(at=Max("created_at"))["at"],
        }

    def remove_all(self, user: CustomUser) -> int:
        return RecoveryCode.objects.filter(user=user).delete()[0]


RECOVERY_CODES = factor_register(RecoveryCodeFactor())


def recovery_codes_remaining(user: CustomUser) -> int:
    return _unused(user).count()


def _replace(user: CustomUser) -> list[str]:
    """A new set for ``user`` (the old one, used or not, is gone); the codes as shown, the only time they exist."""
    RecoveryCode.objects.filter(user=user).delete()
    codes = [_new_code() for _ in range(COUNT)]
    now = timezone.now()
    rows = []
    for code in codes:
        salt = secrets.token_hex(16)
        stored = crypto.code_hash(salt=salt, code=code)
        rows.append(RecoveryCode(user=user, salt=salt, code_hash=stored, created_at=now))
    RecoveryCode.objects.bulk_create(rows)
    return [_shown(code) for code in codes]


def recovery_codes_issue_first(*, user: CustomUser) -> list[str]:
    """With a person's first factor: a new set, unless they still hold unused codes (then nothing: they keep them)."""
    if _unused(user).exists():
        return []
    return _replace(user)


@transaction.atomic
def recovery_codes_regenerate(*, user: CustomUser, ip: str | None = None, user_agent: str = "") -> list[str]:
    """A new set of codes for a person with a factor; every earlier code stops working."""
    CustomUser.objects.select_for_update().filter(pk=user.pk).first()  # one regeneration at a time per person
    if not factors_confirmed(user):
        raise FactorConflict(
            "Recovery codes come with a second factor; set one up first (POST mfa/totp/).", code="mfa_not_enabled"
        )
    codes = _replace(user)
    mfa_changed(
        user=user,
        change=Change.RECOVERY_CODES_GENERATED,
        method=RECOVERY_CODES.name,
        ip=ip,
        user_agent=user_agent,
        email=FACTORS_CHANGED_TEMPLATE,
    )
    return codes
