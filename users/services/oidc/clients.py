"""Registering OpenID Connect clients (the management command and the admin both come here)."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import Application

from users import cache
from users.models import CustomUser, OidcClient
from users.services.credentials import secret_hash


@dataclass(frozen=True)
class ClientCreated:
    """A new client; ``client_secret`` is shown this once (only its hash is stored), None for a public client."""

    application: Application
    client_id: str
    client_secret: str | None


def client_secret_set(application: Application, secret: str | None) -> None:
    """Store ``secret`` as the service accounts' secrets are stored (``credentials.secret_hash``, SHA-256).

    A client secret is 256 random bits, so a fast hash is enough, as for service accounts; django-oauth-toolkit's
    default (the password hasher, Argon2id) would cost every code exchange a password check.
    ``OidcValidator._check_secret`` compares it.
    """
    application.client_secret = secret_hash(secret) if secret else ""
    application.hash_client_secret = False  # hashed here already


def oidc_client_changed(*, client_id: str) -> None:
    """After a client was changed or deleted: authorization requests stop using what they kept of it (at once in
    this process, within ``OIDC_CLIENT_CACHE_SECONDS`` in the others; ``users.cache.oidc_client_get``)."""
    cache.oidc_client_forget(client_id)


def backchannel_uri_validate(uri: str) -> None:
    if uri:
        URLValidator(schemes=list(settings.OIDC_REDIRECT_URI_SCHEMES))(uri)


@transaction.atomic
def oidc_client_create(
    *,
    name: str,
    redirect_uris: Sequence[str],
    public: bool = False,
    first_party: bool = False,
    backchannel_logout_uri: str = "",
    post_logout_redirect_uris: Sequence[str] = (),
    created_by: CustomUser | None = None,
) -> ClientCreated:
    """Register a client of the authorization code flow (PKCE; a public client must use it and has no secret).

    ``first_party`` clients skip the consent page. Redirect URIs are matched exactly.
    """
    if not redirect_uris:
        raise ValidationError({"redirect_uris": ["Give at least one redirect URI."]})
    secret = None if public else generate_client_secret()
    application = Application(
        name=name,
        user=created_by,
        client_type=Application.CLIENT_PUBLIC if public else Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(redirect_uris),
        post_logout_redirect_uris=" ".join(post_logout_redirect_uris),
        skip_authorization=first_party,
        algorithm=Application.NO_ALGORITHM,  # id_tokens are always RS256 with the service's key ring
    )
    client_secret_set(application, secret)
    application.full_clean()
    application.save()
    backchannel_uri_validate(backchannel_logout_uri)
    OidcClient.objects.create(application=application, backchannel_logout_uri=backchannel_logout_uri)
    return ClientCreated(application=application, client_id=application.client_id, client_secret=secret)
