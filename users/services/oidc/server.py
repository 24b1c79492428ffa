"""oauthlib's OpenID Connect server (django-oauth-toolkit's ``OAUTH2_SERVER_CLASS``), whose authorization requests
work out their duplicate parameters once."""

from functools import cached_property
from typing import Any

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

    @catch_errors_and_unavailability
    def validate_authorization_request(
        self, uri: str, http_method: str = "GET", body: Any = None, headers: Any = None
    ) -> tuple[list[str], dict[str, Any]]:
        request = _AuthorizationRequest(uri, http_method=http_method, body=body, headers=headers)
        request.scopes = utils.scope_to_list(request.scope)
        handler = self.response_types.get(request.response_type, self.default_response_type_handler)
        return handler.validate_authorization_request(request)
