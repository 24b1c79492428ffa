"""The OpenID Connect provider end to end: a real relying party (Authlib) against a live server over HTTP."""

import re
import time

import pytest
import requests
from django.conf import settings as django_settings

from conftest import TEST_PASSWORD
from users.models import OidcAuthorization, SessionEndReason, UserSession, UserType
from users.tests.mfa_support import STEP, code_at, enrol_totp, step_settled
from users.tests.oidc_support import (
    REDIRECT_URI,
    Browser,
    RelyingParty,
    callback_params,
    hidden_fields,
    oidc_client_register,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
API = "/api/v1/users"


def _client(*args: str) -> dict:
    return oidc_client_register(*args)


def _auth(rp: RelyingParty) -> tuple[str, str]:
    return (rp.client_id, rp.client_secret or "")


def _sign_in_and_authorize(browser: Browser, rp: RelyingParty, username: str, **extra: str) -> requests.Response:
    return browser.authorize(rp, username, **extra)


def _validate(issuer: str, token: str) -> requests.Response:
    """The API's validate-token/ for ``token``: 200 while its session is live, 401 once it ended."""
    return requests.get(f"{issuer}{API}/validate-token/", headers=_bearer(token), timeout=10)


def _refresh_raw(rp: RelyingParty, refresh_token: str) -> requests.Response:
    """The relying party's refresh at the token endpoint, its answer as it comes (``rp.refresh`` wants a 200)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return requests.post(rp.discovery["token_endpoint"], data=data, auth=_auth(rp), timeout=10)


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_discovery_lists_the_provider(discovery, issuer):
    assert discovery["issuer"] == issuer
    for name in ("authorization", "token", "userinfo", "end_session", "revocation"):
        assert discovery[f"{name}_endpoint"].startswith(issuer)
    assert discovery["response_types_supported"] == ["code"]
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["authorization_response_iss_parameter_supported"] is True
    assert discovery["backchannel_logout_supported"] is True
    assert {"openid", "profile", "email", "school"} <= set(discovery["scopes_supported"])
    assert {"sub", "sid", "email", "preferred_username", "role", "department"} <= set(discovery["claims_supported"])
    assert discovery["service_token_endpoint"].endswith("/api/v1/users/service-token/")
    assert discovery["introspection_endpoint"].endswith("/api/v1/users/token/introspect/")


def test_code_flow_with_pkce_signs_a_person_in(browser, rp, staff, issuer):
    callback = _sign_in_and_authorize(browser, rp, staff.username)

    params = callback_params(callback)
    assert params["state"] == rp.state
    assert params["iss"] == issuer
    token = rp.exchange(callback)
    claims = rp.id_token_claims(token)
    assert claims["sub"] == str(staff.pk)
    assert claims["aud"] == rp.client_id
    assert claims["nonce"] == rp.nonce
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == "aal1"
    assert claims["preferred_username"] == staff.username
    session = UserSession.objects.get(pk=claims["sid"])
    assert session.user_id == staff.pk
    assert claims["auth_time"] == int(session.auth_time.timestamp())
    jwks = requests.get(rp.discovery["jwks_uri"], timeout=10).json()
    assert claims["_header"]["alg"] == "RS256"
    assert claims["_header"]["kid"] == jwks["keys"][0]["kid"]

    # the access token is the service's own access JWT of that login session
    validated = _validate(issuer, token["access_token"])
    assert validated.status_code == 200
    assert validated.json()["session_id"] == claims["sid"]
    userinfo = requests.get(rp.discovery["userinfo_endpoint"], headers=_bearer(token["access_token"]), timeout=10)
    assert userinfo.status_code == 200
    assert userinfo.json() == {
        "sub": str(staff.pk),
        "name": f"{staff.first_name} {staff.last_name}",
        "given_name": staff.first_name,
        "family_name": staff.last_name,
        "preferred_username": staff.username,
        "email": staff.email,
        "email_verified": staff.email_verified,
        "role": "staff",
        "user_type": UserType.STAFF,
        "department": None,
        "employee_id": None,
    }


def test_the_sign_in_session_is_reused_and_listed(browser, rp, student, issuer):
    first = rp.exchange(_sign_in_and_authorize(browser, rp, student.username))

    again = browser.get(rp.authorization_url())  # no page: the sign-in cookie's session is still live
    second = rp.exchange(again)

    assert rp.id_token_claims(second)["sid"] == rp.id_token_claims(first)["sid"]
    sessions = requests.get(f"{issuer}{API}/sessions/", headers=_bearer(second["access_token"]), timeout=10).json()
    listed = sessions["results"] if isinstance(sessions, dict) else sessions
    assert len(listed) == 1
    cookie = next(c for c in browser.http.cookies if c.name == django_settings.SSO_COOKIE_NAME)
    assert cookie.has_nonstandard_attr("HttpOnly")


def test_userinfo_releases_only_the_granted_scopes(browser, issuer, discovery, student):
    created = _client("--first-party")
    rp = RelyingParty(issuer, created["client_id"], created["client_secret"], discovery, scope="openid email")

    token = rp.exchange(_sign_in_and_authorize(browser, rp, student.username))

    userinfo = requests.get(discovery["userinfo_endpoint"], headers=_bearer(token["access_token"]), timeout=10)
    assert userinfo.json() == {"sub": str(student.pk), "email": student.email, "email_verified": False}


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(browser, rp, student, issuer):
    token = rp.exchange(_sign_in_and_authorize(browser, rp, student.username))
    sid = rp.id_token_claims(token)["sid"]

    rotated = rp.refresh(token["refresh_token"])
    assert rotated["refresh_token"] != token["refresh_token"]
    assert _validate(issuer, rotated["access_token"]).ok

    reused = _refresh_raw(rp, token["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert UserSession.objects.get(pk=sid).end_reason == SessionEndReason.REFRESH_REUSE
    assert _validate(issuer, rotated["access_token"]).status_code == 401
    again = _refresh_raw(rp, rotated["refresh_token"])
    assert again.status_code == 400


def test_revoking_the_login_session_ends_the_apps_tokens(browser, rp, student, issuer, login):
    token = rp.exchange(_sign_in_and_authorize(browser, rp, student.username))
    sid = rp.id_token_claims(token)["sid"]
    api_token = login(student)["access_token"]

    revoked = requests.delete(f"{issuer}{API}/sessions/{sid}/", headers=_bearer(api_token), timeout=10)

    assert revoked.status_code == 204
    assert _validate(issuer, token["access_token"]).status_code == 401
    userinfo = requests.get(rp.discovery["userinfo_endpoint"], headers=_bearer(token["access_token"]), timeout=10)
    assert userinfo.status_code == 401
    refreshed = _refresh_raw(rp, token["refresh_token"])
    assert refreshed.status_code == 400
    # the browser's sign-in ended with it: the next authorization asks again
    assert 'name="password"' in browser.get(rp.authorization_url()).text


def test_a_reused_code_is_refused_and_revokes_what_it_issued(browser, rp, student, issuer):
    callback = _sign_in_and_authorize(browser, rp, student.username)
    token = rp.exchange(callback)

    code = callback_params(callback)["code"]
    replay = _exchange_raw(rp, code, code_verifier=rp.verifier)

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert _validate(issuer, token["access_token"]).status_code == 401
    sid = rp.id_token_claims(token)["sid"]
    assert UserSession.objects.get(pk=sid).end_reason == SessionEndReason.CODE_REUSE


def _exchange_raw(rp: RelyingParty, code: str, **fields: str) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, **fields}
    return requests.post(rp.discovery["token_endpoint"], data=data, auth=_auth(rp), timeout=10)


def test_the_pkce_verifier_must_match(browser, rp, student):
    code = callback_params(_sign_in_and_authorize(browser, rp, student.username))["code"]

    missing = _exchange_raw(rp, code)
    wrong = _exchange_raw(rp, code, code_verifier="x" * 50)

    assert missing.status_code == 400
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert _exchange_raw(rp, code, code_verifier=rp.verifier).status_code == 200


def test_an_expired_code_is_refused(browser, rp, student, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "AUTHORIZATION_CODE_EXPIRE_SECONDS": 1}
    code = callback_params(_sign_in_and_authorize(browser, rp, student.username))["code"]
    time.sleep(1.2)

    response = _exchange_raw(rp, code, code_verifier=rp.verifier)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_wrong_client_secret_is_refused(browser, rp, student):
    code = callback_params(_sign_in_and_authorize(browser, rp, student.username))["code"]

    response = requests.post(
        rp.discovery["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": rp.verifier,
        },
        auth=(rp.client_id, "not-the-secret"),
        timeout=10,
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_an_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(browser, rp):
    url = rp.authorization_url().replace("rp.test%2Fcallback", "evil.test%2Fcallback")

    response = browser.get(url)

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "cannot be completed" in response.text


def test_a_public_client_must_use_pkce(browser, issuer, discovery, student):
    created = _client("--public", "--first-party")
    assert created["client_secret"] is None
    rp = RelyingParty(issuer, created["client_id"], None, discovery)
    url = rp.authorization_url().split("&code_challenge=")[0]

    response = browser.get(url)

    params = callback_params(response)
    assert params["error"] == "invalid_request"
    assert params["iss"] == issuer


def test_a_public_client_completes_the_flow_without_a_secret(browser, issuer, discovery, student):
    created = _client("--public", "--first-party")
    rp = RelyingParty(issuer, created["client_id"], None, discovery)

    token = rp.exchange(_sign_in_and_authorize(browser, rp, student.username))

    assert rp.id_token_claims(token)["sub"] == str(student.pk)


def test_prompt_none_without_a_session_answers_login_required(browser, rp, issuer):
    response = browser.get(rp.authorization_url(prompt="none"))

    params = callback_params(response)
    assert params == {"error": "login_required", "state": rp.state, "iss": issuer}


def test_prompt_login_and_max_age_force_a_fresh_sign_in(browser, rp, student):
    rp.exchange(_sign_in_and_authorize(browser, rp, student.username))

    assert 'name="password"' in browser.get(rp.authorization_url(prompt="login")).text
    assert 'name="password"' in browser.get(rp.authorization_url(max_age="0")).text
    assert browser.get(rp.authorization_url(max_age="3600")).status_code == 302


def test_consent_is_asked_once_per_scope_set(browser, issuer, discovery, student):
    created = _client()
    rp = RelyingParty(issuer, created["client_id"], created["client_secret"], discovery, scope="openid email")

    page = _sign_in_and_authorize(browser, rp, student.username)
    assert page.status_code == 200
    assert "Allow Library" in page.text
    callback = browser.post_form(page, {"allow": "1"})
    assert "code" in callback_params(callback)

    assert "code" in callback_params(browser.get(rp.authorization_url()))  # not asked again
    wider = RelyingParty(issuer, created["client_id"], created["client_secret"], discovery, scope=rp.scope + " school")
    asked = browser.get(wider.authorization_url())
    assert "Allow Library" in asked.text
    denied = browser.post_form(asked, {"deny": "1"})
    assert callback_params(denied)["error"] == "access_denied"


def test_a_second_factor_is_asked_on_the_sign_in_page(browser, rp, hod, settings):
    settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
    enrolled = enrol_totp(hod)

    page = _sign_in_and_authorize(browser, rp, hod.username)
    assert page.status_code == 200
    assert 'name="code"' in page.text
    wrong = browser.post_form(page, {"code": "000000"})
    assert wrong.status_code == 401
    callback = browser.post_form(wrong, {"code": enrolled.code()})

    claims = rp.id_token_claims(rp.exchange(callback))
    assert "otp" in claims["amr"]
    assert claims["acr"] == "aal2"


def test_the_sign_in_form_needs_its_csrf_token(browser, rp, student):
    page = browser.get(rp.authorization_url())

    response = browser.post_form(page, {"username": student.username, "password": TEST_PASSWORD}, csrf=False)

    assert response.status_code == 403
    assert not UserSession.objects.filter(user=student).exists()


def test_the_sign_in_page_shares_the_apis_lockout(browser, rp, student, issuer, settings):
    for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD):
        requests.post(f"{issuer}{API}/login/", json={"username": student.username, "password": "wrong"}, timeout=10)

    page = browser.get(rp.authorization_url())
    response = browser.sign_in(page, student.username)

    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert not UserSession.objects.filter(user=student).exists()


def test_pages_refuse_framing_and_carry_a_strict_policy(browser, rp):
    page = browser.get(rp.authorization_url())

    assert page.headers["X-Frame-Options"] == "DENY"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self';" in policy  # the passkey button's static file only: no inline script
    assert "unsafe-inline" not in policy
    assert "<script>" not in page.text
    assert '<label for="id_username">' in page.text
    assert hidden_fields(page.text)["csrfmiddlewaretoken"]


def test_client_credentials_at_the_token_endpoint_are_service_tokens(issuer, discovery, service_client):
    from users.services.service_accounts import service_account_create

    account, secret = service_account_create(name="attendance", scopes=["users:read"])

    response = requests.post(
        discovery["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(account.client_id, secret),
        timeout=10,
    )

    assert response.status_code == 200
    assert response.json()["scope"] == "users:read"
    bad = requests.post(
        discovery["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(account.client_id, "x"),
        timeout=10,
    )
    assert bad.status_code == 401


def test_every_code_remembers_its_login_session(browser, rp, student):
    callback = _sign_in_and_authorize(browser, rp, student.username)
    token = rp.exchange(callback)

    authorization = OidcAuthorization.objects.get()
    assert str(authorization.session_id) == rp.id_token_claims(token)["sid"]
    assert authorization.exchanged_at is not None


def test_prompt_none_without_consent_answers_consent_required(browser, make_rp, student, issuer):
    rp = make_rp(scope="openid email")
    browser.authorize(rp, student.username)  # signed in; the consent page is left unanswered

    response = browser.get(rp.authorization_url(prompt="none"))

    assert callback_params(response) == {"error": "consent_required", "state": rp.state, "iss": issuer}


def test_a_role_that_needs_a_second_factor_sets_one_up_while_signing_in(browser, rp, hod, settings):
    settings.MFA_REQUIRED_ROLES = frozenset({"hod"})

    enrol = browser.authorize(rp, hod.username)
    assert enrol.status_code == 200
    secret = re.search(r"Key: <code>([A-Z2-7]+)</code>", enrol.text).group(1)
    assert "<svg" in enrol.text
    step_settled()
    finish = browser.post_form(enrol, {"code": code_at(secret, time.time() - STEP)})
    assert "Your recovery codes" in finish.text
    callback = browser.post_form(finish, {"code": code_at(secret, time.time())})

    claims = rp.id_token_claims(rp.exchange(callback))
    assert claims["sub"] == str(hod.pk)
    assert "mfa" in claims["amr"]


def test_the_sign_in_page_counts_toward_the_login_rate(browser, rp, student, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login": "2/min"},
    }
    page = browser.get(rp.authorization_url())
    for _ in range(2):
        assert browser.sign_in(page, student.username, password="wrong").status_code == 401

    throttled = browser.sign_in(page, student.username)

    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    assert not UserSession.objects.filter(user=student).exists()
