"""Refresh rotation is atomic: many concurrent uses of one refresh token, exactly one winner."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from conftest import TEST_PASSWORD
from users.models import SessionEndReason, UserSession
from users.tests.servers import GunicornServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_fifty_concurrent_refreshes_have_exactly_one_winner(make_user, tmp_path, settings):
    # Given a committed user (hashed as the server hashes), served by a real multi-process gunicorn
    settings.PASSWORD_HASHERS = ["users.hashers.Argon2idPasswordHasher"]
    user = make_user(username="racer")
    env = {**os.environ, "DB_NAME": connection.settings_dict["NAME"]}
    with GunicornServer(env, tmp_path, workers=3, threads=20, static=False) as server:
        base = f"{server.url}/api/v1/users"
        login = requests.post(f"{base}/login/", json={"username": "racer", "password": TEST_PASSWORD}, timeout=10)
        refresh_token = login.json()["refresh_token"]
        barrier = threading.Barrier(50)

        def refresh(_):
            barrier.wait()
            return requests.post(f"{base}/token/refresh/", json={"refresh_token": refresh_token}, timeout=30)

        # When 50 clients present the same refresh token at once
        with ThreadPoolExecutor(max_workers=50) as pool:
            responses = list(pool.map(refresh, range(50)))

    # Then exactly one gets a new pair; the rest are refused as reuse, which ends the session
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1, codes
    assert codes.count(401) == 49, codes
    assert all(r.json()["code"] in ("token_reused", "session_ended") for r in responses if r.status_code == 401)
    assert UserSession.objects.get(user=user).end_reason == SessionEndReason.REFRESH_REUSE
