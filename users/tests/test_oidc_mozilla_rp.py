"""A Django site using mozilla-django-oidc signs a person in through the provider (both servers real, over HTTP)."""

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.core.management import call_command

from users.tests.oidc_support import Browser
from users.tests.servers import ROOT, clean_env, closed_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


class RelyingPartySite:
    """The site in its own gunicorn process, configured for one client of the provider at ``issuer``."""

    def __init__(self, *, issuer: str, tmp_path: Path) -> None:
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        out = io.StringIO()
        call_command(
            "create_oidc_client",
            "Moodle",
            "--first-party",
            "--redirect-uri",
            f"{self.url}/oidc/callback/",
            "--json",
            stdout=out,
        )
        client = json.loads(out.getvalue())
        env = clean_env(
            DJANGO_SETTINGS_MODULE="users.tests.rp_app.settings",
            RP_VAR_DIR=str(tmp_path),
            RP_ISSUER=issuer,
            RP_CLIENT_ID=client["client_id"],
            RP_CLIENT_SECRET=client["client_secret"],
        )
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [str(gunicorn), "users.tests.rp_app.wsgi:application", "-b", f"127.0.0.1:{self.port}", "-w", "1"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/whoami/", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the relying-party site did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def site(issuer, tmp_path) -> Iterator[RelyingPartySite]:
    site = RelyingPartySite(issuer=issuer, tmp_path=tmp_path)
    yield site
    site.stop()


def test_a_mozilla_django_oidc_site_signs_a_person_in(site, browser, student, issuer):
    # Given a school app built on mozilla-django-oidc, registered as a client
    start = browser.http.get(f"{site.url}/oidc/authenticate/", allow_redirects=False, timeout=10)
    assert start.status_code == 302
    assert start.headers["Location"].startswith(f"{issuer}/oidc/authorize/")
    assert "code_challenge_method=S256" in start.headers["Location"]

    # When the person signs in on the provider's page
    page = browser.get(start.headers["Location"])
    callback = browser.sign_in(page, student.username)
    assert callback.status_code == 302
    assert callback.headers["Location"].startswith(f"{site.url}/oidc/callback/?")
    landed = browser.http.get(callback.headers["Location"], allow_redirects=False, timeout=30)

    # Then the app verified the id_token (RS256, JWKS), read userinfo and signed them in
    assert landed.status_code == 302, landed.text[:500]
    assert landed.headers["Location"] == "/whoami/"
    who = browser.http.get(f"{site.url}/whoami/", timeout=10)
    assert who.json() == {"signed_in": True, "email": student.email}


def test_the_site_refuses_a_sign_in_it_did_not_start(site, browser, student):
    # A callback with a code of another browser's flow and no state of this one
    other = Browser(browser.base_url)
    start = other.http.get(f"{site.url}/oidc/authenticate/", allow_redirects=False, timeout=10)
    callback = other.sign_in(other.get(start.headers["Location"]), student.username)
    other.close()

    landed = browser.http.get(callback.headers["Location"], allow_redirects=False, timeout=30)

    assert landed.headers["Location"] == "/failed/"
    assert browser.http.get(f"{site.url}/whoami/", timeout=10).status_code == 401
