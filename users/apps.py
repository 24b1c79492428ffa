"""App configurations: the users app, and the Django admin as HODs use it."""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class UsersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "users"
    verbose_name = "Users"

    def ready(self) -> None:
        from users import admin_outbox, admin_service, signals  # noqa: F401


class HODAdminConfig(admin_apps.AdminConfig):
    """The Django admin, served by ``users.admin_site.HODAdminSite`` (imported once the models are ready)."""

    default = False  # named in INSTALLED_APPS; UsersConfig stays this module's default
    default_site = "users.admin_site.HODAdminSite"
