"""App configurations: the users app, and the Django admin as HODs use it."""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps

from clients.service_token import token_provider_factory_install
from users.tokens import ServiceTokenMinter


class UsersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "users"
    verbose_name = "Users"

    def ready(self) -> None:
        # Registration on import (admin pages, signal receivers, Celery tasks the outbox publishes by
        # name) needs the models loaded, which they are only once the registry calls ready().
        from users import admin_oidc, admin_outbox, admin_service, signals, tasks  # noqa: F401
        from users.admin_auth import session  # noqa: F401  (marks when a Django session signs in)

        token_provider_factory_install(ServiceTokenMinter)  # calls to siblings carry our own service token


class HODAdminConfig(admin_apps.AdminConfig):
    """The Django admin, served by ``users.admin_site.HODAdminSite`` (imported once the models are ready)."""

    default = False  # named in INSTALLED_APPS; UsersConfig stays this module's default
    default_site = "users.admin_site.HODAdminSite"
