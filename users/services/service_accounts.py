"""Service accounts: creation with a one-time secret, and the client-credentials grant."""

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from rest_framework import status

from user_service.exceptions import ApplicationError
from users import cache, tokens
from users.models import SecurityEvent, ServiceAccount
from users.services import lockout
from users.services.audit import security_event_record

KNOWN_SCOPES = frozenset({"users:read", "tokens:introspect", "revocations:read"})
_DUMMY_HASH = "sha256$" + "0" * 64


class InvalidClient(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_client"


def _secret_hash(secret: str) -> str:
    # Secrets are 256 random bits: a fast hash is enough (no dictionary to attack) and keeps the grant cheap.
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


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
    account = ServiceAccount(name=name, client_id=client_id, secret_hash=_secret_hash(secret), scopes=sorted(scopes))
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


@dataclass(frozen=True)
class ServiceToken:
    access_token: str
    expires_in: int
    scopes: list[str]


def service_token_issue(*, client_id: str, client_secret: str, ip: str | None = None) -> ServiceToken:
    """Client-credentials grant: a short-lived service token carrying the account's scopes.

    Guessing is locked out like logins: per client id and per client IP (``users.services.lockout``).
    """
    subject = lockout.Subject(kind="service", account=f"client:{client_id}", ip=ip)
    lockout.attempt_reserve(subject)
    account = ServiceAccount.objects.filter(client_id=client_id, is_active=True).first()
    expected = account.secret_hash if account else _DUMMY_HASH
    matches = hmac.compare_digest(expected, _secret_hash(client_secret))
    if account is None or not matches:
        lockout.attempt_failed(subject)
        raise InvalidClient("Invalid client credentials.")
    lockout.attempt_succeeded(subject)
    ServiceAccount.objects.filter(pk=account.pk).update(last_used_at=timezone.now())
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
    return ServiceToken(access_token=token, expires_in=lifetime, scopes=list(account.scopes))
