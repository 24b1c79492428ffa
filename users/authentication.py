"""DRF authentication: a person's access token of a live session, or a sibling service's token.

On the enrolment endpoints only, also an enrolment ``mfa_token`` (a person who must set up a second factor).

Plus a migration mode that is meant to be switched off: anonymous reads from ``LEGACY_INTERNAL_NETWORKS``.
"""

import logging
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from users import metrics, tokens
from users.exceptions import MfaTokenInvalid, TokenInvalid
from users.http import address_in_networks, client_ip
from users.models import CustomUser, MfaChallenge
from users.principal import ServicePrincipal, principal_resolve
from users.services.credentials import Channel
from users.services.mfa import enrolment_grant_resolve, looks_like_mfa_token

logger = logging.getLogger(__name__)
MFA_TOKEN_REFUSED = "An mfa_token is not an access token: it works only on the enrolment endpoints and login/mfa/."  # noqa: S105 - a message


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
        if looks_like_mfa_token(raw):
            raise exceptions.AuthenticationFailed(MFA_TOKEN_REFUSED, code="mfa_token_not_allowed")
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


class MfaEnrolmentAuthentication(authentication.BaseAuthentication):
    """An enrolment ``mfa_token`` as the bearer token, on the enrolment endpoints only (placed first there).

    Anything else (no header, an access token) is left to the next class. The token speaks for its person only
    while they have no factor confirmed (``users.services.mfa.enrolment_grant_resolve``); request.auth is its
    ``MfaChallenge``, which ``users.api.permissions.MfaTokenScope`` limits to the methods a view lists.
    """

    def authenticate(self, request: Request) -> tuple[CustomUser, MfaChallenge] | None:
        raw = bearer_token_from(request)
        if raw is None or not looks_like_mfa_token(raw):
            return None
        try:
            challenge = enrolment_grant_resolve(raw, channel=Channel.API.value)
        except MfaTokenInvalid as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from exc
        return challenge.user, challenge

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class LegacyInternalNetworkAuthentication(authentication.BaseAuthentication):
    """A call with no credentials at all from ``LEGACY_INTERNAL_NETWORKS``: a service principal with ``users:read``.

    The services of the system this one replaced read users without credentials; this lets them keep working
    on the day of the switch, and makes each such call visible (a deprecation warning naming the caller's
    address, ``ums_legacy_anonymous_calls_total``) until every caller presents a service token and the
    setting is emptied. Placed last, and only on the read endpoints those callers use; anything carrying an
    ``Authorization`` header is left to the other classes, so a bad token is never served by address.
    """

    SCOPES = frozenset({"users:read"})

    def authenticate(self, request: Request) -> tuple[ServicePrincipal, None] | None:
        if not settings.LEGACY_INTERNAL_NETWORKS or request.META.get("HTTP_AUTHORIZATION"):
            return None
        address = client_ip(request)
        if not address_in_networks(address, settings.LEGACY_INTERNAL_NETWORKS):
            return None
        match = request.resolver_match
        endpoint = match.view_name if match is not None else request.path
        logger.warning(
            "Deprecated anonymous call to %s from %s (LEGACY_INTERNAL_NETWORKS); the caller must move to a "
            "service token.",
            endpoint,
            address,
            extra={"caller_ip": address, "endpoint": endpoint},
        )
        metrics.LEGACY_ANONYMOUS_CALLS.labels(endpoint=endpoint).inc()
        return ServicePrincipal(client_id=f"legacy:{address}", scopes=self.SCOPES), None


# The authentication of the read endpoints the replaced system's services call without credentials.
LEGACY_READ_AUTHENTICATION = [SessionJWTAuthentication, LegacyInternalNetworkAuthentication]


# The authentication of the endpoints that also take an enrolment mfa_token (users/api/mfa.py).
ENROLMENT_AUTHENTICATION = [MfaEnrolmentAuthentication, SessionJWTAuthentication]


class SessionJWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = SessionJWTAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class MfaEnrolmentAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = MfaEnrolmentAuthentication
    name = "mfaEnrolmentToken"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The mfa_token of an mfa_enrolment_required login answer, until a factor is confirmed.",
        }


class LegacyInternalNetworkAuthenticationScheme(OpenApiAuthenticationExtension):
    """Not part of the documented API: a migration mode, off by default, that the schema does not advertise."""

    target_class = LegacyInternalNetworkAuthentication
    name: list[str] = []

    def get_security_definition(self, auto_schema: object) -> list:
        return []

    def get_security_requirement(self, auto_schema: object) -> list[dict[str, list[Any]]]:
        return []
