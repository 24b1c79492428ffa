"""DRF authentication: a person's access token of a live session, or a sibling service's token."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from users import tokens
from users.exceptions import TokenInvalid
from users.models import CustomUser
from users.principal import ServicePrincipal, principal_resolve


def bearer_token_from(request: Request) -> str | None:
    """The raw token of an ``Authorization: Bearer`` header, None if absent; malformed headers raise."""
    header = authentication.get_authorization_header(request).split()
    if not header:
        return None
    if header[0].lower() != b"bearer":
        return None
    if len(header) != 2:
        raise exceptions.AuthenticationFailed(_("Authorization header must be 'Bearer <token>'."))
    try:
        return header[1].decode("ascii")
    except UnicodeDecodeError as exc:
        raise exceptions.AuthenticationFailed(_("Token is malformed.")) from exc


class SessionJWTAuthentication(authentication.BaseAuthentication):
    """Authenticates ``Authorization: Bearer <access token>``; request.auth holds the token's claims.

    The verdict is ``users.principal.principal_resolve``'s; this class only turns it into DRF's terms.
    """

    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[CustomUser | ServicePrincipal, dict] | None:
        raw = bearer_token_from(request)
        if raw is None:
            return None
        try:
            principal = principal_resolve(raw, token_types=(tokens.ACCESS, tokens.SERVICE), load_user="model")
        except TokenInvalid as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from exc
        if isinstance(principal, ServicePrincipal):
            return principal, dict(principal.claims)
        assert principal.user is not None  # noqa: S101 - load_user="model" returns the user or raises
        return principal.user, principal.claims

    def authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


class SessionJWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = SessionJWTAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
