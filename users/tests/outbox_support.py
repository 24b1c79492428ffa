"""Helpers of the outbox, e-mail and event tests: this run's broker queues, polling, e-mail links, receivers.

The fixtures built on them (``isolated_broker``, ``celery_worker``, ``fast_retries``) are in ``conftest.py``.
"""

import contextlib
import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import kombu.pools
import pytest
import redis
from django.conf import settings

from user_service.celery import QUEUES
from user_service.celery import app as celery_app
from users.services.outbox import outbox_dispatch_reset

API = "/api/v1/users"
LINK = re.compile(
    r"https?://[^\s/]+/(?P<page>reset-password|verify-email)\?uid=(?P<uid>[\w-]+)&token=(?P<token>[\w-]+)"
)


def broker_key_prefix() -> str:
    """Broker keys of this test run only (CACHE_KEY_PREFIX is unique per `make test`): runs may share a Redis."""
    return f"{settings.CACHES['default'].get('KEY_PREFIX') or 'ums-test'}:celery:"


def _reset_producer_pools() -> None:
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None
    kombu.pools.reset()


@contextlib.contextmanager
def broker_at(url: str | None = None) -> Iterator[None]:
    """Publish (and consume) through ``url`` (default: the configured broker) with this run's key prefix."""
    saved_url = celery_app.conf.broker_url
    saved_options = celery_app.conf.broker_transport_options
    celery_app.conf.broker_url = url or saved_url
    celery_app.conf.broker_transport_options = {**(saved_options or {}), "global_keyprefix": broker_key_prefix()}
    _reset_producer_pools()
    outbox_dispatch_reset()
    try:
        yield
    finally:
        celery_app.conf.broker_url = saved_url
        celery_app.conf.broker_transport_options = saved_options
        _reset_producer_pools()
        outbox_dispatch_reset()


def purge_queues() -> int:
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        return sum(channel.queue_purge(name) or 0 for name in QUEUES)


def queued(name: str) -> list[bytes | str]:
    """The raw messages waiting in this run's queue ``name``, read with a plain Redis client."""
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    try:
        return client.lrange(broker_key_prefix() + name, 0, -1)
    finally:
        client.close()


def queue_length(name: str) -> int:
    return len(queued(name))


def wait_for(predicate: Callable[[], object], *, timeout: float = 15.0, interval: float = 0.05) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}")


def link_in(body: str) -> dict[str, str]:
    """The uid/token link of an e-mail body (exactly one)."""
    found = [m.groupdict() for m in LINK.finditer(body)]
    assert len({(f["uid"], f["token"]) for f in found}) == 1, body
    return found[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A threaded HTTP receiver on loopback: answers POSTs with scripted statuses and records them.

    ``statuses`` are used in order (the last one repeats); ``hold`` makes the first request wait
    until ``release`` is set (to kill a worker in the middle of a delivery).
    """

    statuses: list[int] = field(default_factory=lambda: [200])
    hold_first: bool = False
    requests: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                    index = len(receiver.requests) - 1
                    status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                receiver.arrived.set()
                if receiver.hold_first and index == 0:
                    receiver.release.wait(30)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:  # the client is gone (a killed worker)
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/users"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
