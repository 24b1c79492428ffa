"""Fixtures for the clients' tests: a loopback HTTP server, a fake clock, a refusing port, our JWKS and a verifier."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_httpserver import HTTPServer
from werkzeug import Response as WerkzeugResponse

from clients.base import ServiceClient
from clients.conf import JWKS_PATH
from clients.tokens import TokenVerifier
from users import tokens


class FakeClock:
    """A monotonic clock that only moves when told to; ``sleep`` records the delay and advances time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class EchoClient(ServiceClient):
    """The smallest concrete client, for tests of the base class."""

    service_name = "echo"
    scopes = ("echo:read",)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """A real HTTP server on 127.0.0.1 (IPv4 only, so connection counts are exact)."""
    return httpserver_ipv4


@pytest.fixture
def make_client(server: HTTPServer, clock: FakeClock) -> Iterator:
    """Build a client against ``server`` with fast timeouts, the fake clock and no real backoff sleeps."""
    made: list[ServiceClient] = []

    def make(cls: type[ServiceClient] = EchoClient, **options) -> ServiceClient:
        options = {
            "connect_timeout": 0.5,
            "read_timeout": 1.0,
            "max_retries": 2,
            "backoff_seconds": 0.2,
            "failure_threshold": 5,
            "reset_seconds": 30,
            "clock": clock,
            "sleep": clock.sleep,
            **options,
        }
        base_url = options.pop("base_url", server.url_for("/"))
        client = cls(base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL on a loopback port that is bound but not listening: every connection is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def slow_server() -> Iterator[tuple[HTTPServer, threading.Event, list[str]]]:
    """A threaded server whose handlers hang until released; returns (server, release event, paths entered)."""
    release = threading.Event()
    entered: list[str] = []
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()

    def hang(request):
        from werkzeug import Response

        entered.append(request.path)
        release.wait(5)
        return Response("{}", content_type="application/json")

    server.expect_request("/slow/").respond_with_handler(hang)
    yield server, release, entered
    release.set()
    server.clear()
    server.stop()


@pytest.fixture(scope="session")
def foreign_key() -> rsa.RSAPrivateKey:
    """An RSA key the user service does not publish: what a forger signs with."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks(server: HTTPServer) -> dict:
    """The user service's JWKS, served from the loopback server; mutate the returned dict to rotate keys."""
    document = {"keys": list(tokens.key_ring().jwks["keys"])}
    server.expect_request(JWKS_PATH).respond_with_handler(
        lambda request: WerkzeugResponse(json.dumps(document), 200, mimetype="application/json")
    )
    return document


@pytest.fixture
def verifier(server: HTTPServer, jwks: dict, clock: FakeClock, settings) -> TokenVerifier:
    """A local verifier against ``jwks``, on the fake clock."""
    return TokenVerifier(jwks_url=server.url_for(JWKS_PATH), issuer=settings.JWT_ISSUER, clock=clock)
