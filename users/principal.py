"""Who a bearer token speaks for: the one verifier of this service's tokens, used by every entry point.

``principal_resolve`` answers "is this token valid, and for whom?" for the DRF authentication class, the
``validate-token/`` fast path and token introspection alike: the token's signature and claim contract
(``users.tokens``, ``clients.claims``), then for a person's token that its session is alive
(``users.session_state``, the owner of that question) and, when asked, that the user is active; for a
service token that its service account is active. The entry points only shape the verdict: 401 with a
code, ``{"valid": false}``, ``{"active": false}``.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from users import cache, tokens
from users.exceptions import ServiceAccountInactive, SessionEnded, UserInactive
from users.models import CustomUser, ServiceAccount
from users.session_state import session_live_get

UserLoad = Literal["data", "model"]


@dataclass(frozen=True)
class PersonPrincipal:
    """A person's access token of a live session; ``user_data`` (public JSON) or ``user`` (model) when asked."""

    user_id: int
    session_id: str
    claims: dict[str, Any] = field(repr=False, compare=False)
    user_data: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    user: CustomUser | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ServicePrincipal:
    """The caller when a sibling service presents a service token: no person, only scopes."""

    client_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_service = True
    user_type = None
    pk = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


Principal = PersonPrincipal | ServicePrincipal


@overload
def principal_resolve(raw_token: str, *, load_user: UserLoad | None = None) -> PersonPrincipal: ...


@overload
def principal_resolve(
    raw_token: str, *, token_types: tuple[str, ...], load_user: UserLoad | None = None
) -> Principal: ...


def principal_resolve(
    raw_token: str, *, token_types: tuple[str, ...] = (tokens.ACCESS,), load_user: UserLoad | None = None
) -> Principal:
    """The principal of a valid token of one of ``token_types`` (a person's access token by default).

    ``load_user``: ``"data"`` adds the user's public data (read with the session state in one cache round
    trip; no SQL when warm), ``"model"`` the user's row; either refuses a user that is inactive or gone.
    Raises ``TokenInvalid`` (bad, expired or wrong type of token; ``code`` says which), ``SessionEnded``,
    ``UserInactive`` or ``ServiceAccountInactive``.
    """
    claims = tokens.decode(raw_token, token_type=token_types)
    if claims["token_type"] == tokens.SERVICE:
        return _service_principal(claims)
    user_id = int(claims["sub"])  # digits: the claim contract holds
    live = session_live_get(session_id=claims["sid"], user_id=user_id, with_user=load_user == "data")
    if live is None:
        raise SessionEnded("Session has ended; log in again.")
    user = None
    if load_user == "data" and not (live.user and live.user["is_active"]):
        raise UserInactive("User is inactive or gone.")
    if load_user == "model":
        user = CustomUser.objects.filter(pk=user_id, is_active=True).first()
        if user is None:
            raise UserInactive("User is inactive or gone.")
    return PersonPrincipal(user_id=user_id, session_id=claims["sid"], claims=claims, user_data=live.user, user=user)


def _service_principal(claims: dict[str, Any]) -> ServicePrincipal:
    if not service_account_is_active(claims["sub"]):
        raise ServiceAccountInactive("Service account is inactive or gone.")
    return ServicePrincipal(client_id=claims["sub"], scopes=frozenset(claims["scope"]), claims=claims)


def service_account_is_active(client_id: str) -> bool:
    """Cached: a deactivated service account's tokens stop working within a minute at most."""
    return cache.service_account_active_get(client_id, load=_service_account_active_load)


def _service_account_active_load(client_id: str) -> bool:
    return ServiceAccount.objects.filter(client_id=client_id, is_active=True).exists()
