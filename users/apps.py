"""App configuration of the users app."""

from django.apps import AppConfig


class UsersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "users"
    verbose_name = "Users"

    def ready(self) -> None:
        from users import admin_outbox, admin_service, signals  # noqa: F401
