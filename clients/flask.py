"""Flask adapter: ``init_app`` once, then ``@require_token`` on the views that need a user service token.

::

    from flask import Flask, g
    from clients.flask import init_app, require_token

    app = Flask(__name__)
    init_app(app)  # checker from app.config / the environment (USER_SERVICE_*), or init_app(app, verifier)

    @app.get("/me")
    @require_token
    def me():
        return {"id": g.token_user.id, "role": g.token_user.role}

A view behind ``require_token`` runs only with a valid token: ``g.token_claims`` holds its claims and
``g.token_user`` a ``TokenUser`` for a person's access token (None for a service token). Otherwise the
decorator answers 401 ``{"valid": false, "detail", "code"}`` with ``WWW-Authenticate: Bearer``, or 503 when
the token cannot be checked now. Only this module imports Flask.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request

from clients.bearer import AuthenticationDenied, BearerAuthenticator, TokenChecker, token_checker_from
from clients.conf import VerifierConfig

__all__ = ["EXTENSION", "denied_response", "init_app", "require_token"]

EXTENSION = "ums_clients"

F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask, checker: TokenChecker | None = None, *, realm: str = "api") -> BearerAuthenticator:
    """Attach the bearer check to ``app`` and return it.

    Without ``checker`` it is built from ``app.config`` (then the environment) with the USER_SERVICE_* names:
    a local ``TokenVerifier`` (``USER_SERVICE_JWKS_URL`` or ``USER_SERVICE_URL``, and
    ``USER_SERVICE_JWT_ISSUER``), or a ``RemoteTokenVerifier`` with ``USER_SERVICE_TOKEN_CHECK = "remote"``.
    """
    if checker is None:
        checker = token_checker_from(VerifierConfig.from_mapping(app.config))
    authenticator = BearerAuthenticator(checker, realm=realm)
    app.extensions[EXTENSION] = authenticator
    return authenticator


def require_token(view: F) -> F:
    """Run ``view`` only for a request with a valid bearer token (claims in ``g``); else answer 401 or 503."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            authenticator: BearerAuthenticator = current_app.extensions[EXTENSION]
        except KeyError:
            raise RuntimeError("Call clients.flask.init_app(app) before serving views with @require_token.") from None
        try:
            verdict = authenticator.require(request.headers.get("Authorization"))
        except AuthenticationDenied as denied:
            return denied_response(denied)
        g.token_claims = verdict.claims
        g.token_user = verdict.user
        return current_app.ensure_sync(view)(*args, **kwargs)

    return cast(F, wrapper)


def denied_response(denied: AuthenticationDenied) -> Response:
    """``denied``'s answer as a Flask response."""
    return current_app.response_class(denied.body_bytes(), status=denied.status, headers=denied.headers())
