"""Feed a sibling service's TokenVerifier with revocations, so logged-out tokens die in seconds.

Two sources, use either or both (both is best: pub/sub is instant, polling fills any gap):

- ``RevocationSubscriber``: listens on the user service's Redis channel (``REVOCATION_CHANNEL``) when the
  sibling shares that Redis; each message carries ended session ids.
- ``RevocationPoller``: polls ``GET /api/v1/users/revocations/?since=<cursor>`` every few seconds with a
  service token obtained by client credentials (``service-token/``, ``ClientCredentialsTokenProvider``).

Both run as daemon threads and call ``verifier.deny(...)``; the deny-list is a set, so repeats are harmless.
No framework needed; the subscriber needs ``redis`` (the package's ``redis`` extra).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from clients.exceptions import ServiceClientError
from clients.service_token import ClientCredentialsTokenProvider, TokenProvider
from clients.tokens import TokenVerifier

logger = logging.getLogger(__name__)

REVOCATIONS_PATH = "/api/v1/users/revocations/"


class _Feeder:
    """A daemon thread running ``_run`` until ``stop()``; subclasses set ``_thread_name``."""

    _thread_name = "revocation-feeder"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        raise NotImplementedError


class RevocationPoller(_Feeder):
    """Poll the revocation feed and deny what it lists; survives outages by retrying at the same cursor.

    The service token comes from ``token_provider`` (e.g. the ``ClientCredentialsTokenProvider`` the host uses for
    its other calls), else from ``client_id`` / ``client_secret`` exchanged at ``base_url``.
    """

    _thread_name = "revocation-poller"

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        base_url: str,
        client_id: str = "",
        client_secret: str = "",
        token_provider: TokenProvider | None = None,
        interval_seconds: float = 2.0,
        timeout: tuple[float, float] = (1.0, 3.0),
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.verifier = verifier
        self.base_url = base_url.rstrip("/")
        self.interval_seconds = interval_seconds
        self.timeout = timeout
        self.session = session or requests.Session()
        self.token_provider = token_provider or ClientCredentialsTokenProvider(
            base_url=base_url,
            client_id=client_id,
            client_secret=client_secret,
            timeout=timeout,
            session=self.session,
            clock=clock,
        )
        self.cursor: float | None = None

    def poll_once(self) -> int:
        """Fetch once, deny what is listed, advance the cursor; returns how many ids were denied."""
        params = {} if self.cursor is None else {"since": repr(self.cursor)}
        response = self.session.get(
            f"{self.base_url}{REVOCATIONS_PATH}",
            params=params,
            headers={"Authorization": f"Bearer {self.token_provider()}"},
            timeout=self.timeout,
            allow_redirects=False,
        )
        if response.status_code == 401 and isinstance(self.token_provider, ClientCredentialsTokenProvider):
            self.token_provider.invalidate()  # token expired early or the account was rotated: get a new one
        response.raise_for_status()
        feed: dict[str, Any] = response.json()
        self.verifier.deny(session_ids=feed["session_ids"], user_ids=feed["user_ids"], revoked_at=feed["cursor"])
        self.cursor = float(feed["cursor"])
        return len(feed["session_ids"]) + len(feed["user_ids"])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except (requests.RequestException, ServiceClientError, ValueError, KeyError) as exc:
                logger.warning("revocation poll failed: %s", exc.__class__.__name__)
            self._stop.wait(self.interval_seconds)


class RevocationSubscriber(_Feeder):
    """Deny session ids pushed on the user service's Redis channel, as soon as they arrive."""

    _thread_name = "revocation-subscriber"

    def __init__(self, verifier: TokenVerifier, *, redis_url: str, channel: str = "ums:revocations") -> None:
        import redis

        super().__init__()
        self.verifier = verifier
        self.channel = channel
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=2, health_check_interval=30)
        self.ready = threading.Event()

    def handle(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            self.verifier.deny(session_ids=message.get("session_ids", []), user_ids=message.get("user_ids", []))
        except (ValueError, AttributeError, TypeError):
            logger.warning("ignored a malformed revocation message")

    def _run(self) -> None:
        import redis

        while not self._stop.is_set():
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self.ready.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message["type"] == "message":
                        self.handle(message["data"])
                pubsub.close()
            except redis.RedisError as exc:
                self.ready.clear()
                logger.warning("revocation subscription lost (%s); resubscribing", exc.__class__.__name__)
                self._stop.wait(1.0)
