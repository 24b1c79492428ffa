"""Consent: the scopes a person allowed a client; first-party clients need none, others ask once per scope set."""

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken

from users.models import CustomUser, OidcConsent


def consent_needed(*, user: CustomUser, application: Application, scopes: Iterable[str]) -> bool:
    """Whether ``user`` must be asked before ``application`` gets ``scopes``."""
    if application.skip_authorization:
        return False
    granted = OidcConsent.objects.filter(user=user, application=application).values_list("scopes", flat=True).first()
    return granted is None or not set(scopes) <= set(granted)


@transaction.atomic
def consent_record(*, user: CustomUser, application: Application, scopes: Iterable[str]) -> OidcConsent:
    """Remember that ``user`` allowed ``scopes`` (added to what was allowed before)."""
    consent, created = OidcConsent.objects.select_for_update().get_or_create(
        user=user, application=application, defaults={"scopes": sorted(set(scopes))}
    )
    if not created:
        consent.scopes = sorted(set(consent.scopes) | set(scopes))
        consent.save(update_fields=["scopes", "updated_at"])
    return consent


@transaction.atomic
def consent_revoke(*, user: CustomUser, application_id: int) -> bool:
    """Withdraw the consent and the client's refresh tokens for ``user``; the next sign-in asks again."""
    deleted, _ = OidcConsent.objects.filter(user=user, application_id=application_id).delete()
    RefreshToken.objects.filter(user=user, application_id=application_id, revoked__isnull=True).update(
        revoked=timezone.now()
    )
    AccessToken.objects.filter(user=user, application_id=application_id).delete()
    return bool(deleted)
