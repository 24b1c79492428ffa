"""The claim contract of the user service's tokens, shared by their issuer (users/) and every verifier (clients/).

One place says what a well-formed token is: the algorithm, the token types, the claims each type must carry
and the shape of the user and service claims. The issuer (``users.tokens``) and the sibling services' local
verifier (``clients.tokens``) both check claims with ``claims_check`` after the signature, issuer and expiry
checks, and turn ``ClaimsInvalid`` into their own error. Plain Python: no Django, no PyJWT, so a sibling
service can use it whatever its framework.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any

__all__ = [
    "ACCESS",
    "ACCESS_CLAIMS",
    "ALGORITHM",
    "AMR",
    "AUTH_TIME",
    "DEFAULT_AMR",
    "REFRESH",
    "REFRESH_CLAIMS",
    "REQUIRED_CLAIMS",
    "REQUIRED_CLAIMS_BY_TYPE",
    "SERVICE",
    "SERVICE_CLAIMS",
    "TOKEN_TYPES",
    "ClaimsInvalid",
    "WrongTokenType",
    "claims_amr",
    "claims_check",
    "token_type_check",
]

ALGORITHM = "RS256"

# Token types (the ``token_type`` claim)
ACCESS = "access"
REFRESH = "refresh"
SERVICE = "service"
TOKEN_TYPES = (ACCESS, REFRESH, SERVICE)

# Claim names
SUB = "sub"  # user id as decimal digits (access, refresh); the client id (service)
SID = "sid"  # the login session (a UUID); every token of one login carries it
JTI = "jti"
IAT = "iat"
EXP = "exp"
ISS = "iss"
TOKEN_TYPE = "token_type"  # noqa: S105 - a claim name, not a secret
USER_TYPE = "user_type"
ROLE = "role"
USERNAME = "username"
SCOPE = "scope"  # service tokens: a list of scope strings
# Optional in access tokens (tokens minted before they existed lack them): how and when the person authenticated.
AMR = "amr"  # RFC 8176 method names, e.g. ["pwd"], ["pwd", "otp", "mfa"], ["hwk", "user", "mfa"]
AUTH_TIME = "auth_time"  # epoch seconds of the login the token belongs to
DEFAULT_AMR = ("pwd",)  # what a token without ``amr`` was authenticated with: a password alone

# Every token must carry these (PyJWT's ``require`` option checks them while decoding).
REQUIRED_CLAIMS = (EXP, IAT, ISS, SUB, JTI, TOKEN_TYPE)
REQUIRED_CLAIMS_BY_TYPE: dict[str, tuple[str, ...]] = {
    ACCESS: (*REQUIRED_CLAIMS, SID),
    REFRESH: (*REQUIRED_CLAIMS, SID),
    SERVICE: (*REQUIRED_CLAIMS, SCOPE),
}

# What the issuer puts in each type of token.
ACCESS_CLAIMS = frozenset({SUB, SID, JTI, USER_TYPE, ROLE, USERNAME, IAT, EXP, ISS, TOKEN_TYPE, AMR, AUTH_TIME})
REFRESH_CLAIMS = frozenset({SUB, SID, JTI, IAT, EXP, ISS, TOKEN_TYPE})
SERVICE_CLAIMS = frozenset({SUB, SCOPE, JTI, IAT, EXP, ISS, TOKEN_TYPE})


class ClaimsInvalid(ValueError):
    """The claims break the contract; ``reason`` is worded for the caller who presented the token."""

    def __init__(self, reason: str = "Token is invalid.") -> None:
        super().__init__(reason)
        self.reason = reason


class WrongTokenType(ClaimsInvalid):
    """The token is of another type than the ones accepted here (``expected``, the first one named)."""

    def __init__(self, expected: Collection[str]) -> None:
        self.expected = tuple(expected)
        first = self.expected[0] if self.expected else "known"
        article = "an" if first[:1] in "aeiou" else "a"
        super().__init__(f"Token is not {article} {first} token.")


def token_type_check(claims: Mapping[str, Any], token_types: Collection[str]) -> str:
    """The token's type if it is one of ``token_types``, else WrongTokenType."""
    token_type = claims.get(TOKEN_TYPE)
    if not isinstance(token_type, str) or token_type not in token_types:
        raise WrongTokenType(token_types)
    return token_type


def claims_check(claims: Mapping[str, Any], *, token_types: Collection[str]) -> None:
    """Raise ClaimsInvalid unless the claims are a well-formed token of one of ``token_types``.

    Call it on claims whose signature, issuer and expiry are already verified; the type is checked first
    (``WrongTokenType``), then the claims that type must carry and their shape.
    """
    token_type = token_type_check(claims, token_types)
    required = REQUIRED_CLAIMS_BY_TYPE.get(token_type)
    if required is None:
        raise WrongTokenType(token_types)
    if any(name not in claims for name in required) or not _WELL_FORMED[token_type](claims):
        raise ClaimsInvalid()


def claims_amr(claims: Mapping[str, Any]) -> list[str]:
    """The token's authentication methods (``amr``); a token minted without the claim counts as a password alone."""
    amr = claims.get(AMR)
    return list(amr) if isinstance(amr, list) else list(DEFAULT_AMR)


def _user_claims_well_formed(claims: Mapping[str, Any]) -> bool:
    """``sub`` is a user id in ASCII digits and ``sid`` a UUID; ``amr`` and ``auth_time``, when present, are a list of
    strings and whole epoch seconds."""
    sub, sid = claims.get(SUB), claims.get(SID)
    if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and isinstance(sid, str)):
        return False
    amr, auth_time = claims.get(AMR, []), claims.get(AUTH_TIME, 0)
    if not (isinstance(amr, list) and all(isinstance(method, str) for method in amr)):
        return False
    if not isinstance(auth_time, int) or isinstance(auth_time, bool):
        return False
    try:
        uuid.UUID(sid)
    except ValueError:
        return False
    return True


def _service_claims_well_formed(claims: Mapping[str, Any]) -> bool:
    """``sub`` is the client id and ``scope`` a list of strings."""
    scope = claims.get(SCOPE)
    return isinstance(claims.get(SUB), str) and isinstance(scope, list) and all(isinstance(s, str) for s in scope)


_WELL_FORMED: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    ACCESS: _user_claims_well_formed,
    REFRESH: _user_claims_well_formed,
    SERVICE: _service_claims_well_formed,
}
