"""Authorization codes between their issue and their exchange: kept in Redis, spent in PostgreSQL.

Issuing a code writes nothing to the database. Its record (the grant django-oauth-toolkit would have stored: client,
person, redirect URI, scopes, PKCE challenge, nonce, claims, resources, expiry; and the authorization this service
adds: its id, which becomes the token family, and the login session) is kept in Redis under the code's checksum
until the code expires (``users.cache.oidc_code_put``). The record is signed with the service's secret key
(``django.core.signing``, bound to that checksum), so a write to Redis alone cannot make a code.

The exchange reads the record back and spends the code by inserting the code's authorization row
(``OidcAuthorization``, already exchanged) in the transaction that stores the tokens. That row's unique checksum is
the code's single-use lock, in PostgreSQL: of two exchanges, concurrent or not, the second inserts nothing and is
answered as a reuse, which revokes what the first got (``users.services.oidc.validator``). A code presented after its
record expired finds that row, exchanged, and is a reuse too.

When Redis cannot keep a record (no Redis: the embedded mode; Redis down, hung or its breaker open), the code's
grant and authorization rows are written to the database as django-oauth-toolkit writes a grant, and the exchange
finds them there: signing in through an app keeps working while Redis is down.

A code is worth losing: a Redis restart forgets the codes of the last ``OIDC_CODE_SECONDS``; their exchange is refused
and the person signs in to the app again (their browser session is untouched).
"""

import hashlib
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.utils import timezone
from oauth2_provider.models import Grant

from users import cache
from users.models import OidcAuthorization

logger = logging.getLogger(__name__)
SALT = "users.services.oidc.codes"
# The grant's columns a record keeps as they are (text, and the resources' list); the rest are written out below.
_GRANT_FIELDS = ("redirect_uri", "scope", "code_challenge", "code_challenge_method", "nonce", "claims", "resource")


def checksum(value: str) -> str:
    """How a code (or a token) is named where it is stored: its SHA-256, hex."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class PendingCode:
    """A code's grant and authorization as they were issued, neither in the database (built from its record)."""

    grant: Grant
    authorization: OidcAuthorization


def code_keep(grant: Grant, authorization: OidcAuthorization) -> bool:
    """Keep a new code's record in Redis until it expires; False if Redis did not take it (keep it elsewhere)."""
    record = {
        "checksum": authorization.code_checksum,
        "authorization": str(authorization.pk),
        "session": str(authorization.session_id),
        "created_at": authorization.created_at.isoformat(),
        "application": grant.application_id,
        "user": grant.user_id,
        "expires": grant.expires.isoformat(),
        **{name: getattr(grant, name) for name in _GRANT_FIELDS},
    }
    seconds = max(1, math.ceil((grant.expires - timezone.now()).total_seconds()))
    return cache.oidc_code_put(authorization.code_checksum, signing.dumps(record, salt=SALT), timeout=seconds)


def code_pending_get(code: str) -> PendingCode | None:
    """The code's grant and authorization from its record; None if Redis holds no good record for it."""
    digest = checksum(code)
    kept = cache.oidc_code_get(digest)
    if kept is None:
        return None
    try:
        record = signing.loads(kept, salt=SALT)
    except signing.BadSignature:
        logger.warning("an authorization code record in Redis has a bad signature; refused")
        return None
    if not isinstance(record, dict) or record.get("checksum") != digest:
        logger.warning("an authorization code record in Redis names another code; refused")
        return None
    grant = Grant(
        application_id=record["application"],
        user_id=record["user"],
        code=code,
        expires=datetime.fromisoformat(record["expires"]),
        **{name: record[name] for name in _GRANT_FIELDS},
    )
    authorization = OidcAuthorization(
        id=uuid.UUID(record["authorization"]),
        code_checksum=digest,
        application_id=record["application"],
        session_id=uuid.UUID(record["session"]),
        created_at=datetime.fromisoformat(record["created_at"]),
    )
    return PendingCode(grant=grant, authorization=authorization)
