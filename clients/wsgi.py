"""WSGI middleware: every request must carry a valid bearer token of the user service, whatever the framework.

::

    from clients.wsgi import BearerTokenMiddleware

    application = BearerTokenMiddleware(application, verifier, public_paths={"/health", "/api/v1/users/login/"})

A request with a valid token reaches the application with the claims in ``environ["clients.token_claims"]``
and, for a person's access token, a ``TokenUser`` in ``environ["clients.token_user"]`` (else None). Any other
request is answered here: 401 ``{"valid": false, "detail", "code"}`` with ``WWW-Authenticate: Bearer``, or 503
when the token cannot be checked now. Requests to ``public_paths`` (exact ``PATH_INFO``) or for which
``is_public(environ)`` is true pass unchecked, with neither key set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from clients.bearer import AuthenticationDenied, BearerAuthenticator, TokenChecker

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ENVIRON_CLAIMS", "ENVIRON_USER", "BearerTokenMiddleware"]

ENVIRON_CLAIMS = "clients.token_claims"
ENVIRON_USER = "clients.token_user"

_REASONS = {401: "Unauthorized", 503: "Service Unavailable"}


class BearerTokenMiddleware:
    """Wraps a WSGI application so that only requests with a valid bearer token reach it (see the module)."""

    def __init__(
        self,
        app: WSGIApplication,
        checker: TokenChecker,
        *,
        public_paths: Iterable[str] = (),
        is_public: Callable[[WSGIEnvironment], bool] | None = None,
        realm: str = "api",
    ) -> None:
        self.app = app
        self.authenticator = BearerAuthenticator(checker, realm=realm)
        self.public_paths = frozenset(public_paths)
        self.is_public = is_public

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in self.public_paths or (self.is_public and self.is_public(environ)):
            return self.app(environ, start_response)
        try:
            verdict = self.authenticator.require(environ.get("HTTP_AUTHORIZATION"))
        except AuthenticationDenied as denied:
            return denied_response(denied, start_response)
        environ[ENVIRON_CLAIMS] = verdict.claims
        environ[ENVIRON_USER] = verdict.user
        return self.app(environ, start_response)


def denied_response(denied: AuthenticationDenied, start_response: StartResponse) -> list[bytes]:
    """Send ``denied``'s answer through ``start_response``; returns the body."""
    body = denied.body_bytes()
    headers = [*denied.headers(), ("Content-Length", str(len(body)))]
    start_response(f"{denied.status} {_REASONS.get(denied.status, 'Error')}", headers)
    return [body]
