"""Role predicates composed on the views (DESIGN §6 permission matrix)."""

from rest_framework.permissions import BasePermission

from users.models import UserType


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
