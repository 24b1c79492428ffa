"""The user service's own bearer token for calls to sibling services, minted locally and cached."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence

from django.conf import settings

SERVICE_TOKEN_RENEW_BEFORE_SECONDS = 30


class ServiceTokenMinter:
    """This service's own bearer token for sibling calls, signed with our RS256 key and re-minted near expiry."""

    def __init__(
        self, *, scopes: Sequence[str], client_id: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.scopes = list(scopes)
        self.client_id = client_id or settings.SERVICE_CLIENT_ID
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def __call__(self) -> str:
        """The cached token, minted again when it is within SERVICE_TOKEN_RENEW_BEFORE_SECONDS of expiry."""
        with self._lock:
            now = self._clock()
            if self._token is None or self._expires_at - now <= SERVICE_TOKEN_RENEW_BEFORE_SECONDS:
                self._token, self._expires_at = self._mint(now)
            return self._token

    def _mint(self, now: float) -> tuple[str, float]:
        # Imported here so the verifier half of this package stays importable without the users app.
        from users.tokens import SERVICE, encode

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
