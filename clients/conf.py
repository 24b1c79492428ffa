"""Settings of the clients package: its defaults in one table, read from a source the host chooses.

The package runs inside the user service (Django) and inside sibling services whatever their framework, so
nothing here imports a framework. A setting is looked up by name in the installed *source*: the process
environment by default; a Django project installs its settings instead (``clients.django``). A name the source
does not define takes its default from ``DEFAULTS`` (one place; the user service's ``settings.py`` reads its
environment with these same defaults), cast to the default's type. Every class also takes its configuration
as constructor arguments, which win over any source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from clients.exceptions import ClientNotConfigured

__all__ = [
    "DEFAULTS",
    "JWKS_PATH",
    "VERIFICATIONS",
    "Source",
    "VerifierConfig",
    "client_setting",
    "environ_source",
    "setting_from",
    "settings_source_install",
]

# Where the user service publishes its signing keys, relative to its base URL.
JWKS_PATH = "/api/v1/users/.well-known/jwks.json"

# How incoming tokens are checked: locally against the JWKS (+ deny-list), or by asking validate-token/.
VERIFICATIONS = ("local", "remote")

DEFAULTS: dict[str, Any] = {
    # Outgoing calls to sibling services (clients/base.py); the base URL settings (ACADEMIC_SERVICE_URL, ...).
    "SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS": 1.0,
    "SERVICE_HTTP_READ_TIMEOUT_SECONDS": 3.0,
    "SERVICE_HTTP_MAX_RETRIES": 2,
    "SERVICE_HTTP_BACKOFF_SECONDS": 0.2,
    "SERVICE_HTTP_BACKOFF_MAX_SECONDS": 2.0,
    "SERVICE_HTTP_POOL_MAXSIZE": 10,
    "SERVICE_CIRCUIT_FAILURE_THRESHOLD": 5,
    "SERVICE_CIRCUIT_RESET_SECONDS": 30.0,
    "ACADEMIC_SERVICE_URL": "",
    "NOTIFICATION_SERVICE_URL": "",
    "ATTENDANCE_SERVICE_URL": "",
    # A sibling checking the user service's tokens (clients/tokens.py, clients/remote.py). USER_SERVICE_URL is
    # the base of validate-token/ and, when USER_SERVICE_JWKS_URL is empty, of the JWKS. Without
    # USER_SERVICE_JWT_ISSUER the verifier falls back to JWT_ISSUER (the user service's own name for it, when it
    # verifies its own tokens).
    "USER_SERVICE_URL": "",
    "USER_SERVICE_TOKEN_CHECK": "local",
    "USER_SERVICE_JWKS_URL": "",
    "USER_SERVICE_JWT_ISSUER": "",
    "JWT_ISSUER": "",
    "USER_SERVICE_JWT_LEEWAY_SECONDS": 10.0,
    "USER_SERVICE_JWKS_REFETCH_SECONDS": 30.0,
    "USER_SERVICE_JWKS_MAX_AGE_SECONDS": 3600.0,
    "USER_SERVICE_DENY_LIST_MAX_ENTRIES": 100_000,
}

_KINDS = {int: "a whole number", float: "a number", str: "text"}

# A source answers the raw value of a setting by name, or raises KeyError if it does not define it.
Source = Callable[[str], Any]


def environ_source(name: str) -> Any:
    """The environment variable ``name`` (KeyError if unset): the default source."""
    return os.environ[name]


_source: Source = environ_source


def settings_source_install(source: Source | None) -> None:
    """Read settings from ``source`` from now on (None: back to the environment); one per process."""
    global _source  # installed once at start-up (clients.django does it for a Django project)
    _source = source or environ_source


def setting_from(source: Source, name: str) -> Any:
    """Setting ``name`` from ``source``, else its default; cast to the default's type (KeyError if unknown).

    A value that does not cast (``"abc"`` for a number) raises ClientNotConfigured naming the setting.
    """
    default = DEFAULTS[name]
    try:
        value = source(name)
    except KeyError:
        return default
    if value is None:  # a host setting left as None means "not set"
        return default
    try:
        return type(default)(value)
    except (TypeError, ValueError) as exc:
        raise ClientNotConfigured(f"{name} must be {_KINDS[type(default)]}, not {value!r}.") from exc


def client_setting(name: str) -> Any:
    """Setting ``name`` from the installed source, else this package's default (KeyError if unknown)."""
    return setting_from(_source, name)


@dataclass(frozen=True)
class VerifierConfig:
    """How a sibling checks the user service's tokens: a plain value, built by hand or from a settings source.

    ``verification`` ``"local"`` verifies signatures with the JWKS (``jwks_url``, else ``user_service_url`` +
    ``JWKS_PATH``) and ``issuer``; ``"remote"`` asks ``user_service_url``'s ``validate-token/`` per request.
    """

    jwks_url: str = ""
    issuer: str = ""
    user_service_url: str = ""
    verification: str = "local"
    leeway_seconds: float = DEFAULTS["USER_SERVICE_JWT_LEEWAY_SECONDS"]
    refetch_interval_seconds: float = DEFAULTS["USER_SERVICE_JWKS_REFETCH_SECONDS"]
    keys_max_age_seconds: float = DEFAULTS["USER_SERVICE_JWKS_MAX_AGE_SECONDS"]
    connect_timeout: float = DEFAULTS["SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS"]
    read_timeout: float = DEFAULTS["SERVICE_HTTP_READ_TIMEOUT_SECONDS"]
    deny_list_max_entries: int = DEFAULTS["USER_SERVICE_DENY_LIST_MAX_ENTRIES"]

    @classmethod
    def from_source(cls, source: Source | None = None) -> Self:
        """From the USER_SERVICE_* settings of ``source`` (default: the installed one, the environment unless set)."""
        if source is None:
            source = _source
        return cls(
            jwks_url=setting_from(source, "USER_SERVICE_JWKS_URL"),
            issuer=setting_from(source, "USER_SERVICE_JWT_ISSUER") or setting_from(source, "JWT_ISSUER"),
            user_service_url=setting_from(source, "USER_SERVICE_URL"),
            verification=setting_from(source, "USER_SERVICE_TOKEN_CHECK"),
            leeway_seconds=setting_from(source, "USER_SERVICE_JWT_LEEWAY_SECONDS"),
            refetch_interval_seconds=setting_from(source, "USER_SERVICE_JWKS_REFETCH_SECONDS"),
            keys_max_age_seconds=setting_from(source, "USER_SERVICE_JWKS_MAX_AGE_SECONDS"),
            connect_timeout=setting_from(source, "SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS"),
            read_timeout=setting_from(source, "SERVICE_HTTP_READ_TIMEOUT_SECONDS"),
            deny_list_max_entries=setting_from(source, "USER_SERVICE_DENY_LIST_MAX_ENTRIES"),
        )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Self:
        """From a mapping of setting names (e.g. Flask's ``app.config``), then the environment, then defaults."""

        def source(name: str) -> Any:
            return mapping[name] if name in mapping else os.environ[name]

        return cls.from_source(source)

    @property
    def resolved_jwks_url(self) -> str:
        """``jwks_url``, or the user service's standard JWKS path under ``user_service_url``."""
        if self.jwks_url:
            return self.jwks_url
        return self.user_service_url.rstrip("/") + JWKS_PATH if self.user_service_url else ""

    def checked(self) -> Self:
        """This configuration if complete for its ``verification``, else ClientNotConfigured naming the setting."""
        if self.verification not in VERIFICATIONS:
            raise ClientNotConfigured(
                f"USER_SERVICE_TOKEN_CHECK must be one of {', '.join(VERIFICATIONS)}, not {self.verification!r}."
            )
        if self.verification == "remote":
            if not self.user_service_url:
                raise ClientNotConfigured(
                    "USER_SERVICE_URL (e.g. http://users:8000) must be set to check tokens with validate-token/."
                )
        elif not self.resolved_jwks_url or not self.issuer:
            raise ClientNotConfigured(
                "USER_SERVICE_JWKS_URL (e.g. http://users:8000" + JWKS_PATH + ") or USER_SERVICE_URL, and "
                "USER_SERVICE_JWT_ISSUER must be set to verify the user service's tokens."
            )
        return self
