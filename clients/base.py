"""One hardened HTTP client for sibling services: pooled session, timeouts, retries, circuit breaker, service token."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from clients.breaker import CircuitBreaker, CircuitState
from clients.conf import client_setting
from clients.exceptions import (
    CircuitOpen,
    ClientNotConfigured,
    ServiceError,
    ServiceResponseInvalid,
    ServiceUnavailable,
)
from clients.service_token import TokenProvider, token_provider_for

__all__ = ["CircuitBreaker", "CircuitState", "ServiceClient", "positive_id"]

logger = logging.getLogger(__name__)

# Methods whose repetition has the same effect as one call (RFC 9110 §9.2.2): the only ones retried by default.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Gateway answers that mean "try again": the request did not reach a healthy instance.
RETRYABLE_STATUSES = frozenset({502, 503, 504})
# Transport failures worth another attempt (ConnectTimeout is a ConnectionError; ReadTimeout a Timeout).
RETRYABLE_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
ERROR_BODY_MAX_CHARS = 2000
IDEMPOTENCY_KEY_MAX_CHARS = 255


def _setting(name: str) -> float:
    return float(client_setting(name))


class _BearerAuth(AuthBase):
    """Sets the bearer header per request; passing an auth object also stops requests applying ~/.netrc."""

    def __init__(self, token_provider: Callable[[], str]) -> None:
        self._token_provider = token_provider

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token_provider()}"
        return request


def _new_session(pool_maxsize: int) -> requests.Session:
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # service calls never carry cookies
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _error_body(response: requests.Response) -> Any:
    """The JSON body of an error answer if it has one, else its text, cut to ERROR_BODY_MAX_CHARS."""
    if "json" in response.headers.get("Content-Type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text[:ERROR_BODY_MAX_CHARS]


class ServiceClient:
    """Base client of one sibling service: every call has timeouts, no redirects, bounded retries and a breaker.

    Subclasses set ``service_name``, ``base_url_setting`` and ``scopes`` and add typed methods. Instances are
    thread-safe and meant to be long-lived (``Client.shared()``): the connection pool, the breaker and the
    cached service token live on the instance.

    Retries: only idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS), and a POST that carries an
    ``Idempotency-Key`` (the receiver deduplicates on it), on connection errors, timeouts and 502/503/504,
    with exponential backoff and jitter. Every failed attempt counts towards the breaker.

    Errors: transport failures, timeouts, an open circuit and 502/503/504 after the last attempt raise
    ``ServiceUnavailable``; any other non-2xx answer raises ``ServiceError(status_code, body)`` unless the caller
    listed it in ``allow_statuses`` (subclasses map 404 to ``None`` that way).
    """

    service_name: ClassVar[str] = "service"
    base_url_setting: ClassVar[str | None] = None
    scopes: ClassVar[tuple[str, ...]] = ()

    _shared: ClassVar[dict[tuple[type, int], ServiceClient]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        base_url: str | None = None,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_retries: int | None = None,
        backoff_seconds: float | None = None,
        backoff_max_seconds: float | None = None,
        failure_threshold: int | None = None,
        reset_seconds: float | None = None,
        pool_maxsize: int | None = None,
        token_provider: TokenProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = self._validated_base_url(base_url)
        self.timeout = (
            connect_timeout if connect_timeout is not None else _setting("SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS"),
            read_timeout if read_timeout is not None else _setting("SERVICE_HTTP_READ_TIMEOUT_SECONDS"),
        )
        self.max_retries = int(max_retries if max_retries is not None else _setting("SERVICE_HTTP_MAX_RETRIES"))
        self.backoff_seconds = (
            backoff_seconds if backoff_seconds is not None else _setting("SERVICE_HTTP_BACKOFF_SECONDS")
        )
        self.backoff_max_seconds = (
            backoff_max_seconds if backoff_max_seconds is not None else _setting("SERVICE_HTTP_BACKOFF_MAX_SECONDS")
        )
        self.breaker = CircuitBreaker(
            failure_threshold=int(
                failure_threshold if failure_threshold is not None else _setting("SERVICE_CIRCUIT_FAILURE_THRESHOLD")
            ),
            reset_seconds=reset_seconds if reset_seconds is not None else _setting("SERVICE_CIRCUIT_RESET_SECONDS"),
            clock=clock,
            name=self.service_name,
        )
        self._token_provider = token_provider or token_provider_for(self.scopes)
        self._auth = _BearerAuth(self._token_provider)
        self._session = _new_session(
            int(pool_maxsize if pool_maxsize is not None else _setting("SERVICE_HTTP_POOL_MAXSIZE"))
        )
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    @classmethod
    def shared(cls) -> Self:
        """The process-wide instance of this client (one per process, so pools never cross a fork)."""
        key = (cls, os.getpid())
        with cls._shared_lock:
            client = cls._shared.get(key)
            if not isinstance(client, cls):  # keyed by class, so only a missing one fails this
                client = cls._shared[key] = cls()
        return client

    @classmethod
    def reset_shared(cls) -> None:
        """Drop every shared instance (tests, or after the settings changed)."""
        with cls._shared_lock:
            for client in cls._shared.values():
                client.close()
            cls._shared.clear()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        allow_statuses: Collection[int] = (),
        bearer: str | None = None,
    ) -> requests.Response:
        """Send one logical call (with its retries) and return the 2xx or allowed response, or raise.

        ``bearer`` replaces the client's service token for this call (``validate-token/`` takes the user's).
        """
        method = method.upper()
        url = self.base_url + self._validated_path(path)
        call_headers = {"Accept": "application/json", **(headers or {})}
        if idempotency_key is not None:
            call_headers["Idempotency-Key"] = self._validated_idempotency_key(idempotency_key)
        retryable = method in IDEMPOTENT_METHODS or idempotency_key is not None
        auth = self._auth if bearer is None else _BearerAuth(lambda: bearer)
        attempts = 1 + self.max_retries if retryable else 1

        for attempt in range(1, attempts + 1):
            is_last = attempt == attempts
            if not self.breaker.allow_request():
                self._log(method, path, status=None, duration_ms=0.0, attempt=attempt, outcome="circuit_open")
                raise CircuitOpen(f"{self.service_name} service circuit is open.", service=self.service_name)
            started = self._clock()
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=call_headers,
                    auth=auth,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                self.breaker.record_failure()
                duration_ms = (self._clock() - started) * 1000
                self._log(
                    method, path, status=None, duration_ms=duration_ms, attempt=attempt, outcome=type(exc).__name__
                )
                if not (isinstance(exc, RETRYABLE_EXCEPTIONS) and self._may_retry(is_last)):
                    raise ServiceUnavailable(
                        f"{self.service_name} service is unreachable ({type(exc).__name__}).", service=self.service_name
                    ) from exc
                self._sleep(self.backoff_delay(attempt))
                continue
            except BaseException:
                self.breaker.record_failure()  # never leave a half-open trial hanging
                raise

            status = response.status_code
            duration_ms = (self._clock() - started) * 1000
            if status >= 500:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            self._log(method, path, status=status, duration_ms=duration_ms, attempt=attempt, outcome="response")

            if status in RETRYABLE_STATUSES:
                if self._may_retry(is_last):
                    response.close()
                    self._sleep(self.backoff_delay(attempt))
                    continue
                raise ServiceUnavailable(
                    f"{self.service_name} service answered {status}.", service=self.service_name, status_code=status
                )
            if 200 <= status < 300 or status in allow_statuses:
                return response
            raise ServiceError(
                f"{self.service_name} service refused {method} {path}.",
                service=self.service_name,
                status_code=status,
                body=_error_body(response),
            )
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    def _may_retry(self, is_last: bool) -> bool:
        # A failure that opened the circuit ends the call at once: no backoff sleep, the real error surfaces.
        return not is_last and self.breaker.state is not CircuitState.OPEN

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt`` (1-based): exponential, capped, with "equal jitter"."""
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def json_of(self, response: requests.Response) -> Any:
        """The decoded JSON body of a 2xx answer, or ServiceResponseInvalid."""
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceResponseInvalid(
                f"{self.service_name} service answered with a body that is not JSON.",
                service=self.service_name,
                status_code=response.status_code,
                body=response.text[:ERROR_BODY_MAX_CHARS],
            ) from exc

    def field(
        self, response: requests.Response, data: Any, name: str, kind: type | tuple[type, ...], *, required: bool = True
    ) -> Any:
        """``data[name]`` checked against ``kind`` (bools are not ints); None when optional and absent or null."""
        if not isinstance(data, dict):
            raise self.invalid_response(response, "expected a JSON object")
        value = data.get(name)
        if value is None and not required:
            return None
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.invalid_response(
                response, f"field {name!r} is missing or not {'/'.join(k.__name__ for k in kinds)}"
            )
        return value

    def invalid_response(self, response: requests.Response, problem: str) -> ServiceResponseInvalid:
        """The error to raise when a 2xx body does not have the expected shape."""
        return ServiceResponseInvalid(
            f"{self.service_name} service answered with an unexpected body: {problem}",
            service=self.service_name,
            status_code=response.status_code,
            body=_error_body(response),
        )

    def _log(
        self, method: str, path: str, *, status: int | None, duration_ms: float, attempt: int, outcome: str
    ) -> None:
        # Never the headers: they carry the bearer token.
        ok = outcome == "response" and status is not None and status < 500
        logger.log(
            logging.INFO if ok else logging.WARNING,
            "service call",
            extra={
                "service": self.service_name,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 1),
                "attempt": attempt,
                "outcome": outcome,
            },
        )

    def _validated_base_url(self, base_url: str | None) -> str:
        if base_url is None and self.base_url_setting:
            base_url = client_setting(self.base_url_setting) or ""
        if not base_url:
            raise ClientNotConfigured(f"{self.base_url_setting or 'base_url'} must be set to the service's URL.")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ClientNotConfigured(f"{self.base_url_setting or 'base_url'} must be an http(s) URL: {base_url!r}")
        return base_url.rstrip("/")

    @staticmethod
    def _validated_path(path: str) -> str:
        # A path is appended to the base URL; refusing "//host" and schemes keeps the token on the right host.
        if not path.startswith("/") or path.startswith("//") or "://" in path:
            raise ValueError(f"A service path must be relative to the base URL and start with '/': {path!r}")
        return path

    @staticmethod
    def _validated_idempotency_key(key: str) -> str:
        if not (0 < len(key) <= IDEMPOTENCY_KEY_MAX_CHARS) or not all("!" <= char <= "~" for char in key):
            raise ValueError(f"An idempotency key is 1-{IDEMPOTENCY_KEY_MAX_CHARS} visible ASCII characters.")
        return key


def positive_id(value: int, name: str) -> int:
    """An id that is safe to put in a URL path: a positive int (bools and strings refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}.")
    return value
