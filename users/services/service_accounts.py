"""Service accounts: creation with a one-time secret, and the client-credentials grant."""

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from users import cache, metrics, tokens
from users.models import SecurityEvent, ServiceAccount
from users.services.audit import security_event_record
from users.services.credentials import client_credentials_check, secret_hash

KNOWN_SCOPES = frozenset({"users:read", "tokens:introspect"})


@transaction.atomic
def service_account_create(*, name: str, scopes: list[str], client_id: str | None = None) -> tuple[ServiceAccount, str]:
    """Create an account and return it with its secret, which is shown once and stored only as a hash."""
    unknown = sorted(set(scopes) - KNOWN_SCOPES)
    if unknown:
        raise ValidationError({"scopes": [f"Unknown scope(s): {', '.join(unknown)}; known: {sorted(KNOWN_SCOPES)}."]})
    client_id = client_id or slugify(name)
    if not client_id:
        raise ValidationError({"client_id": ["A client id (or a name to derive it from) is required."]})
    if ServiceAccount.objects.filter(client_id=client_id).exists():
        raise ValidationError({"client_id": [f"A service account {client_id!r} already exists."]})
    secret = secrets.token_urlsafe(32)
    account = ServiceAccount(name=name, client_id=client_id, secret_hash=secret_hash(secret), scopes=sorted(scopes))
    account.full_clean()
    account.save()
    return account, secret


@transaction.atomic
def service_account_save(*, account: ServiceAccount) -> ServiceAccount:
    """Save an edited account (scopes, activation); its cached state is dropped now and after commit.

    A lost delete (Redis down) leaves the old state cached for at most ``SERVICE_ACCOUNT_STATE_CACHE_SECONDS``.
    """
    account.full_clean()
    account.save()
    cache.service_account_invalidate(account.client_id)
    transaction.on_commit(lambda: cache.service_account_invalidate(account.client_id))
    return account


def _last_used_touch(account: ServiceAccount) -> None:
    """Record the grant's time, at most every ``SERVICE_ACCOUNT_LAST_USED_SECONDS`` (no write in between)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SERVICE_ACCOUNT_LAST_USED_SECONDS)
    if account.last_used_at is not None and account.last_used_at > stale:
        return
    # Conditional: of simultaneous grants that all saw a stale time, the first writes and the rest match nothing.
    ServiceAccount.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=account.pk).update(
        last_used_at=now
    )


@dataclass(frozen=True)
class ServiceToken:
    access_token: str
    expires_in: int
    scopes: list[str]

    @property
    def response_body(self) -> dict[str, str | int]:
        """The token endpoint's answer (RFC 6749 5.1), the same from ``service-token/`` and ``/oidc/token/``."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(self.scopes),
        }


def service_token_issue(*, client_id: str, client_secret: str, ip: str | None = None) -> ServiceToken:
    """Client-credentials grant: a short-lived service token carrying the account's scopes.

    The credentials are checked (and guessing locked out, per client id and per client IP) by
    ``users.services.credentials.client_credentials_check``.
    """
    account = client_credentials_check(client_id=client_id, client_secret=client_secret, ip=ip)
    _last_used_touch(account)
    security_event_record(
        event_type=SecurityEvent.Type.SERVICE_TOKEN_ISSUED, ip=ip, data={"client_id": account.client_id}
    )
    now = int(time.time())
    lifetime = settings.SERVICE_TOKEN_MINUTES * 60
    token = tokens.encode(
        {
            "sub": account.client_id,
            "scope": list(account.scopes),
            "token_type": tokens.SERVICE,
            "iat": now,
            "exp": now + lifetime,
            "iss": settings.JWT_ISSUER,
            "jti": uuid.uuid4().hex,
        }
    )
    metrics.TOKENS_ISSUED.labels(type="service").inc()
    return ServiceToken(access_token=token, expires_in=lifetime, scopes=list(account.scopes))
