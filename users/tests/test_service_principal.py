"""Service tokens authenticate a service principal that reaches no personal endpoint."""

import time

import pytest
from rest_framework import status

from users import tokens
from users.models import ServiceAccount
from users.tests.principals import service_token

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return ServiceAccount.objects.create(name="attendance", client_id="attendance", secret_hash="x", scopes=[])


@pytest.mark.parametrize(("method", "path"), [("get", "profile/"), ("get", "sessions/"), ("post", "logout/")])
def test_service_token_reaches_no_personal_endpoint(api_client, account, method, path):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {service_token('attendance', ['users:read'])}")

    response = getattr(api_client, method)(f"{API}/{path}", {}, format="json")

    assert response.status_code == status.HTTP_403_FORBIDDEN


def test_inactive_or_unknown_service_account_is_refused(api_client, account):
    account.is_active = False
    account.save()
    for client_id in ("attendance", "nobody"):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {service_token(client_id, [])}")

        response = api_client.get(f"{API}/profile/")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED


@pytest.mark.parametrize("scope", ["users:read", ["a", 1], None])
def test_malformed_scope_claim_is_refused(api_client, account, scope):
    claims = {
        "sub": "attendance",
        "scope": scope,
        "token_type": "service",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        "iss": "http://127.0.0.1:8000",
        "jti": "j",
    }
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.encode(claims)}")

    assert api_client.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED


def test_service_token_is_not_a_person_for_validate_token(api_client, account):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {service_token('attendance', [])}")

    response = api_client.get(f"{API}/validate-token/")

    assert response.status_code == status.HTTP_401_UNAUTHORIZED
    assert response.json()["valid"] is False
