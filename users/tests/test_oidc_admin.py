"""OpenID Connect clients in the admin: HODs register and edit them; consents and issued tokens are read-only."""

import pytest
from django.http import HttpResponse
from django.utils import timezone
from oauth2_provider.models import Application

from conftest import TEST_PASSWORD
from users import cache
from users.models import OidcAuthorization, OidcClient
from users.selectors import oidc_client_get
from users.services.auth import session_start
from users.services.credentials import secret_hash
from users.services.oidc.clients import oidc_client_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def hod_admin(client, hod):
    assert client.login(username=hod.username, password=TEST_PASSWORD)
    return client


ADD = "/admin/oauth2_provider/application/add/"


def _add(client, fields: dict, *, backchannel_logout_uri: str = "") -> tuple[dict, HttpResponse]:
    """Post the add page as an HOD fills it in: the client id and secret it generated (returned), a confidential
    client, ``fields``, and the inline back-channel logout URI if one is given."""
    page = client.get(ADD)
    assert page.status_code == 200
    form = page.context["adminform"].form
    initial = {"client_id": form["client_id"].value(), "client_secret": form["client_secret"].value()}
    inline = {"oidc_client-0-backchannel_logout_uri": backchannel_logout_uri} if backchannel_logout_uri else {}
    management = {"TOTAL_FORMS": len(inline), "INITIAL_FORMS": 0, "MIN_NUM_FORMS": 0, "MAX_NUM_FORMS": 1}
    data = {
        **initial,
        "client_type": "confidential",
        **fields,
        **{f"oidc_client-{name}": str(value) for name, value in management.items()},
        **inline,
    }
    return initial, client.post(ADD, data)


def test_an_hod_registers_a_client_whose_secret_is_stored_hashed(hod_admin, settings):
    initial, response = _add(
        hod_admin,
        {
            "name": "Nextcloud",
            "redirect_uris": "https://cloud.school.example/apps/user_oidc/code",
            "post_logout_redirect_uris": "",
            "skip_authorization": "on",
        },
        backchannel_logout_uri="https://cloud.school.example/apps/user_oidc/backchannel-logout",
    )

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    application = Application.objects.get(name="Nextcloud")
    assert application.client_secret == secret_hash(initial["client_secret"])
    assert application.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
    assert application.skip_authorization is True
    assert OidcClient.objects.get(application=application).backchannel_logout_uri.endswith("/backchannel-logout")


def test_a_plain_http_redirect_uri_is_refused(hod_admin):
    _, response = _add(hod_admin, {"name": "Insecure", "redirect_uris": "http://insecure.example/cb"})

    assert response.status_code == 200
    assert not Application.objects.filter(name="Insecure").exists()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/oauth2_provider/application/",
        "/admin/users/oidcconsent/",
        "/admin/oauth2_provider/refreshtoken/",
        "/admin/oauth2_provider/accesstoken/",
        "/admin/oauth2_provider/grant/",
        "/admin/oauth2_provider/idtoken/",
        "/admin/users/oidcauthorization/",
    ],
)
def test_hods_see_clients_consents_and_issued_tokens(hod_admin, path):
    oidc_client_create(name="Library", redirect_uris=["https://library.school.example/cb"])

    assert hod_admin.get(path).status_code == 200


def test_hods_see_which_person_s_sign_in_each_exchanged_code_came_from(hod_admin, student):
    created = oidc_client_create(name="Library", redirect_uris=["https://library.school.example/cb"])
    session = session_start(user=student, ip="127.0.0.1", user_agent="test").session
    OidcAuthorization.objects.create(
        code_checksum="0" * 64, application=created.application, session=session, exchanged_at=timezone.now()
    )

    page = hod_admin.get("/admin/users/oidcauthorization/").content.decode()

    assert student.username in page
    assert "Library" in page
    assert hod_admin.get("/admin/users/oidcauthorization/add/").status_code == 403


def test_issued_tokens_cannot_be_added_or_changed_in_the_admin(hod_admin):
    assert hod_admin.get("/admin/oauth2_provider/accesstoken/add/").status_code == 403


def test_staff_do_not_enter(client, staff):
    client.force_login(staff)

    assert client.get("/admin/oauth2_provider/application/").status_code == 302


def test_the_command_refuses_a_client_without_a_valid_redirect_uri():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="redirect"):
        call_command("create_oidc_client", "Bad", "--redirect-uri", "not a uri")


def test_a_client_changed_or_deleted_in_the_admin_is_read_again_by_authorization_requests(hod_admin):
    created = oidc_client_create(name="Library", redirect_uris=["https://library.school.example/cb"])
    kept = cache.oidc_client_get(created.client_id, load=oidc_client_get)  # as an authorization request keeps it
    url = f"/admin/oauth2_provider/application/{created.application.pk}/change/"
    form = {
        "name": "Library",
        "client_type": "confidential",
        "redirect_uris": "https://library.school.example/other",
        "post_logout_redirect_uris": "",
        "oidc_client-TOTAL_FORMS": "1",
        "oidc_client-INITIAL_FORMS": "1",
        "oidc_client-MIN_NUM_FORMS": "0",
        "oidc_client-MAX_NUM_FORMS": "1",
        "oidc_client-0-id": str(created.application.oidc_client.pk),
        "oidc_client-0-application": str(created.application.pk),
        "oidc_client-0-backchannel_logout_uri": "",
    }

    changed = hod_admin.post(url, form)
    after_change = cache.oidc_client_get(created.client_id, load=oidc_client_get)
    deleted = hod_admin.post(f"/admin/oauth2_provider/application/{created.application.pk}/delete/", {"post": "yes"})
    after_delete = cache.oidc_client_get(created.client_id, load=oidc_client_get)

    assert changed.status_code == 302, changed.context["adminform"].form.errors if changed.context else ""
    assert kept.redirect_uris == "https://library.school.example/cb"
    assert after_change.redirect_uris == "https://library.school.example/other"
    assert deleted.status_code == 302
    assert after_delete is None
