"""Admin for OpenID Connect clients (HODs register them; secrets are stored hashed), consents and issued tokens."""

from django import forms
from django.contrib import admin
from oauth2_provider.models import AccessToken, Application, Grant, IDToken, RefreshToken

from users.admin import HODPermissionsMixin
from users.models import OidcAuthorization, OidcClient, OidcConsent
from users.services.oidc.clients import backchannel_uri_validate, client_secret_set, oidc_client_changed

for model in (Application, AccessToken, Grant, IDToken, RefreshToken):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


class OidcClientInline(HODPermissionsMixin, admin.StackedInline):
    model = OidcClient
    can_delete = False
    fields = ("backchannel_logout_uri",)

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.base_fields["backchannel_logout_uri"].validators.append(backchannel_uri_validate)
        return formset


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = [
            "name",
            "client_id",
            "client_type",
            "client_secret",
            "redirect_uris",
            "post_logout_redirect_uris",
            "skip_authorization",
        ]
        labels = {"skip_authorization": "First party (no consent page)"}
        help_texts = {
            "client_secret": "Copy it now: it is stored hashed and cannot be shown again. Public clients have none.",
            "redirect_uris": "One per line or separated by spaces; matched exactly.",
        }


@admin.register(Application)
class ApplicationAdmin(HODPermissionsMixin, admin.ModelAdmin):
    form = ApplicationForm
    inlines = [OidcClientInline]
    list_display = ("name", "client_id", "client_type", "skip_authorization", "created")
    search_fields = ("name", "client_id")

    def get_readonly_fields(self, request, obj=None):
        return ("client_id", "client_secret") if obj else ()

    def save_model(self, request, obj, form, change):
        obj.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
        obj.algorithm = Application.NO_ALGORITHM  # id_tokens are always RS256 with the service's key ring
        if not change:
            obj.user = request.user
            public = obj.client_type == Application.CLIENT_PUBLIC
            client_secret_set(obj, None if public else obj.client_secret)
        super().save_model(request, obj, form, change)
        oidc_client_changed(client_id=obj.client_id)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        oidc_client_changed(client_id=obj.client_id)

    def delete_queryset(self, request, queryset):
        client_ids = list(queryset.values_list("client_id", flat=True))
        super().delete_queryset(request, queryset)
        for client_id in client_ids:
            oidc_client_changed(client_id=client_id)


class ReadOnlyAdmin(HODPermissionsMixin, admin.ModelAdmin):
    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class IssuedRecordAdmin(ReadOnlyAdmin):
    """A read-only list of what a person was given for a client (consents, codes, tokens), with both named in one
    query; ``exclude`` names the secret columns, never shown."""

    list_select_related = ("user", "application")


EXPIRING_COLUMNS = ("user", "application", "expires", "scope")
TOKEN_SECRETS = ("token", "token_checksum")


@admin.register(OidcConsent)
class OidcConsentAdmin(IssuedRecordAdmin):
    list_display = ("user", "application", "scopes", "updated_at")


@admin.register(RefreshToken)
class RefreshTokenAdmin(IssuedRecordAdmin):
    list_display = ("user", "application", "created", "revoked", "token_family")
    exclude = TOKEN_SECRETS


@admin.register(AccessToken)
class AccessTokenAdmin(IssuedRecordAdmin):
    list_display = EXPIRING_COLUMNS
    exclude = TOKEN_SECRETS


@admin.register(Grant)
class GrantAdmin(IssuedRecordAdmin):
    """Codes not yet exchanged that the database keeps: those issued while Redis was down (the others are in Redis
    until exchanged, ``users.services.oidc.codes``)."""

    list_display = EXPIRING_COLUMNS
    exclude = ("code", "code_challenge")


@admin.register(OidcAuthorization)
class OidcAuthorizationAdmin(ReadOnlyAdmin):
    """Every code a client exchanged for tokens: whose sign-in session it came from and when."""

    list_display = ("person", "application", "session", "created_at", "exchanged_at")
    list_select_related = ("session__user", "application")
    list_filter = ("application",)
    exclude = ("code_checksum",)

    @admin.display(description="person", ordering="session__user__username")
    def person(self, obj: OidcAuthorization) -> str:
        return str(obj.session.user)


@admin.register(IDToken)
class IDTokenAdmin(IssuedRecordAdmin):
    list_display = EXPIRING_COLUMNS
