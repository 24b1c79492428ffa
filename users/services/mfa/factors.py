"""The registry of second factors: what each is called, how it is checked, what it proves (RFC 8176 ``amr``).

Every flow that asks for a factor (the second step of a login, ``reauthenticate/``, an HOD's reset, ``GET mfa/``)
goes through this registry, so a new kind of factor plugs in by registering one object here
(``factor_register``) and adding its field to the API's input serializers: nothing else names the factors.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from users.models import CustomUser

MFA = "mfa"  # RFC 8176: more than one factor was used


@dataclass(frozen=True)
class FactorContext:
    """Where a factor is being checked: the client, and the login step or session it belongs to.

    ``challenge_id`` is the pending login step (``MfaChallenge``) when checked at ``login/mfa/``, so a factor whose
    proof is bound to a server challenge (a WebAuthn assertion) can find it; ``session_id`` is the session when a
    signed-in person reauthenticates.
    """

    ip: str | None
    user_agent: str
    challenge_id: int | None = None
    session_id: str | None = None


class Factor(Protocol):
    """One kind of second factor."""

    name: str  # the method's name in ``methods`` and in audit records and events
    proof_field: str  # the request key that carries its proof (``login/mfa/``, ``reauthenticate/``)
    summary_key: str  # its key in ``GET mfa/``
    amr: tuple[str, ...]  # what a successful check proves (RFC 8176)
    standalone: bool  # a factor in its own right (TOTP, a passkey); recovery codes only come with one

    def confirmed(self, user: CustomUser) -> bool:
        """Whether ``user`` can use it now (enrolled and confirmed; recovery codes: one left)."""
        ...

    def verify(self, *, user: CustomUser, proof: Any, context: FactorContext) -> bool:
        """Whether ``proof`` checks out; spends what is single-use (a time step, a code). No lockout: the caller's."""
        ...

    def summary(self, user: CustomUser) -> Any:
        """Its state for ``GET mfa/`` (never a secret)."""
        ...

    def remove_all(self, user: CustomUser) -> int:
        """Delete all of ``user``'s (an HOD's reset); returns how many were removed."""
        ...


FACTORS: dict[str, Factor] = {}


def factor_register(factor: Factor) -> Factor:
    """Add a kind of factor to the registry (at import time of its module)."""
    if factor.name in FACTORS and FACTORS[factor.name] is not factor:
        raise ValueError(f"a factor named {factor.name!r} is already registered")
    FACTORS[factor.name] = factor
    return factor


def factor_by_proof_field(field: str) -> Factor:
    return next(factor for factor in FACTORS.values() if factor.proof_field == field)


def proof_fields() -> tuple[str, ...]:
    return tuple(factor.proof_field for factor in FACTORS.values())


def standalone_factors() -> Iterable[Factor]:
    return (factor for factor in FACTORS.values() if factor.standalone)


def factors_confirmed(user: CustomUser) -> list[Factor]:
    """The factors in their own right that ``user`` has (recovery codes do not count: they come with one)."""
    return [factor for factor in standalone_factors() if factor.confirmed(user)]


def methods_for(user: CustomUser) -> list[str]:
    """The methods that can complete ``user``'s login now (the ``methods`` of an ``mfa_required`` answer): the
    factors in their own right first, then the recovery codes; none without a factor in its own right."""
    ready = [factor for factor in sorted(FACTORS.values(), key=lambda f: not f.standalone) if factor.confirmed(user)]
    if not any(factor.standalone for factor in ready):
        return []
    return [factor.name for factor in ready]


def factors_summary(user: CustomUser) -> dict[str, Any]:
    """Every factor's state for ``GET mfa/``, under its ``summary_key``."""
    return {factor.summary_key: factor.summary(user) for factor in FACTORS.values()}


def enrollable_methods() -> list[str]:
    """The factors a person without one can set up (the ``methods`` of an ``mfa_enrolment_required`` answer)."""
    return [factor.name for factor in standalone_factors()]


def amr_merge(*parts: Sequence[str]) -> list[str]:
    """The ``amr`` of a login made of several factors: each method once, plus ``mfa`` when there are two or more."""
    methods: list[str] = []
    for part in parts:
        methods += [method for method in part if method not in methods]
    if len([part for part in parts if part]) > 1 and MFA not in methods:
        methods.append(MFA)
    return methods
