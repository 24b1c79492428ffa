"""Role predicates composed on the views (DESIGN §6 permission matrix)."""

from rest_framework.permissions import BasePermission

from users.models import UserType


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
