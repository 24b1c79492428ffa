"""Tests of the service token minter: claims, caching and renewal near expiry."""

from __future__ import annotations

import time

import jwt

from clients.service_token import ServiceTokenMinter


def test_service_token_is_cached_and_reminted_within_30_seconds_of_expiry():
    # Given a minter on a controllable wall clock
    now = [time.time()]
    minter = ServiceTokenMinter(scopes=["echo:read"], clock=lambda: now[0])
    first = minter()

    # When 269 s pass the cached token is still used; at 271 s (29 s left) a new one is minted
    now[0] += 269
    assert minter() == first
    now[0] += 2
    second = minter()

    assert second != first
    first_claims = jwt.decode(first, options={"verify_signature": False})
    second_claims = jwt.decode(second, options={"verify_signature": False})
    assert second_claims["iat"] - first_claims["iat"] == 271
    assert second_claims["jti"] != first_claims["jti"]


def test_service_token_lifetime_is_service_token_minutes(settings):
    # Given a service-token lifetime of ten minutes
    settings.SERVICE_TOKEN_MINUTES = 10

    # When the minter signs a token
    token = ServiceTokenMinter(scopes=["echo:read"])()

    # Then it lives that long, like the tokens service-token/ issues
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600
