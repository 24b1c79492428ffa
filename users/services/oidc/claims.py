"""What each OpenID Connect scope releases about a person, read from the owners of the user JSON and role fields."""

from typing import Any

from django.conf import settings

from users.models import CustomUser
from users.people_schema import ROLES
from users.selectors import user_public_data

# The claims each scope releases; ``sub`` comes with ``openid`` and is always there.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": ("name", "given_name", "family_name", "preferred_username"),
    "email": ("email", "email_verified"),
    "school": ("role", "user_type", "department", "student_id", "employee_id"),
}
# The role fields the ``school`` scope carries when the person's role has them (users.people_schema declares them).
SCHOOL_PROFILE_FIELDS = ("department", "student_id", "employee_id")
# The authentication context class of a login: a second factor (or a passkey with user verification) or not.
ACR_SINGLE_FACTOR = "aal1"
ACR_MULTI_FACTOR = "aal2"


def scopes_supported() -> list[str]:
    return list(settings.OIDC_SCOPES)


def claims_supported() -> list[str]:
    """Every claim an id_token or the userinfo endpoint may carry."""
    session = ["iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "acr", "jti"]
    return [*session, *(name for names in SCOPE_CLAIMS.values() for name in names if name not in session)]


def acr_for(amr: list[str]) -> str:
    return ACR_MULTI_FACTOR if "mfa" in amr else ACR_SINGLE_FACTOR


def person_claims(user: CustomUser, scopes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The claims ``scopes`` release about ``user`` (``sub`` always)."""
    public = user_public_data(user)
    claims: dict[str, Any] = {"sub": str(public["id"])}
    if "profile" in scopes:
        full_name = " ".join(part for part in (public["first_name"], public["last_name"]) if part)
        claims.update(
            name=full_name or public["username"],
            given_name=public["first_name"],
            family_name=public["last_name"],
            preferred_username=public["username"],
        )
    if "email" in scopes:
        claims.update(email=public["email"], email_verified=public["email_verified"])
    if "school" in scopes:
        claims.update(role=public["role"], user_type=public["user_type"])
        claims.update(_school_profile(user))
    return claims


def _school_profile(user: CustomUser) -> dict[str, Any]:
    role = ROLES[user.user_type]
    names = [name for name in SCHOOL_PROFILE_FIELDS if name in role.names()]
    if not names:
        return {}
    profile = role.model.objects.filter(user=user).values(*names).first() or {}
    return {name: profile.get(name) or None for name in names}
