"""Secrets of the second factors: TOTP secrets encrypted at rest (Fernet), recovery codes stored as salted hashes."""

import base64
import hashlib
import hmac
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

# Separates the derived key from every other use of SECRET_KEY (HKDF's "info").
_DERIVED_KEY_INFO = b"user-service: TOTP secrets at rest"


def _derived_key() -> bytes:
    """The DEBUG/embedded mode's key, derived from SECRET_KEY, so a fresh clone works with no configuration."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVED_KEY_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(settings.SECRET_KEY.encode()))


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    """``MFA_ENCRYPTION_KEYS`` (the first encrypts, every one decrypts); with DEBUG and none set, the derived key."""
    keys: list[str | bytes] = list(settings.MFA_ENCRYPTION_KEYS)
    if not keys:
        if not settings.DEBUG:  # settings refuse this at start-up; kept for settings changed at run time
            raise ImproperlyConfigured("MFA_ENCRYPTION_KEYS must be set when DEBUG=False.")
        keys = [_derived_key()]
    return MultiFernet([Fernet(key) for key in keys])


@receiver(setting_changed)
def _reset_keys(*, setting: str, **kwargs: Any) -> None:
    if setting in ("MFA_ENCRYPTION_KEYS", "SECRET_KEY", "DEBUG"):
        _fernet.cache_clear()


def secret_encrypt(secret: str) -> str:
    """The stored form of a TOTP secret."""
    return _fernet().encrypt(secret.encode()).decode()


def secret_decrypt(stored: str) -> str:
    """The TOTP secret of its stored form; a key missing from ``MFA_ENCRYPTION_KEYS`` is a configuration error."""
    try:
        return _fernet().decrypt(stored.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A TOTP secret cannot be decrypted with MFA_ENCRYPTION_KEYS: keep every key that encrypted a stored "
            "secret in the list (see README, 'MFA')."
        ) from exc


def secret_reencrypt(stored: str) -> str:
    """The stored form again, under the first key (for key rotation)."""
    return _fernet().rotate(stored.encode()).decode()


def code_hash(*, salt: str, code: str) -> str:
    """The stored form of a recovery code (high-entropy, so one salted SHA-256 is enough; no dictionary to try)."""
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def code_hash_matches(*, salt: str, code: str, stored: str) -> bool:
    return hmac.compare_digest(code_hash(salt=salt, code=code), stored)
