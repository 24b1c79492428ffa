"""RS256 signing keys (with ``kid`` and rotation) and the access/refresh tokens minted with them.

SimpleJWT's TokenBackend cannot put a ``kid`` in the header nor choose a verification key by it,
so tokens are minted and verified here with PyJWT (SimpleJWT's own foundation); SimpleJWT's
token_blacklist app still records refresh tokens (see ``users.services.auth``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone

# The algorithm, the token types and the claim rules are the contract shared with the sibling verifier.
from clients import claims as contract
from clients.claims import ACCESS, ALGORITHM, REFRESH
from clients.claims import SERVICE as SERVICE
from clients.service_token import CachedTokenProvider
from users.exceptions import TokenInvalid


def generate_private_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The public key as a JWK, with its RFC 7638 thumbprint as ``kid``."""
    numbers = public_key.public_numbers()
    jwk = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    thumbprint = hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest()
    kid = base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "use": "sig", "alg": ALGORITHM}


@dataclass(frozen=True)
class KeyRing:
    """The current signing key and every public key a token may still be verified with."""

    private_key: rsa.RSAPrivateKey
    kid: str
    public_keys: dict[str, rsa.RSAPublicKey]
    jwks: dict[str, list[dict[str, str]]]
    verified: VerifiedTokens = field(default_factory=lambda: VerifiedTokens(settings.JWT_VERIFIED_CACHE_SIZE))


class VerifiedTokens:
    """Claims of tokens this process has fully verified with the ring's keys, by the exact token text.

    A gateway validates the same access token on every request its user makes during the token's
    lifetime; remembering the verdict saves the RS256 check and PyJWT's parsing (most of a warm
    validation) when it comes back. Only tokens that passed every check are kept; expiry is
    checked again on each use; the memo belongs to one key ring, so it is gone when the keys change.
    Bounded: the oldest entry goes when it is full (``JWT_VERIFIED_CACHE_SIZE``, 0 turns it off).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._claims: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> dict[str, Any] | None:
        return self._claims.get(token)

    def put(self, token: str, claims: dict[str, Any]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            while len(self._claims) >= self.size:
                self._claims.pop(next(iter(self._claims)), None)
            self._claims[token] = claims

    def __len__(self) -> int:
        return len(self._claims)


def _read_private_pem() -> bytes:
    if settings.JWT_PRIVATE_KEY:
        return settings.JWT_PRIVATE_KEY.encode()
    if settings.JWT_PRIVATE_KEY_FILE:
        return Path(settings.JWT_PRIVATE_KEY_FILE).read_bytes()
    if not settings.DEBUG:
        raise ImproperlyConfigured("JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE must be set when DEBUG=False.")
    return _embedded_private_pem(Path(settings.JWT_GENERATED_KEY_FILE))


def _embedded_private_pem(path: Path) -> bytes:
    """Generate the embedded mode's key once; concurrent first starts agree on one file."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(generate_private_key_pem())
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: the first writer wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


@lru_cache(maxsize=1)
def key_ring() -> KeyRing:
    try:
        private_key = serialization.load_pem_private_key(_read_private_pem(), password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"The JWT signing key is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(private_key, rsa.RSAPrivateKey) or private_key.key_size < 2048:
        raise ImproperlyConfigured("The JWT signing key must be an RSA key of at least 2048 bits.")
    current = public_jwk(private_key.public_key())
    public_keys = {current["kid"]: private_key.public_key()}
    jwks = [current]
    for name in _previous_public_key_files():
        public_key = serialization.load_pem_public_key(Path(name).read_bytes())
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ImproperlyConfigured(f"{name} is not an RSA public key.")
        jwk = public_jwk(public_key)
        if jwk["kid"] not in public_keys:
            public_keys[jwk["kid"]] = public_key
            jwks.append(jwk)
    return KeyRing(private_key=private_key, kid=current["kid"], public_keys=public_keys, jwks={"keys": jwks})


def _previous_public_key_files() -> list[str]:
    files = list(settings.JWT_PREVIOUS_PUBLIC_KEY_FILES)
    if not (settings.JWT_PRIVATE_KEY or settings.JWT_PRIVATE_KEY_FILE):  # embedded: rotate_signing_key's output
        files += sorted(str(p) for p in (Path(settings.VAR_DIR) / "jwt_previous_keys").glob("*.pem"))
    return files


@receiver(setting_changed)
def _reset_key_ring(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("JWT_"):
        key_ring.cache_clear()


_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")


class _JWS(jwt.api_jws.PyJWS):
    """PyJWT's JWS, with its check of each base64url segment done by one regular expression.

    PyJWT refuses a segment with a character outside the base64url alphabet by testing the characters one at a
    time in Python, which for an RS256 token (about 700 characters) costs more than the signature check. This is
    the same check (``PyJWS._decode_base64url_segment``: up to two ``=`` of padding, only where the length allows,
    the alphabet, canonical encoding), refusing the same segments with the same error.
    """

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if padding > 2 or (padding and len(segment) % 4 != 0):
            raise jwt.DecodeError(f"Invalid {name} padding")
        if len(stripped) % 4 == 1 or not _SEGMENT.fullmatch(stripped):
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


class _JWT(jwt.PyJWT):
    def __init__(self) -> None:
        super().__init__()
        self._jws = _JWS(options=self._get_sig_options())


_jwt = _JWT()


def encode(claims: dict[str, Any], *, typ: str | None = None) -> str:
    """Sign ``claims`` with the current key (``kid`` in the header; ``typ`` too when given, e.g. ``logout+jwt``)."""
    ring = key_ring()
    headers = {"kid": ring.kid, **({"typ": typ} if typ else {})}
    return jwt.encode(claims, ring.private_key, algorithm=ALGORITHM, headers=headers)


def id_token_hint_decode(token: str) -> dict[str, Any] | None:
    """The claims of an id_token this service signed, expired or not (a logout hint may be old), for any audience;
    None when the signature, algorithm or issuer is not this service's."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = key_ring().public_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            return None
        return jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=settings.JWT_ISSUER,
            options={"verify_aud": False, "verify_exp": False},
        )
    except jwt.InvalidTokenError:
        return None


def decode(token: str, *, token_type: str | tuple[str, ...]) -> dict[str, Any]:
    """Verify signature, algorithm, issuer, expiry and type(s); raise TokenInvalid with a clear reason.

    A token this process verified before is only checked again for expiry and type (``VerifiedTokens``).
    The caller gets its own copy of the claims.
    """
    allowed = (token_type,) if isinstance(token_type, str) else token_type
    ring = key_ring()
    claims = ring.verified.get(token)
    if claims is not None:
        if claims["exp"] <= time.time() - settings.JWT_LEEWAY_SECONDS:
            raise TokenInvalid("Token has expired.", code="token_expired")
        try:
            contract.token_type_check(claims, allowed)  # the rest of the contract held when it was remembered
        except contract.ClaimsInvalid as exc:
            raise _token_invalid(exc) from exc
        return dict(claims)
    claims = _verify(token, ring)
    try:
        contract.claims_check(claims, token_types=allowed)
    except contract.ClaimsInvalid as exc:
        raise _token_invalid(exc) from exc
    if claims["token_type"] != REFRESH:  # refresh tokens are used once: not worth a slot
        ring.verified.put(token, claims)
    return dict(claims)


def _token_invalid(exc: contract.ClaimsInvalid) -> TokenInvalid:
    """This service's wording of a broken claim contract (a refresh endpoint says only "Wrong token type.")."""
    if isinstance(exc, contract.WrongTokenType) and exc.expected[:1] != (ACCESS,):
        return TokenInvalid("Wrong token type.")
    return TokenInvalid(exc.reason)


def _verify(token: str, ring: KeyRing) -> dict[str, Any]:
    """The claims of a token signed with one of the ring's keys, unexpired and from our issuer.

    With one trusted key (the usual case) the token is parsed once and its ``kid`` checked after the
    signature; during a rotation the header is read first to pick the key.
    """
    if len(ring.public_keys) == 1:
        kid, public_key = ring.kid, ring.public_keys[ring.kid]
    else:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid("Token is malformed.") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenInvalid("Token algorithm is not allowed.")
        kid = header.get("kid", "")
        if not isinstance(kid, str) or kid not in ring.public_keys:
            raise TokenInvalid("Token was signed with an unknown key.")
        public_key = ring.public_keys[kid]
    try:
        complete = _jwt.decode_complete(
            token,
            public_key,
            algorithms=[ALGORITHM],
            issuer=settings.JWT_ISSUER,
            leeway=settings.JWT_LEEWAY_SECONDS,
            options={"require": list(contract.REQUIRED_CLAIMS), "verify_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenInvalid("Token has expired.", code="token_expired") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise TokenInvalid("Token algorithm is not allowed.") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid("Token is invalid.") from exc
    if complete["header"].get("kid") != kid:
        raise TokenInvalid("Token was signed with an unknown key.")
    return complete["payload"]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime
    refresh_jti: str
    expires_in: int


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def access_token_issue(
    *,
    user: Any,
    session_id: str,
    amr: Sequence[str] = contract.DEFAULT_AMR,
    auth_time: datetime | None = None,
    now: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, datetime]:
    """An access token for one session of ``user``, and when it expires.

    ``extra`` adds claims that name where the token went (the OpenID Connect token endpoint adds ``client_id``);
    it cannot replace the contract's claims.
    """
    now = now or timezone.now().replace(microsecond=0)
    expires_at = now + settings.JWT_ACCESS_LIFETIME
    claims = {
        **(extra or {}),
        "sub": str(user.pk),
        "sid": str(session_id),
        "iat": _epoch(now),
        "iss": settings.JWT_ISSUER,
        "jti": uuid.uuid4().hex,
        "exp": _epoch(expires_at),
        "token_type": ACCESS,
        "user_type": user.user_type,
        "role": user.role,
        "username": user.username,
        "amr": list(amr) or list(contract.DEFAULT_AMR),
        "auth_time": _epoch(auth_time or now),
    }
    return encode(claims), expires_at


def token_pair_issue(
    *,
    user: Any,
    session_id: str,
    amr: Sequence[str] = contract.DEFAULT_AMR,
    auth_time: datetime | None = None,
    now: datetime | None = None,
    refresh_jti: str | None = None,
) -> TokenPair:
    """Mint an access and a refresh token for one session of ``user``.

    ``amr`` and ``auth_time`` (default: now) say how and when the person authenticated for the session; the
    access token carries them, so a refreshed token keeps the login's. ``now``: the issue time (whole seconds),
    when the caller has already written the refresh token's expiry from it; ``refresh_jti``: the refresh
    token's id, when the caller has already recorded it.
    """
    now = now or timezone.now().replace(microsecond=0)
    access, access_exp = access_token_issue(user=user, session_id=session_id, amr=amr, auth_time=auth_time, now=now)
    refresh_exp = now + settings.JWT_REFRESH_LIFETIME
    common = {"sub": str(user.pk), "sid": str(session_id), "iat": _epoch(now), "iss": settings.JWT_ISSUER}
    refresh_jti = refresh_jti or uuid.uuid4().hex
    refresh = encode({**common, "jti": refresh_jti, "exp": _epoch(refresh_exp), "token_type": REFRESH})
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        access_expires_at=access_exp,
        refresh_expires_at=refresh_exp,
        refresh_jti=refresh_jti,
        expires_in=int(settings.JWT_ACCESS_LIFETIME.total_seconds()),
    )


class ServiceTokenMinter(CachedTokenProvider):
    """This service's own bearer token for calls to siblings, signed with our key and minted again near expiry
    (the cache is the clients' own, ``CachedTokenProvider``, which sibling services use for their exchanged tokens).

    ``UsersConfig.ready`` installs it as the token provider of ``clients/`` (one minter per client instance).
    """

    def __init__(
        self, *, scopes: Sequence[str], client_id: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(clock=clock)
        self.scopes = list(scopes)
        self.client_id = client_id or settings.SERVICE_CLIENT_ID

    def _renew(self, now: float) -> tuple[str, float]:
        """A token signed here, for SERVICE_TOKEN_MINUTES."""
        issued_at = int(now)
        expires_at = issued_at + settings.SERVICE_TOKEN_MINUTES * 60
        claims = {
            "sub": self.client_id,
            "token_type": SERVICE,
            "scope": self.scopes,
            "iss": settings.JWT_ISSUER,
            "iat": issued_at,
            "exp": expires_at,
            "jti": uuid.uuid4().hex,
        }
        return encode(claims), float(expires_at)
