"""End to end: a user logs out, and a verifier in another process refuses the token within seconds."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from conftest import TEST_PASSWORD
from users.services.service_accounts import service_account_create
from users.tests.servers import ROOT, GunicornServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def server(make_user, tmp_path, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]  # as the server hashes
    make_user(username="leaver")
    env = {**os.environ, "DB_NAME": connection.settings_dict["NAME"]}
    with GunicornServer(env, tmp_path, workers=2, threads=4, static=False) as running:
        yield running


@pytest.mark.parametrize(("subscribe", "poll_seconds"), [("1", "30"), ("0", "0.5")], ids=["pubsub", "polling"])
def test_logout_is_refused_by_a_sibling_within_two_seconds(server, subscribe, poll_seconds):
    # Given a logged-in user and a sibling process verifying their token locally
    api = f"{server.url}/api/v1/users"
    account, secret = service_account_create(name="attendance", scopes=["users:read"])
    tokens = requests.post(f"{api}/login/", json={"username": "leaver", "password": TEST_PASSWORD}, timeout=10).json()
    sibling = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("verifier_process.py"))],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "JWKS_URL": f"{api}/.well-known/jwks.json",
            "ISSUER": settings.JWT_ISSUER,
            "BASE_URL": server.url,
            "CLIENT_ID": account.client_id,
            "CLIENT_SECRET": secret,
            "REDIS_URL": settings.REDIS_URL,
            "CHANNEL": settings.REVOCATION_CHANNEL,
            "SUBSCRIBE": subscribe,
            "POLL_SECONDS": poll_seconds,
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sibling.stdin.write(tokens["access_token"] + "\n")
        sibling.stdin.flush()
        assert sibling.stdout.readline().strip() == "accepted"

        # When the user logs out
        logged_out_at = time.time()
        response = requests.post(
            f"{api}/logout/", json={}, headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
        )
        assert response.status_code == 204

        # Then the sibling refuses the token, as revoked, within 2 s
        verdict, refused_at, code = sibling.stdout.readline().split()
    finally:
        sibling.kill()
        sibling.wait()
    assert verdict == "refused"
    assert code == "token_revoked"
    assert float(refused_at) - logged_out_at < 2.0
