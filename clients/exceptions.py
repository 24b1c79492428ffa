"""Errors raised by the sibling-service clients and the local token verifier."""

from __future__ import annotations

from typing import Any


class ClientNotConfigured(Exception):
    """A setting the package needs is missing or invalid; the message names it. Not retryable: fix the setting."""


class ServiceClientError(Exception):
    """Base of every error a sibling-service client raises."""

    def __init__(self, message: str, *, service: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.service = service


class ServiceUnavailable(ServiceClientError):
    """The service could not answer: transport failure, timeout, open circuit or 502/503/504 after retries.

    Safe to retry later (a Celery task can ``autoretry_for=(ServiceUnavailable,)``); a view turns it into a 503.
    """

    def __init__(self, message: str, *, service: str = "", status_code: int | None = None) -> None:
        super().__init__(message, service=service)
        self.status_code = status_code


class CircuitOpen(ServiceUnavailable):
    """The circuit breaker is open: the call failed fast without reaching the service."""


class ServiceError(ServiceClientError):
    """The service answered with an HTTP error that retrying will not fix (4xx, 500, an unexpected 3xx)."""

    def __init__(self, message: str, *, service: str = "", status_code: int, body: Any = None) -> None:
        super().__init__(message, service=service)
        self.status_code = status_code
        self.body = body

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status_code})"


class ServiceResponseInvalid(ServiceError):
    """The service answered 2xx but its body does not have the shape the client expects."""


class TokenRejected(Exception):
    """A token failed local verification; ``reason`` says why in words a client may see, ``code`` for machines."""

    def __init__(self, reason: str, *, code: str = "token_not_valid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class KeySetUnavailable(ServiceUnavailable):
    """The verifier has no signing keys because the JWKS could not be fetched: not the token's fault."""
