"""The remote checker: validate-token/'s answers (served on loopback) mapped to claims, TokenRejected or 503 errors.

The real endpoint is exercised through the Flask adapter against a live user service (test_flask.py).
"""

from __future__ import annotations

import pytest

from clients.exceptions import ServiceResponseInvalid, ServiceUnavailable, TokenRejected
from clients.remote import VALIDATE_TOKEN_PATH, RemoteTokenVerifier

USER = {
    "id": 42,
    "username": "alice",
    "email": "alice@school.test",
    "first_name": "Alice",
    "last_name": "A",
    "user_type": 3,
    "role": "student",
    "is_active": True,
    "email_verified": True,
    "date_joined": "2026-01-01T00:00:00Z",
}
SESSION = "7c0e3b5e-1111-4222-8333-944445555666"


@pytest.fixture
def remote(server, clock):
    checker = RemoteTokenVerifier.for_url(
        server.url_for("/"), max_retries=0, clock=clock, sleep=clock.sleep, connect_timeout=0.5, read_timeout=1.0
    )
    yield checker
    checker.close()


def test_a_valid_answer_becomes_claims_shaped_like_a_local_verification(server, remote):
    # Given the user service vouches for the token, which it receives as the bearer
    server.expect_request(VALIDATE_TOKEN_PATH, headers={"Authorization": "Bearer the.user.token"}).respond_with_json(
        {"valid": True, "user": USER, "session_id": SESSION, "expires_at": "2026-01-01T00:05:00Z"}
    )

    # When the token is checked, then the answer comes back as claims
    assert remote.verify("the.user.token") == {
        "sub": "42",
        "sid": SESSION,
        "username": "alice",
        "user_type": 3,
        "role": "student",
        "exp": 1767225900,
        "token_type": "access",
        "user": USER,
    }


def test_a_refusal_is_token_rejected_with_the_services_reason(server, remote):
    server.expect_request(VALIDATE_TOKEN_PATH).respond_with_json(
        {"valid": False, "detail": "Session has ended.", "code": "session_ended"}, status=401
    )

    with pytest.raises(TokenRejected) as caught:
        remote.verify("the.user.token")
    assert (caught.value.reason, caught.value.code) == ("Session has ended.", "session_ended")


@pytest.mark.parametrize(
    "body",
    [
        {"valid": True, "user": {**USER, "id": "42"}, "session_id": SESSION, "expires_at": "2026-01-01T00:05:00Z"},
        {"valid": True, "user": USER, "session_id": SESSION, "expires_at": "soon"},
        {"valid": False, "user": USER, "session_id": SESSION, "expires_at": "2026-01-01T00:05:00Z"},
        ["not", "an", "object"],
    ],
    ids=["id-as-text", "bad-date", "not-valid", "list"],
)
def test_an_unexpected_answer_is_service_response_invalid(server, remote, body):
    server.expect_request(VALIDATE_TOKEN_PATH).respond_with_json(body)

    with pytest.raises(ServiceResponseInvalid):
        remote.verify("the.user.token")


def test_the_service_failing_is_service_unavailable(server, remote):
    server.expect_request(VALIDATE_TOKEN_PATH).respond_with_data("down", status=503)

    with pytest.raises(ServiceUnavailable):
        remote.verify("the.user.token")


@pytest.mark.parametrize("token", ["", "a.b\r\nX-Injected: 1", "t\u00e9", "x" * 9000])
def test_a_malformed_token_is_refused_without_a_call(server, remote, token):
    with pytest.raises(TokenRejected) as caught:
        remote.verify(token)

    assert caught.value.code == "token_malformed"
    assert len(server.log) == 0
    assert remote.client.breaker.state.value == "closed"
