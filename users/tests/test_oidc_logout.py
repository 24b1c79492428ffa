"""Logout through OpenID Connect: RP-initiated logout, and back-channel logout tokens received by a real server."""

import time

import jwt
import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Response

from conftest import TEST_PASSWORD
from users.models import OutboxMessage, SecurityEvent, SessionEndReason, UserSession
from users.services.oidc.backchannel import BACKCHANNEL_LOGOUT_EVENT
from users.tests.mfa_support import code_at, enrol_totp, secret_of
from users.tests.oidc_support import Browser, RelyingParty, bearer
from users.tokens import key_ring

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
API = "/api/v1/users"
POST_LOGOUT_URI = "http://rp.test/signed-out"


def _wait_for_logout_tokens(server: HTTPServer, count: int, timeout: float = 20.0) -> list[dict]:
    """The logout tokens the client's endpoint received, verified as the client must (signature, iss, aud)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(server.log) < count:
        time.sleep(0.1)
    assert len(server.log) >= count, f"{len(server.log)} logout token(s) received, expected {count}"
    received = []
    for request, _response in server.log:
        assert request.content_type.startswith("application/x-www-form-urlencoded")
        token = request.form["logout_token"]
        assert jwt.get_unverified_header(token)["typ"] == "logout+jwt"
        received.append((token, jwt.get_unverified_header(token)["kid"]))
    return [
        jwt.decode(token, key_ring().public_keys[kid], algorithms=["RS256"], options={"verify_aud": False})
        for token, kid in received
    ]


@pytest.fixture
def client_endpoint(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/backchannel-logout", method="POST").respond_with_data("", status=200)
    return httpserver


@pytest.fixture
def bcl_rp(make_rp, client_endpoint) -> RelyingParty:
    uri = client_endpoint.url_for("/backchannel-logout")
    return make_rp("--first-party", "--backchannel-logout-uri", uri, "--post-logout-redirect-uri", POST_LOGOUT_URI)


def _code(user) -> str:
    return code_at(secret_of(user), time.time())


def _signed_in(browser: Browser, rp: RelyingParty, user) -> dict:
    token = rp.exchange(browser.authorize(rp, user.username))
    return {**token, "claims": rp.id_token_claims(token)}


def _assert_logout_token(claims: dict, *, rp: RelyingParty, user, sid: str) -> None:
    assert claims["iss"] == rp.issuer
    assert claims["aud"] == rp.client_id
    assert claims["sub"] == str(user.pk)
    assert claims["sid"] == sid
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert "nonce" not in claims
    assert claims["exp"] > time.time()


@pytest.mark.usefixtures("celery_worker")
class TestBackChannelLogout:
    def test_rp_initiated_logout_signs_out_and_notifies_the_client(self, browser, bcl_rp, student, client_endpoint):
        token = _signed_in(browser, bcl_rp, student)
        sid = token["claims"]["sid"]

        confirm = browser.get(
            f"/oidc/logout/?id_token_hint={token['id_token']}&post_logout_redirect_uri={POST_LOGOUT_URI}&state=s1"
        )
        assert confirm.status_code == 200
        assert "Sign out?" in confirm.text
        done = browser.post_form(confirm, {})

        assert done.status_code == 302
        assert done.headers["Location"] == f"{POST_LOGOUT_URI}?state=s1"
        assert UserSession.objects.get(pk=sid).end_reason == SessionEndReason.LOGOUT
        [claims] = _wait_for_logout_tokens(client_endpoint, 1)
        _assert_logout_token(claims, rp=bcl_rp, user=student, sid=sid)
        validated = requests.get(
            f"{bcl_rp.issuer}{API}/validate-token/", headers=bearer(token["access_token"]), timeout=10
        )
        assert validated.status_code == 401
        assert 'name="password"' in browser.get(bcl_rp.authorization_url()).text

    def test_password_change_notifies_the_client(self, browser, bcl_rp, student, client_endpoint, login):
        sid = _signed_in(browser, bcl_rp, student)["claims"]["sid"]
        api = login(student)["access_token"]

        changed = requests.post(
            f"{bcl_rp.issuer}{API}/change-password/",
            json={
                "old_password": TEST_PASSWORD,
                "new_password": "An0ther-Passw0rd!",
                "confirm_password": "An0ther-Passw0rd!",
            },
            headers=bearer(api),
            timeout=10,
        )

        assert changed.status_code == 200, changed.text
        [claims] = _wait_for_logout_tokens(client_endpoint, 1)
        _assert_logout_token(claims, rp=bcl_rp, user=student, sid=sid)

    def test_session_revoke_notifies_the_client(self, browser, bcl_rp, student, client_endpoint, login):
        sid = _signed_in(browser, bcl_rp, student)["claims"]["sid"]
        api = login(student)["access_token"]

        revoked = requests.delete(f"{bcl_rp.issuer}{API}/sessions/{sid}/", headers=bearer(api), timeout=10)

        assert revoked.status_code == 204
        [claims] = _wait_for_logout_tokens(client_endpoint, 1)
        _assert_logout_token(claims, rp=bcl_rp, user=student, sid=sid)

    def test_deactivation_notifies_the_client(self, browser, bcl_rp, student, hod, client_endpoint, login):
        sid = _signed_in(browser, bcl_rp, student)["claims"]["sid"]
        api = login(hod)["access_token"]

        deleted = requests.delete(
            f"{bcl_rp.issuer}{API}/students/{student.student_profile.pk}/", headers=bearer(api), timeout=10
        )

        assert deleted.status_code == 204, deleted.text
        [claims] = _wait_for_logout_tokens(client_endpoint, 1)
        _assert_logout_token(claims, rp=bcl_rp, user=student, sid=sid)

    @pytest.mark.parametrize("again", ["same-person", "another-person"])
    def test_a_new_sign_in_in_the_same_browser_signs_the_earlier_session_out(
        self, browser, bcl_rp, student, staff, client_endpoint, again
    ):
        first = _signed_in(browser, bcl_rp, student)
        sid = first["claims"]["sid"]
        person = student if again == "same-person" else staff

        second = bcl_rp.exchange(browser.authorize(bcl_rp, person.username, prompt="login"))

        new_sid = bcl_rp.id_token_claims(second)["sid"]
        assert new_sid != sid
        assert UserSession.objects.get(pk=sid).end_reason == SessionEndReason.LOGOUT
        assert UserSession.objects.get(pk=new_sid).ended_at is None
        [claims] = _wait_for_logout_tokens(client_endpoint, 1)
        _assert_logout_token(claims, rp=bcl_rp, user=student, sid=sid)
        validate = f"{bcl_rp.issuer}{API}/validate-token/"
        assert requests.get(validate, headers=bearer(first["access_token"]), timeout=10).status_code == 401
        assert requests.get(validate, headers=bearer(second["access_token"]), timeout=10).status_code == 200
        assert SecurityEvent.objects.get(type="logout", user=student).data == {"session_ids": [sid]}

    def test_only_clients_that_got_tokens_in_that_session_hear_of_it(
        self, browser, bcl_rp, make_rp, student, staff, client_endpoint, login
    ):
        other_browser = Browser(bcl_rp.issuer)
        _signed_in(other_browser, bcl_rp, staff)  # another person's session at the same client
        other_browser.close()
        sid = _signed_in(browser, bcl_rp, student)["claims"]["sid"]
        api = login(student)["access_token"]

        requests.post(f"{bcl_rp.issuer}{API}/logout/", json={"all": True}, headers=bearer(api), timeout=10)

        [claims] = _wait_for_logout_tokens(client_endpoint, 1)
        assert claims["sid"] == sid
        time.sleep(0.5)
        assert len(client_endpoint.log) == 1


def test_a_client_that_is_down_gets_its_logout_token_later(
    browser, bcl_rp, student, client_endpoint, celery_worker, fast_retries
):
    client_endpoint.clear_all_handlers()
    answers = iter([503, 200])
    client_endpoint.expect_request("/backchannel-logout").respond_with_handler(
        lambda request: Response("", status=next(answers))
    )
    sid = _signed_in(browser, bcl_rp, student)["claims"]["sid"]

    confirm = browser.get("/oidc/logout/")
    browser.post_form(confirm, {})

    claims = _wait_for_logout_tokens(client_endpoint, 2)
    assert [c["sid"] for c in claims] == [sid, sid]
    message = OutboxMessage.objects.get(kind=OutboxMessage.Kind.LOGOUT)
    deadline = time.monotonic() + 10
    while message.status != OutboxMessage.Status.SENT and time.monotonic() < deadline:
        time.sleep(0.1)
        message.refresh_from_db()
    assert message.status == OutboxMessage.Status.SENT
    assert message.attempts == 2
    assert claims[0]["jti"] == claims[1]["jti"] == str(message.pk)


class TestEndSession:
    def test_an_unregistered_return_uri_is_not_followed(self, browser, bcl_rp, student):
        token = _signed_in(browser, bcl_rp, student)

        confirm = browser.get(
            f"/oidc/logout/?id_token_hint={token['id_token']}&post_logout_redirect_uri=https://evil.test/"
        )
        done = browser.post_form(confirm, {})

        assert done.status_code == 200
        assert "Location" not in done.headers
        assert "You are signed out" in done.text

    def test_a_return_uri_of_another_client_is_not_followed(self, browser, bcl_rp, make_rp, student):
        make_rp("--post-logout-redirect-uri", "http://other.test/bye")
        _signed_in(browser, bcl_rp, student)

        confirm = browser.get(
            f"/oidc/logout/?client_id={bcl_rp.client_id}&post_logout_redirect_uri=http://other.test/bye"
        )
        done = browser.post_form(confirm, {})

        assert done.status_code == 200
        assert "Location" not in done.headers

    def test_the_sign_out_form_needs_its_csrf_token(self, browser, bcl_rp, student):
        sid = _signed_in(browser, bcl_rp, student)["claims"]["sid"]

        confirm = browser.get("/oidc/logout/")
        refused = browser.post_form(confirm, {}, csrf=False)

        assert refused.status_code == 403
        assert UserSession.objects.get(pk=sid).ended_at is None

    def test_without_a_session_it_returns_to_a_registered_uri(self, browser, bcl_rp):
        done = browser.get(f"/oidc/logout/?client_id={bcl_rp.client_id}&post_logout_redirect_uri={POST_LOGOUT_URI}")

        assert done.status_code == 302
        assert done.headers["Location"] == POST_LOGOUT_URI


def test_sign_in_never_returns_to_another_site(browser, student, issuer):
    page = browser.get("/account/sign-in/?next=https://evil.test/")

    done = browser.post_form(page, {"username": student.username, "password": TEST_PASSWORD})

    assert done.status_code == 200
    assert done.url.endswith("/account/")
    assert "Your account" in done.text
    assert student.email in done.text


@pytest.mark.usefixtures("celery_worker")
def test_an_mfa_reset_notifies_the_client(browser, bcl_rp, student, hod, client_endpoint, login):
    enrol_totp(student)
    page = browser.get(bcl_rp.authorization_url())
    second = browser.sign_in(page, student.username)
    sid = bcl_rp.id_token_claims(bcl_rp.exchange(browser.post_form(second, {"code": _code(student)})))["sid"]
    api = login(hod)["access_token"]

    reset = requests.post(f"{bcl_rp.issuer}{API}/{student.pk}/mfa/reset/", headers=bearer(api), timeout=10)

    assert reset.status_code in (200, 204), reset.text
    [claims] = _wait_for_logout_tokens(client_endpoint, 1)
    _assert_logout_token(claims, rp=bcl_rp, user=student, sid=sid)
    assert UserSession.objects.get(pk=sid).end_reason == SessionEndReason.MFA_RESET
