"""Helpers of the OpenID Connect tests: a browser (requests, cookies kept) and a relying party (Authlib)."""

import base64
import hashlib
import io
import json
import re
import secrets
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import requests
from authlib.integrations.requests_client import OAuth2Session
from django.core.management import call_command
from joserfc import jwt
from joserfc.jwk import KeySet

from conftest import TEST_PASSWORD

REDIRECT_URI = "http://rp.test/callback"
SCOPE = "openid profile email school"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
HIDDEN_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def oidc_client_register(*options: str, name: str = "Library") -> dict:
    """``create_oidc_client NAME --redirect-uri REDIRECT_URI --json *options``: its JSON answer."""
    out = io.StringIO()
    call_command("create_oidc_client", name, "--redirect-uri", REDIRECT_URI, "--json", *options, stdout=out)
    return json.loads(out.getvalue())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hidden_fields(html: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in HIDDEN_FIELD.findall(html)}


def form_action(html: str) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', html)
    assert match, html
    return unescape(match.group(1))


class Browser:
    """A browser: follows this service's redirects, stops at the client's, posts forms with their CSRF token."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.last: requests.Response | None = None

    def close(self) -> None:
        """End the keep-alive connection (and with it the live server thread holding a database connection)."""
        self.http.close()

    def get(self, url: str) -> requests.Response:
        return self._follow(self.http.get(urljoin(self.base_url, url), allow_redirects=False, timeout=10))

    def post_form(self, page: requests.Response, data: dict[str, str], *, csrf: bool = True) -> requests.Response:
        fields = hidden_fields(page.text)
        if csrf:
            fields["csrfmiddlewaretoken"] = fields.get("csrfmiddlewaretoken", "")
        else:
            fields.pop("csrfmiddlewaretoken", None)
        action = urljoin(page.url, form_action(page.text))
        response = self.http.post(action, data={**fields, **data}, allow_redirects=False, timeout=10)
        return self._follow(response)

    def post_to(
        self, page: requests.Response, action: str, data: dict[str, str], *, csrf: bool = True
    ) -> requests.Response:
        """Post one of the page's forms (by its action) with the page's CSRF token."""
        assert f'action="{action}"' in page.text, action
        fields = {"csrfmiddlewaretoken": hidden_fields(page.text)["csrfmiddlewaretoken"]} if csrf else {}
        response = self.http.post(urljoin(self.base_url, action), data={**fields, **data}, allow_redirects=False)
        return self._follow(response)

    def _follow(self, response: requests.Response) -> requests.Response:
        response.content  # noqa: B018 - read it all, so the connection goes back to the pool (and gets closed)
        while response.is_redirect and urljoin(response.url, response.headers["Location"]).startswith(self.base_url):
            response = self.http.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False)
            response.content  # noqa: B018
        self.last = response
        return response

    def sign_in(self, page: requests.Response, username: str, password: str = TEST_PASSWORD) -> requests.Response:
        assert 'name="password"' in page.text, page.text[:500]
        return self.post_form(page, {"username": username, "password": password})

    def authorize(self, rp: "RelyingParty", username: str, **extra: str) -> requests.Response:
        """Start at the app's authorization URL and sign in: the answer (the redirect to the app, or a page)."""
        return self.sign_in(self.get(rp.authorization_url(**extra)), username)


def callback_params(response: requests.Response) -> dict[str, str]:
    """The query of the redirect to the client's redirect URI."""
    assert response.status_code == 302, (response.status_code, response.text[:800])
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI), location
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


@dataclass
class RelyingParty:
    """An OpenID Connect client as a school app would run it: Authlib's OAuth2Session, PKCE S256, nonce."""

    issuer: str
    client_id: str
    client_secret: str | None
    discovery: dict
    scope: str = SCOPE
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = ""

    def session(self) -> OAuth2Session:
        return OAuth2Session(
            self.client_id,
            self.client_secret,
            scope=self.scope,
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if self.client_secret else "none",
        )

    def authorization_url(self, **extra: str) -> str:
        with self.session() as session:
            url, self.state = session.create_authorization_url(
                self.discovery["authorization_endpoint"], nonce=self.nonce, code_verifier=self.verifier, **extra
            )
        return url

    def exchange(self, callback: requests.Response | str, *, verifier: str | None = None) -> dict:
        """The token response for the code in ``callback`` (the redirect to the app, or the URL it led to)."""
        location = callback if isinstance(callback, str) else callback.headers["Location"]
        with self.session() as session:
            return dict(
                session.fetch_token(
                    self.discovery["token_endpoint"],
                    authorization_response=location,
                    code_verifier=self.verifier if verifier is None else verifier,
                    state=self.state,
                )
            )

    def refresh(self, refresh_token: str) -> dict:
        with self.session() as session:
            return dict(session.refresh_token(self.discovery["token_endpoint"], refresh_token=refresh_token))

    def id_token_claims(self, token: dict) -> dict:
        """The id_token verified as an RP must: signature by the JWKS's key, iss, aud, exp, iat, nonce, at_hash."""
        jwks = requests.get(self.discovery["jwks_uri"], timeout=10).json()
        verified = jwt.decode(token["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            nonce={"essential": True, "value": self.nonce},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
        ).validate(verified.claims)
        digest = hashlib.sha256(token["access_token"].encode()).digest()
        assert verified.claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        return {**verified.claims, "_header": verified.header}


def signed_in_browser(user, *, client_id: str, redirect_uri: str, challenge: str) -> tuple[Any, Any, str]:
    """In process: a login session of ``user``, a test client carrying its sign-in cookie, and an authorization URL
    for ``client_id`` (code flow, PKCE S256 with ``challenge``, state ``st4te``)."""
    from django.http import HttpResponse
    from django.test import Client

    from users.services.auth import session_start
    from users.web.signin import signin_cookie_set

    session = session_start(user=user, ip="127.0.0.1", user_agent="test").session
    cookie = HttpResponse()
    signin_cookie_set(cookie, session)
    browser = Client()
    for name, morsel in cookie.cookies.items():
        browser.cookies[name] = morsel.value
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile",
        "state": "st4te",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return session, browser, f"/oidc/authorize/?{urlencode(query)}"
