"""DRF adapter: an authentication class for sibling services built on Django REST framework.

::

    REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["clients.drf.VerifiedTokenAuthentication"], ...}

(``clients.tokens.VerifiedTokenAuthentication`` names the same class, for settings written before it moved.)
"""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions, status
from rest_framework.request import Request

from clients.bearer import UNAVAILABLE_CODE, UNAVAILABLE_DETAIL, TokenChecker
from clients.django import default_verifier
from clients.exceptions import ServiceClientError, TokenRejected
from clients.tokens import TokenUser

__all__ = ["AuthenticationUnavailable", "VerifiedTokenAuthentication"]


class AuthenticationUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = UNAVAILABLE_DETAIL
    default_code = UNAVAILABLE_CODE


class VerifiedTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication for sibling services: ``Authorization: Bearer <our access token>``.

    ``request.user`` is a TokenUser (id, username, user_type, role; no database), ``request.auth`` the claims.
    Uses ``clients.django.default_verifier()`` (settings: local with the JWKS, or remote with validate-token/)
    unless a subclass sets ``verifier``.
    """

    verifier: TokenChecker | None = None
    www_authenticate_realm = "api"

    def get_verifier(self) -> TokenChecker:
        """The checker this class verifies tokens with."""
        return self.verifier or default_verifier()

    def authenticate(self, request: Request) -> tuple[TokenUser, dict[str, Any]] | None:
        """(TokenUser, claims) for a valid bearer token, None without one; 401 for a bad one, 503 if it cannot tell."""
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Token is malformed.", code="token_malformed") from exc
        try:
            claims = self.get_verifier().verify(raw)
        except TokenRejected as exc:
            raise exceptions.AuthenticationFailed(exc.reason, code=exc.code) from exc
        except ServiceClientError as exc:  # KeySetUnavailable, or the user service unreachable (remote check)
            raise AuthenticationUnavailable() from exc
        return TokenUser.from_claims(claims), claims

    def authenticate_header(self, request: Request) -> str:
        """Makes DRF answer 401 (not 403) with a Bearer challenge."""
        return f'Bearer realm="{self.www_authenticate_realm}"'
