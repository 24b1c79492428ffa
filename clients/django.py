"""Django adapter: Django settings as the package's settings source, the default verifier, and a middleware.

In a Django project add ``"clients.django.ClientsConfig"`` to ``INSTALLED_APPS`` (or call
``use_django_settings()`` at start-up): the clients then read ``ACADEMIC_SERVICE_URL``, ``SERVICE_HTTP_*``,
``USER_SERVICE_*`` … from Django settings, with this package's defaults (``clients.conf.DEFAULTS``) for the names
the project does not define. ``config_from_settings()`` is the token-check configuration they give.

``BearerTokenMiddleware`` checks a request's bearer token for plain Django views (DRF views use
``clients.drf.VerifiedTokenAuthentication``): ``request.token_claims`` / ``request.token_user`` hold the verdict
(None without a token), a malformed or refused token is answered 401 ``{"valid": false, "detail", "code"}``
with ``WWW-Authenticate: Bearer``, and 503 when the token cannot be checked now. ``@token_required`` on a view
answers 401 to a request that carried no token.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from clients.bearer import AuthenticationDenied, BearerAuthenticator, TokenChecker, token_checker_from
from clients.conf import VerifierConfig, settings_source_install
from clients.exceptions import ClientNotConfigured

__all__ = [
    "BearerTokenMiddleware",
    "ClientsConfig",
    "config_from_settings",
    "default_verifier",
    "django_settings_source",
    "token_required",
    "use_django_settings",
]


def django_settings_source(name: str) -> Any:
    """The Django setting ``name`` (KeyError if the project does not define it); read at each lookup."""
    try:
        return getattr(settings, name)
    except AttributeError:
        raise KeyError(name) from None


def use_django_settings() -> None:
    """Make Django settings the source of every client setting in this process."""
    settings_source_install(django_settings_source)


class ClientsConfig(AppConfig):
    """``INSTALLED_APPS`` entry of the package in a Django project: installs Django settings as its source."""

    name = "clients"
    label = "ums_clients"
    verbose_name = "User service clients"

    def ready(self) -> None:
        use_django_settings()


def config_from_settings() -> VerifierConfig:
    """The token-check configuration of the Django settings (ImproperlyConfigured naming what is missing)."""
    try:
        return VerifierConfig.from_source(django_settings_source).checked()
    except ClientNotConfigured as exc:
        raise ImproperlyConfigured(str(exc)) from exc


@lru_cache(maxsize=1)
def default_verifier() -> TokenChecker:
    """The process-wide checker built from settings, used by VerifiedTokenAuthentication and the middleware."""
    return token_checker_from(config_from_settings())


@receiver(setting_changed)
def _reset_default_verifier(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(("USER_SERVICE_", "SERVICE_HTTP_", "JWT_ISSUER")):
        default_verifier.cache_clear()


def denied_response(denied: AuthenticationDenied) -> HttpResponse:
    """``denied``'s answer as a Django response."""
    return HttpResponse(denied.body_bytes(), status=denied.status, headers=dict(denied.headers()))


class BearerTokenMiddleware:
    """Checks the bearer token of every request (see the module); ``checker`` defaults to ``default_verifier()``."""

    checker: TokenChecker | None = None

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._authenticator: BearerAuthenticator | None = None

    def authenticator(self) -> BearerAuthenticator:
        checker = self.checker or default_verifier()
        if self._authenticator is None or self._authenticator.checker is not checker:
            self._authenticator = BearerAuthenticator(checker)
        return self._authenticator

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            verdict = self.authenticator().authenticate(request.headers.get("Authorization"))
        except AuthenticationDenied as denied:
            return denied_response(denied)
        request.token_claims = verdict.claims if verdict else None  # type: ignore[attr-defined]  # an attribute of ours
        request.token_user = verdict.user if verdict else None  # type: ignore[attr-defined]  # an attribute of ours
        return self.get_response(request)


def token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 401 to a request that reached ``view`` without a valid token (needs BearerTokenMiddleware)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request, "token_claims", None) is None:
            return denied_response(AuthenticationDenied.missing())
        return view(request, *args, **kwargs)

    return wrapper
