"""oauthlib's OpenID Connect server (django-oauth-toolkit's ``OAUTH2_SERVER_CLASS``): an authorization request is
validated once and its code issued for the validated request.

oauthlib's ``create_authorization_response`` rebuilds the request from the URI and validates it all over again, as
if the consent page had carried the parameters across; the authorization view answers in the same call that
validated the request, so ``authorization_code_response`` runs the code grant's remaining steps on that request:
the code, its storage (the validator: the grant and its login session), the redirect (with ``iss``). The OpenID
Connect code grant issues a code as the OAuth 2 one does (it adds only to the token response).
"""

import secrets
from functools import cached_property
from typing import Any

from oauth2_provider.oauth2_backends import _add_iss_to_redirect
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import utils
from oauthlib.oauth2.rfc6749.endpoints.base import catch_errors_and_unavailability
from oauthlib.openid import Server


class _AuthorizationRequest(Request):
    """oauthlib's request; the authorization code grant asks for its duplicate parameters once per parameter it
    checks, and each time the query string was parsed anew."""

    @cached_property
    def duplicate_params(self) -> list[str]:
        return Request.duplicate_params.fget(self)  # type: ignore[attr-defined]


class OidcServer(Server):
    """oauthlib's OpenID Connect server; an authorization request is validated as oauthlib's endpoint does it."""

    # 256 random bits in one call (oauthlib draws each of a code's 30 characters with its own system call).
    CODE_BYTES = 32

    @catch_errors_and_unavailability
    def validate_authorization_request(
        self, uri: str, http_method: str = "GET", body: Any = None, headers: Any = None
    ) -> tuple[list[str], dict[str, Any]]:
        request = _AuthorizationRequest(uri, http_method=http_method, body=body, headers=headers)
        request.scopes = utils.scope_to_list(request.scope)
        handler = self.response_types.get(request.response_type, self.default_response_type_handler)
        return handler.validate_authorization_request(request)

    def authorization_code_response(self, request: Request, *, issuer: str) -> str:
        """The redirect URI with a new code, ``state`` and ``iss`` (RFC 9207) for a request
        ``validate_authorization_request`` validated; ``request.user`` is the person the code is for. The validator
        stores the code first.

        The parameters are added to the registered redirect URI in one pass. One that already carries an ``iss``
        parameter gets django-oauth-toolkit's treatment (``_add_iss_to_redirect``: the registered one dropped, the
        issuer's added), so the client never sees two."""
        code = {"code": secrets.token_urlsafe(self.CODE_BYTES)}
        if request.state:
            code["state"] = request.state
        grant_type = self.auth_grant
        grant_type.request_validator.save_authorization_code(request.client_id, code, request)
        iss_registered = "iss=" in request.redirect_uri
        if not iss_registered:
            code["iss"] = issuer
        headers, _body, _status = grant_type.prepare_authorization_response(request, code, {}, None, 302)
        location: str = headers["Location"]
        return _add_iss_to_redirect(location, issuer) if iss_registered else location
