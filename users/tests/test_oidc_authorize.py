"""The authorization endpoint with a live sign-in, in process: what a warm request costs, and what it still refuses."""

import base64
import hashlib
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from oauth2_provider.models import Application, Grant

from users.models import CustomUser, OidcAuthorization, UserSession
from users.selectors import oidc_client_get
from users.services.auth import session_revoke, session_start
from users.services.oidc.clients import oidc_client_create
from users.services.oidc.validator import checksum
from users.web.signin import signin_cookie_set

REDIRECT_URI = "https://rp.test/callback"
VERIFIER = "authorize-test-code-verifier-" + "v" * 30
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
# The client's row; then one statement, its own transaction: SET LOCAL synchronous_commit, the grant's INSERT with its
# authorization's (the login session).
WARM_AUTHORIZE_QUERIES = 2


@dataclass
class SignedIn:
    browser: Client
    user: CustomUser
    session: UserSession
    url: str


@pytest.fixture
def signed_in(student) -> SignedIn:
    """A browser with a sign-in cookie for a login session of ``student``, and an authorization URL."""
    client = oidc_client_create(name="Library", redirect_uris=[REDIRECT_URI], first_party=True)
    session = session_start(user=student, ip="127.0.0.1", user_agent="test").session
    cookie = HttpResponse()
    signin_cookie_set(cookie, session)
    browser = Client()
    for name, morsel in cookie.cookies.items():
        browser.cookies[name] = morsel.value
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": "st4te",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    return SignedIn(browser=browser, user=student, session=session, url=f"/oidc/authorize/?{urlencode(query)}")


def _code(response) -> str:
    assert response.status_code == 302, response.content[:300]
    location = urlparse(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    params = parse_qs(location.query)
    assert params["state"] == ["st4te"]
    assert params["iss"]
    return params["code"][0]


@pytest.mark.django_db(transaction=True)  # the code is committed as in production: no savepoints
def test_a_warm_authorization_costs_one_read_and_one_write_and_issues_a_code_of_the_session(
    signed_in, django_assert_max_num_queries
):
    _code(signed_in.browser.get(signed_in.url))  # warm: the session's state is cached

    with django_assert_max_num_queries(WARM_AUTHORIZE_QUERIES) as captured:
        code = _code(signed_in.browser.get(signed_in.url))

    statements = [query["sql"] for query in captured.captured_queries]
    assert statements[0].startswith('SELECT "oauth2_provider_application".')
    write = statements[1]
    assert write.startswith("SET LOCAL synchronous_commit TO OFF; WITH ")  # only the code's statement skips the flush
    assert f'INSERT INTO "{OidcAuthorization._meta.db_table}"' in write
    assert f'INSERT INTO "{Grant._meta.db_table}"' in write
    assert not connection.in_atomic_block  # the statement was its own transaction: committed when answered
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)  # and the setting ended with it

    grant = Grant.objects.get(code=code)
    assert grant.user_id == signed_in.user.pk
    assert grant.redirect_uri == REDIRECT_URI
    assert grant.code_challenge == CHALLENGE
    authorization = OidcAuthorization.objects.get(code_checksum=checksum(code))
    assert authorization.session_id == signed_in.session.pk
    assert authorization.application_id == grant.application_id
    assert authorization.exchanged_at is None


@pytest.mark.django_db(transaction=True)  # the code is committed as in production: no savepoints
def test_a_revoked_sign_in_gets_no_code(signed_in):
    _code(signed_in.browser.get(signed_in.url))
    issued = Grant.objects.count()

    session_revoke(user=signed_in.user, session_id=str(signed_in.session.pk))
    response = signed_in.browser.get(signed_in.url)
    silent = signed_in.browser.get(f"{signed_in.url}&prompt=none")

    assert response.status_code == 302
    assert urlparse(response["Location"]).path == reverse("web:sign-in")
    assert parse_qs(urlparse(silent["Location"]).query)["error"] == ["login_required"]
    assert Grant.objects.count() == issued


@pytest.mark.django_db(transaction=True)
def test_a_session_row_deleted_behind_its_cached_state_gets_a_sign_in_page_not_an_error(signed_in):
    _code(signed_in.browser.get(signed_in.url))  # the session's state is cached as alive
    issued = Grant.objects.count()
    UserSession.objects.filter(pk=signed_in.session.pk).delete()

    response = signed_in.browser.get(signed_in.url)

    assert response.status_code == 302
    assert urlparse(response["Location"]).path == reverse("web:sign-in")
    assert Grant.objects.count() == issued


@pytest.mark.django_db
def test_the_client_read_by_its_prepared_statement_is_the_orm_s_row():
    created = oidc_client_create(name="Library", redirect_uris=[REDIRECT_URI], first_party=True)

    client = oidc_client_get(created.client_id)

    expected = Application.objects.get(client_id=created.client_id)
    assert client is not None
    assert not client._state.adding
    fields = [field.attname for field in Application._meta.concrete_fields]
    assert [getattr(client, name) for name in fields] == [getattr(expected, name) for name in fields]
    assert oidc_client_get("no-such-client") is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parameter", ["client_id", "response_type", "redirect_uri", "scope", "state"])
def test_a_repeated_parameter_gets_an_error_page_and_no_code(signed_in, parameter):
    issued = Grant.objects.count()

    response = signed_in.browser.get(f"{signed_in.url}&{parameter}=again")

    assert response.status_code == 400
    assert f"Duplicate {parameter} parameter." in response.content.decode()
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert Grant.objects.count() == issued
