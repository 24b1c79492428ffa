"""Role predicates composed on the views (DESIGN §6 permission matrix), and the step-up check of API requests."""

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from users.models import MfaChallenge, UserType
from users.services.reauth import session_recent_authentication_require
from users.services.step_up import email_change_needs_step_up


class IsPerson(BasePermission):
    """An authenticated person (any role); the default, so a service token reaches no personal endpoint."""

    message = "This endpoint is for signed-in people."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and not getattr(user, "is_service", False))


class IsService(BasePermission):
    """An authenticated sibling service (service token)."""

    message = "This endpoint is for service accounts."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(request.user, "is_service", False))


def HasServiceScope(scope: str) -> type[BasePermission]:  # reads as a predicate class
    """A service token carrying ``scope``; compose with ``|``: ``IsStaffOrHOD | HasServiceScope("users:read")``."""

    class _HasServiceScope(BasePermission):
        message = f"A service token with the {scope!r} scope is required."

        def has_permission(self, request, view) -> bool:
            user = request.user
            return bool(getattr(user, "is_service", False) and user.has_scope(scope))

    _HasServiceScope.__name__ = f"HasServiceScope[{scope}]"
    return _HasServiceScope


class IsHOD(BasePermission):
    message = "Only a head of department may do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.user_type == UserType.HOD)


class IsStaffOrHOD(BasePermission):
    message = "Only staff or a head of department may do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.user_type in (UserType.HOD, UserType.STAFF))


class MfaTokenScope(BasePermission):
    """An enrolment ``mfa_token`` reaches only the methods a view lists in ``mfa_token_methods``; elsewhere 401.

    Composed on the views that accept the token (``ENROLMENT_AUTHENTICATION``); an access token passes.
    """

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, MfaChallenge) and request.method not in getattr(view, "mfa_token_methods", ()):
            raise exceptions.AuthenticationFailed(
                "An mfa_token cannot do this; complete the login with POST login/mfa/ first.",
                code="mfa_token_not_allowed",
            )
        return True


def recent_authentication_require(request: Request) -> None:
    """The step-up check of a sensitive change made through the API: the bearer's session authenticated within
    ``REAUTH_SECONDS`` (``users.services.reauth``), else 403 ``reauthentication_required``."""
    claims: Any = request.auth  # an access token's claims: the views that call this take no other credential
    session_recent_authentication_require(session_id=claims["sid"])


def email_change_step_up(request: Request, *, user: Any, email: str | None) -> None:
    """A new e-mail address for an account (one's own or, by an HOD, another's) needs a recent authentication: the
    address is where password-reset links go. The rule is ``users.services.step_up``'s (the admin asks it too); every
    API way to change an address (``profile/``, ``{id}/``, the role endpoints) calls this."""
    if email_change_needs_step_up(user=user, email=email):
        recent_authentication_require(request)
