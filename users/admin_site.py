"""The Django admin as HODs use it: only active HOD accounts may enter."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

HOD = 1  # users.models.UserType.HOD; this module loads before the models may be imported


class HODAdminSite(admin.AdminSite):
    site_header = "User Management Service"
    site_title = "User Management"

    def has_permission(self, request) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and getattr(user, "user_type", None) == HOD)


class HODAdminConfig(AdminConfig):
    default_site = "users.admin_site.HODAdminSite"
