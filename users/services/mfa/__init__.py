"""Second factors: the registry (``factors``), authenticator apps (``totp``), recovery codes (``recovery``), passkeys
(``webauthn``), the pending second step of a login (``challenges``), and what changes and uses of them write
(``changes``, ``usage``).

Importing the package registers the built-in factors. Completing a login is ``users.services.login``'s; asking for
a recent authentication is ``users.services.reauth``'s.
"""

from users.services.mfa.challenges import (
    challenge_get,
    challenge_issue,
    challenge_spend,
    challenges_prune,
    enrolment_grant_resolve,
    looks_like_mfa_token,
)
from users.services.mfa.factors import (
    FACTORS,
    MFA,
    Factor,
    FactorContext,
    amr_merge,
    enrollable_methods,
    factor_by_proof_field,
    factor_register,
    factors_confirmed,
    factors_summary,
    methods_for,
    proof_fields,
)
from users.services.mfa.recovery import RECOVERY_CODES, recovery_codes_regenerate
from users.services.mfa.totp import (
    TOTP,
    TOTPEnrolment,
    totp_enrol_begin,
    totp_enrol_confirm,
    totp_remove,
    totp_secrets_reencrypt,
)
from users.services.mfa.usage import factor_used, mfa_reset
from users.services.mfa.webauthn import WEBAUTHN

__all__ = [
    "FACTORS",
    "MFA",
    "RECOVERY_CODES",
    "TOTP",
    "Factor",
    "FactorContext",
    "TOTPEnrolment",
    "WEBAUTHN",
    "amr_merge",
    "challenge_get",
    "challenge_issue",
    "challenge_spend",
    "challenges_prune",
    "enrollable_methods",
    "enrolment_grant_resolve",
    "factor_by_proof_field",
    "factor_register",
    "factor_used",
    "factors_confirmed",
    "factors_summary",
    "looks_like_mfa_token",
    "methods_for",
    "mfa_reset",
    "proof_fields",
    "recovery_codes_regenerate",
    "totp_enrol_begin",
    "totp_enrol_confirm",
    "totp_remove",
    "totp_secrets_reencrypt",
]
