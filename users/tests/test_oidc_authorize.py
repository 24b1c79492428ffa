"""The authorization endpoint with a live sign-in, in process: what a warm request costs, and what it still refuses."""

import base64
import hashlib
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import pytest
from django.test import Client
from django.urls import reverse
from oauth2_provider.models import Application, Grant

from users import cache
from users.models import CustomUser, OidcAuthorization, UserSession
from users.selectors import oidc_client_get
from users.services.auth import session_revoke
from users.services.oidc.clients import oidc_client_changed, oidc_client_create
from users.services.oidc.codes import code_pending_get
from users.services.oidc.validator import checksum
from users.tests.oidc_support import signed_in_browser

REDIRECT_URI = "https://rp.test/callback"
VERIFIER = "authorize-test-code-verifier-" + "v" * 30
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
# None: the client is kept by the process (users.cache.oidc_client_get), the session's state and the code by Redis
# (users.services.oidc.codes).
WARM_AUTHORIZE_QUERIES = 0


@dataclass
class SignedIn:
    browser: Client
    user: CustomUser
    session: UserSession
    client_id: str
    client_secret: str
    url: str


@pytest.fixture
def signed_in(student) -> SignedIn:
    """A browser with a sign-in cookie for a login session of ``student``, and an authorization URL."""
    client = oidc_client_create(name="Library", redirect_uris=[REDIRECT_URI], first_party=True)
    session, browser, url = signed_in_browser(
        student, client_id=client.client_id, redirect_uri=REDIRECT_URI, challenge=CHALLENGE
    )
    return SignedIn(
        browser=browser,
        user=student,
        session=session,
        client_id=client.client_id,
        client_secret=client.client_secret or "",
        url=url,
    )


def _code(response) -> str:
    assert response.status_code == 302, response.content[:300]
    location = urlparse(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    params = parse_qs(location.query)
    assert params["state"] == ["st4te"]
    assert params["iss"]
    return params["code"][0]


def _codes_kept() -> int:
    """How many codes Redis keeps now (any test's: compare before and after)."""
    from django.core.cache import cache as django_cache

    client: Any = getattr(django_cache, "client")  # noqa: B009 - django-redis's client, which the stubs do not know
    return len(client.get_client().keys(client.make_key("oidc-code:*")))


@pytest.mark.django_db(transaction=True)
def test_a_warm_authorization_asks_the_database_nothing_and_keeps_a_code_of_the_session_in_redis(
    signed_in, django_assert_num_queries, settings
):
    settings.OIDC_CLIENT_CACHE_SECONDS = 60  # however slow the machine, the client is still kept the second time
    _code(signed_in.browser.get(signed_in.url))  # warm: the session's state is cached

    with django_assert_num_queries(WARM_AUTHORIZE_QUERIES):
        code = _code(signed_in.browser.get(signed_in.url))

    pending = code_pending_get(code)
    assert pending is not None
    assert pending.grant.user_id == signed_in.user.pk
    assert pending.grant.redirect_uri == REDIRECT_URI
    assert pending.grant.code_challenge == CHALLENGE
    assert pending.grant.code_challenge_method == "S256"
    assert pending.grant.scope == "openid profile"
    assert pending.grant.application_id == Application.objects.get(client_id=signed_in.client_id).pk
    assert not pending.grant.is_expired()
    assert pending.authorization.session_id == signed_in.session.pk
    assert pending.authorization.code_checksum == checksum(code)
    assert not Grant.objects.filter(code=code).exists()  # nothing in the database until the exchange
    assert not OidcAuthorization.objects.filter(code_checksum=checksum(code)).exists()


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_code_is_written_to_the_database(signed_in, cache_on_redis_process):
    signed_in.browser.get(signed_in.url)  # the session's state cached in the test's own Redis
    cache_on_redis_process.kill()

    code = _code(signed_in.browser.get(signed_in.url))

    grant = Grant.objects.get(code=code)
    assert grant.user_id == signed_in.user.pk
    assert grant.code_challenge == CHALLENGE
    authorization = OidcAuthorization.objects.get(code_checksum=checksum(code))
    assert authorization.session_id == signed_in.session.pk
    assert authorization.exchanged_at is None
    assert code_pending_get(code) is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("resources", "kept"),
    [
        ([], []),
        (["https://api.rp.test/"], ["https://api.rp.test/"]),
        (["https://api.rp.test/", "https://files.rp.test/v1"], ["https://api.rp.test/", "https://files.rp.test/v1"]),
    ],
)
def test_a_code_keeps_every_resource_indicator_it_was_asked_for(signed_in, resources, kept):
    query = "".join(f"&resource={quote(resource, safe='')}" for resource in resources)

    code = _code(signed_in.browser.get(signed_in.url + query))

    pending = code_pending_get(code)
    assert pending is not None
    assert pending.grant.resource == kept


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("resource", ["api.rp.test", "/relative", "https://"])
def test_a_resource_indicator_that_is_no_absolute_uri_gets_an_error_back_at_the_client(signed_in, resource):
    before = _codes_kept()

    response = signed_in.browser.get(f"{signed_in.url}&resource={quote(resource, safe='')}")

    assert response.status_code == 302
    params = parse_qs(urlparse(response["Location"]).query)
    assert params["error"] == ["invalid_target"]
    assert params["state"] == ["st4te"]
    assert "code" not in params
    assert _codes_kept() == before


@pytest.mark.django_db(transaction=True)  # the code is committed as in production: no savepoints
def test_a_revoked_sign_in_gets_no_code(signed_in):
    _code(signed_in.browser.get(signed_in.url))
    issued = _codes_kept()

    session_revoke(user=signed_in.user, session_id=str(signed_in.session.pk))
    response = signed_in.browser.get(signed_in.url)
    silent = signed_in.browser.get(f"{signed_in.url}&prompt=none")

    assert response.status_code == 302
    assert urlparse(response["Location"]).path == reverse("web:sign-in")
    assert parse_qs(urlparse(silent["Location"]).query)["error"] == ["login_required"]
    assert _codes_kept() == issued


@pytest.mark.django_db(transaction=True)
def test_a_code_issued_for_a_session_row_deleted_behind_its_cached_state_is_refused_at_the_exchange(signed_in):
    _code(signed_in.browser.get(signed_in.url))  # the session's state is cached as alive
    UserSession.objects.filter(pk=signed_in.session.pk).delete()

    code = _code(signed_in.browser.get(signed_in.url))
    exchange = Client().post(
        "/oidc/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
            "client_id": signed_in.client_id,
            "client_secret": signed_in.client_secret,
        },
    )

    assert exchange.status_code == 400
    assert exchange.json()["error"] == "invalid_grant"
    assert not OidcAuthorization.objects.filter(code_checksum=checksum(code)).exists()


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
    issued = _codes_kept()

    response = signed_in.browser.get(f"{signed_in.url}&{parameter}=again")

    assert response.status_code == 400
    assert f"Duplicate {parameter} parameter." in response.content.decode()
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert _codes_kept() == issued


def _wsgi(method: str, url: str, cookies: dict[str, str], body: bytes = b"") -> tuple[int, dict[str, str], list, bytes]:
    """``url`` answered by the WSGI application gunicorn serves (its own middleware list for this endpoint)."""
    from user_service.wsgi import application

    path, _, query = url.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "HTTP_COOKIE": "; ".join(f"{name}={value}" for name, value in cookies.items()),
    }
    answer: dict = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), response_headers

    content = b"".join(application(environ, start_response))
    headers = dict(answer["headers"])
    set_cookies = [value.strip() for name, value in answer["headers"] if name == "Set-Cookie"]
    return answer["status"], headers, set_cookies, content


def _page_headers_present(headers: dict[str, str]) -> None:
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "no-store" in headers["Cache-Control"]
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db(transaction=True)  # a real handler: request_started closes the connection
def test_served_by_wsgi_a_code_comes_without_a_django_session_and_with_the_page_headers(signed_in):
    cookies = {name: morsel.value for name, morsel in signed_in.browser.cookies.items()}

    status, headers, set_cookies, _ = _wsgi("GET", signed_in.url, cookies)

    assert status == 302
    assert parse_qs(urlparse(headers["Location"]).query)["code"]
    assert set_cookies == []  # no session, no CSRF cookie: nothing here used them
    _page_headers_present(headers)


@pytest.mark.django_db(transaction=True)
def test_served_by_wsgi_the_consent_form_is_csrf_checked(signed_in):
    cookies = {name: morsel.value for name, morsel in signed_in.browser.cookies.items()}
    client = oidc_client_create(name="Elsewhere", redirect_uris=[REDIRECT_URI], first_party=False)
    url = signed_in.url.replace(f"client_id={signed_in.client_id}", f"client_id={client.client_id}")
    issued = _codes_kept()

    status, headers, set_cookies, page = _wsgi("GET", url, cookies)
    forged, forged_headers, _, _ = _wsgi("POST", url, cookies, b"allow=Allow")

    assert status == 200
    assert b'name="csrfmiddlewaretoken"' in page
    assert any(cookie.startswith("csrftoken=") for cookie in set_cookies)
    _page_headers_present(headers)
    assert forged == 403
    assert _codes_kept() == issued


@pytest.mark.django_db
def test_a_client_is_kept_a_few_seconds_and_forgotten_when_changed(settings):
    settings.OIDC_CLIENT_CACHE_SECONDS = 60
    loads: list[str] = []

    def load(client_id: str) -> object:
        loads.append(client_id)
        return None if client_id == "unknown" else object()

    first = cache.oidc_client_get("kept", load=load)
    again = cache.oidc_client_get("kept", load=load)
    oidc_client_changed(client_id="kept")
    reloaded = cache.oidc_client_get("kept", load=load)
    cache.oidc_client_get("unknown", load=load)
    cache.oidc_client_get("unknown", load=load)
    settings.OIDC_CLIENT_CACHE_SECONDS = 0
    cache.oidc_client_get("uncached", load=load)
    cache.oidc_client_get("uncached", load=load)

    assert again is first
    assert reloaded is not first
    assert loads == ["kept", "kept", "unknown", "unknown", "uncached", "uncached"]


@pytest.mark.django_db(transaction=True)
def test_a_changed_client_is_read_again_by_the_process_that_changed_it(signed_in):
    _code(signed_in.browser.get(signed_in.url))  # the client is kept
    Application.objects.filter(client_id=signed_in.client_id).update(redirect_uris="https://rp.test/other")
    oidc_client_changed(client_id=signed_in.client_id)

    response = signed_in.browser.get(signed_in.url)

    assert response.status_code == 400  # the redirect URI is no longer registered: a page, no redirect
    assert "Location" not in response


@pytest.mark.django_db(transaction=True)
def test_a_client_saved_outside_any_entry_point_is_read_again(signed_in):
    # A model save (a shell, a data fix) goes through no owner; the signal safety net forgets the kept client.
    _code(signed_in.browser.get(signed_in.url))  # the client is kept
    application = Application.objects.get(client_id=signed_in.client_id)
    application.redirect_uris = "https://rp.test/other"
    application.save()

    response = signed_in.browser.get(signed_in.url)

    assert response.status_code == 400
    assert "Location" not in response


@pytest.mark.django_db(transaction=True)
def test_a_plain_pkce_challenge_gets_an_error_back_at_the_client_and_no_code(signed_in):
    _code(signed_in.browser.get(signed_in.url))
    url = signed_in.url.replace("code_challenge_method=S256", "code_challenge_method=plain")
    issued = _codes_kept()

    response = signed_in.browser.get(url)

    assert response.status_code == 302
    params = parse_qs(urlparse(response["Location"]).query)
    assert params["error"] == ["invalid_request"]
    assert params["state"] == ["st4te"]
    assert params["iss"]
    assert _codes_kept() == issued


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("registered", "mode"),
    [
        ("https://rp.test/callback", "query"),
        ("https://rp.test/callback?tenant=7&iss=https%3A%2F%2Fevil.test", "query"),
        ("https://rp.test/callback", "fragment"),
    ],
)
def test_a_code_s_redirect_names_the_issuer_once_where_the_code_is(student, settings, registered, mode):
    client = oidc_client_create(name="Registered", redirect_uris=[registered], first_party=True)
    _session, browser, url = signed_in_browser(
        student, client_id=client.client_id, redirect_uri=registered, challenge=CHALLENGE
    )

    response = browser.get(f"{url}&response_mode={mode}")

    assert response.status_code == 302, response.content[:300]
    location = urlparse(response["Location"])
    params = parse_qs(location.query if mode == "query" else location.fragment)
    assert params["iss"] == [settings.JWT_ISSUER]
    assert params["state"] == ["st4te"]
    assert code_pending_get(params["code"][0]) is not None
    if "tenant" in registered:
        assert parse_qs(location.query)["tenant"] == ["7"]
    if mode == "fragment":
        assert "iss" not in parse_qs(location.query)
