"""Admin for service accounts (create: the secret is shown once, after "confirm it's you"; deactivate) and the
read-only audit trail."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse

from users.admin import HODPermissionsMixin
from users.admin_auth.step_up import step_up_redirect
from users.models import SecurityEvent, ServiceAccount
from users.services.service_accounts import KNOWN_SCOPES, service_account_create, service_account_save


class ServiceAccountForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in sorted(KNOWN_SCOPES)], required=False)

    class Meta:
        model = ServiceAccount
        fields = ["name", "client_id", "scopes", "is_active"]


@admin.register(ServiceAccount)
class ServiceAccountAdmin(HODPermissionsMixin, admin.ModelAdmin):
    form = ServiceAccountForm
    list_display = ("name", "client_id", "scopes", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("name", "client_id")
    readonly_fields = ("created_at", "last_used_at")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "client_id") if obj else self.readonly_fields

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """A new service account is a key to every person's data: a recent authentication first."""
        if (confirm := step_up_redirect(request)) is not None:
            return confirm
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            service_account_save(account=obj)
            return
        account, secret = service_account_create(
            name=obj.name, scopes=form.cleaned_data["scopes"], client_id=obj.client_id or None
        )
        obj.pk = account.pk
        messages.warning(request, f"Secret of {account.client_id} (shown once, store it now): {secret}")


@admin.register(SecurityEvent)
class SecurityEventAdmin(HODPermissionsMixin, admin.ModelAdmin):
    """Read-only: an audit trail that can be edited is not one."""

    list_display = ("created_at", "type", "user", "actor", "ip")
    list_filter = ("type", "created_at")
    search_fields = ("user__username", "user__email", "ip")
    list_select_related = ("user", "actor")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in SecurityEvent._meta.fields]

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
