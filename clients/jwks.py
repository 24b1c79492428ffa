"""The user service's published signing keys (JWKS): fetched on demand, parsed once, refetched within bounds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from clients.claims import ALGORITHM
from clients.exceptions import KeySetUnavailable

logger = logging.getLogger(__name__)

MIN_KEY_BITS = 2048


def _public_key_from_jwk(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    """An RSA public key object from a JWK's ``n`` and ``e`` only (private members, if any leaked, are ignored)."""
    key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
    if not isinstance(key, rsa.RSAPublicKey):  # pragma: no cover - n/e alone always give a public key
        raise ValueError("not an RSA public key")
    return key


class JwksKeySet:
    """RS256 public keys by ``kid``, from a JWKS URL; thread-safe, reads are lock-free.

    - First use fetches the set; each key is parsed once into a key object, and a refetch reuses the object of
      a key whose ``n``/``e`` did not change.
    - An unknown ``kid`` (a rotation, or a forgery) refetches at most once per ``refetch_interval_seconds``, so
      made-up ``kid``s cannot turn verifiers into a load generator against the user service.
    - A set older than ``max_age_seconds`` is refreshed in passing (a key no longer published stops being
      trusted then); callers keep using the cached keys meanwhile and if the refresh fails.
    - A failed fetch pauses fetching for ``fetch_retry_seconds``. Redirects are not followed.
    """

    def __init__(
        self,
        *,
        url: str,
        refetch_interval_seconds: float = 30,
        fetch_retry_seconds: float = 5,
        max_age_seconds: float = 3600,
        timeout: tuple[float, float] = (1.0, 3.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.refetch_interval_seconds = refetch_interval_seconds
        self.fetch_retry_seconds = min(fetch_retry_seconds, refetch_interval_seconds)
        self.max_age_seconds = max_age_seconds
        self.timeout = timeout
        self._clock = clock
        self._fetch_lock = threading.Lock()
        self._keys: dict[str, rsa.RSAPublicKey] = {}  # replaced whole, never mutated: lock-free reads
        self._jwk_numbers: dict[str, tuple[str, str]] = {}
        self._fetched_at: float | None = None
        self._next_fetch_at = float("-inf")  # set after a failed fetch, to pause
        self._next_kid_fetch_at = float("-inf")  # bounds refetches caused by unknown kids

    def get(self, kid: str) -> rsa.RSAPublicKey | None:
        """The key with this ``kid`` (refetching within bounds if unknown), None if not published.

        Raises KeySetUnavailable when no key at all could be fetched.
        """
        key = self._keys.get(kid)
        if key is not None:
            if self._fetched_at is not None and self._clock() - self._fetched_at > self.max_age_seconds:
                self._refresh(kid=None)  # stale: refresh in passing (no waiting), keep serving the cached keys
            return key
        self._refresh(kid=kid)  # unknown kid: maybe a rotation
        if not self._keys:
            raise KeySetUnavailable(f"No signing keys: the JWKS at {self.url} could not be fetched.")
        return self._keys.get(kid)

    def refresh(self) -> bool:
        """Fetch the set now (e.g. at start-up, to warm the cache); True on success. Not rate-limited."""
        with self._fetch_lock:
            return self._fetch_and_store()

    @property
    def kids(self) -> frozenset[str]:
        """The ``kid`` of every key currently trusted."""
        return frozenset(self._keys)

    def _refresh(self, *, kid: str | None) -> None:
        """Fetch the JWKS unless bounded: for an unknown ``kid`` at most once per refetch interval."""
        if not self._fetch_lock.acquire(blocking=kid is not None):
            return  # a stale-key refresh is already under way in another thread
        try:
            now = self._clock()
            if now < self._next_fetch_at:
                return  # pausing after a failed fetch
            if kid is not None and self._keys:
                if kid in self._keys or now < self._next_kid_fetch_at:
                    return  # another thread just fetched it, or unknown kids already triggered a fetch lately
                self._next_kid_fetch_at = now + self.refetch_interval_seconds
            self._fetch_and_store()
        finally:
            self._fetch_lock.release()

    def _fetch_and_store(self) -> bool:
        """Fetch, parse and swap in the key set; call with the fetch lock held."""
        started = self._clock()
        try:
            keys, numbers = self._fetch()
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            self._next_fetch_at = self._clock() + self.fetch_retry_seconds
            logger.warning("JWKS fetch failed", extra={"jwks_url": self.url, "error": repr(exc)})
            return False
        self._keys, self._jwk_numbers = keys, numbers
        self._fetched_at = self._clock()
        logger.info(
            "JWKS fetched",
            extra={
                "jwks_url": self.url,
                "kids": sorted(keys),
                "duration_ms": round((self._fetched_at - started) * 1000, 1),
            },
        )
        return True

    def _fetch(self) -> tuple[dict[str, rsa.RSAPublicKey], dict[str, tuple[str, str]]]:
        with requests.Session() as session:
            response = session.get(
                self.url, timeout=self.timeout, allow_redirects=False, headers={"Accept": "application/json"}
            )
        if response.status_code != requests.codes.ok:
            raise ValueError(f"JWKS answered HTTP {response.status_code}")
        entries = response.json()["keys"]
        if not isinstance(entries, list):
            raise ValueError("JWKS 'keys' is not a list")
        keys: dict[str, rsa.RSAPublicKey] = {}
        numbers: dict[str, tuple[str, str]] = {}
        for jwk in entries:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
                continue
            if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
                continue
            kid, n, e = jwk.get("kid"), jwk.get("n"), jwk.get("e")
            if not (isinstance(kid, str) and kid and isinstance(n, str) and isinstance(e, str)):
                continue
            if self._jwk_numbers.get(kid) == (n, e):
                keys[kid] = self._keys[kid]  # parsed once, reused across refetches
            else:
                try:
                    key = _public_key_from_jwk(jwk)
                except (jwt.InvalidKeyError, ValueError) as exc:
                    logger.warning("JWKS key skipped", extra={"kid": kid, "error": repr(exc)})
                    continue
                if key.key_size < MIN_KEY_BITS:
                    logger.warning("JWKS key skipped: too short", extra={"kid": kid, "bits": key.key_size})
                    continue
                keys[kid] = key
            numbers[kid] = (n, e)
        if not keys:
            raise ValueError("JWKS holds no usable RS256 signing key")
        return keys, numbers
