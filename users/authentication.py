"""DRF authentication: a person's access token of a live session, or a sibling service's token."""

from dataclasses import dataclass, field

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from users import cache, tokens
from users.exceptions import SessionEnded, TokenInvalid
from users.models import CustomUser, ServiceAccount
from users.session_state import session_is_alive


@dataclass(frozen=True)
class ServicePrincipal:
    """The caller when a sibling service presents a service token: no person, only scopes."""

    client_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_service = True
    user_type = None
    pk = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def service_account_is_active(client_id: str) -> bool:
    """Cached: a deactivated service account's tokens stop working within a minute at most."""
    return cache.service_account_active_get(client_id, load=_service_account_active_load)


def _service_account_active_load(client_id: str) -> bool:
    return ServiceAccount.objects.filter(client_id=client_id, is_active=True).exists()


def bearer_token_from(request) -> str | None:
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


def verify_access_token(raw: str, *, claims: dict | None = None) -> dict:
    """Claims of a valid access token of a live session, or TokenInvalid (``claims``: already decoded)."""
    if claims is None:
        claims = tokens.decode(raw, token_type=tokens.ACCESS)
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise TokenInvalid("Token is invalid.") from exc
    if not session_is_alive(session_id=claims["sid"], user_id=user_id):
        raise SessionEnded("Session has ended; log in again.")
    claims["user_id"] = user_id
    return claims


class SessionJWTAuthentication(authentication.BaseAuthentication):
    """Authenticates ``Authorization: Bearer <access token>``; request.auth holds the token's claims."""

    www_authenticate_realm = "api"

    def authenticate(self, request):
        raw = bearer_token_from(request)
        if raw is None:
            return None
        try:
            claims = tokens.decode(raw, token_type=(tokens.ACCESS, tokens.SERVICE))
            if claims["token_type"] == tokens.SERVICE:
                return self._service(claims)
            claims = verify_access_token(raw, claims=claims)
        except TokenInvalid as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from exc
        user = CustomUser.objects.filter(pk=claims["user_id"], is_active=True).first()
        if user is None:
            raise exceptions.AuthenticationFailed(_("User is inactive or gone."), code="user_inactive")
        return user, claims

    @staticmethod
    def _service(claims: dict) -> tuple[ServicePrincipal, dict]:
        if not service_account_is_active(claims["sub"]):
            raise TokenInvalid("Service account is inactive or gone.", code="service_inactive")
        return ServicePrincipal(client_id=claims["sub"], scopes=frozenset(claims["scope"])), claims

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


class SessionJWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = SessionJWTAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
