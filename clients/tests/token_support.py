"""Helpers for the clients' tests: the claims of a well-formed access token, to sign with the user service's key."""

from __future__ import annotations

import time
import uuid
from typing import Any


def claims_for(settings: Any, **overrides: Any) -> dict[str, Any]:
    """Claims of a valid access token of user 42 (a student, ``alice``) issued now; ``overrides`` replace any."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "42",
        "sid": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 300,
        "iss": settings.JWT_ISSUER,
        "jti": uuid.uuid4().hex,
        "token_type": "access",
        "user_type": 3,
        "role": "student",
        "username": "alice",
    }
    claims.update(overrides)
    return claims
