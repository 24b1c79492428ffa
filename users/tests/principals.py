"""Ways for a test to call the API as someone: a person's bearer client, a service token, without the login endpoint."""

import time
import uuid

from rest_framework.test import APIClient

from users import tokens
from users.models import CustomUser, ServiceAccount, UserType
from users.services.auth import session_start


def service_token(client_id: str, scopes: list[str]) -> str:
    """A service token of ``client_id`` with ``scopes``, signed with the service's key."""
    now = int(time.time())
    return tokens.encode(
        {
            "sub": client_id,
            "scope": scopes,
            "token_type": "service",
            "iat": now,
            "exp": now + 300,
            "iss": "http://127.0.0.1:8000",
            "jti": uuid.uuid4().hex,
        }
    )


def access_claims(user: CustomUser, session_id: str, **overrides: object) -> dict[str, object]:
    """An access token's claims for ``user``'s session, as the service mints them, changed by ``overrides``."""
    now = int(time.time())
    return {
        "sub": str(user.pk),
        "sid": session_id,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 300,
        "iss": "http://127.0.0.1:8000",
        "token_type": "access",
        "user_type": user.user_type,
        "role": user.role,
        "username": user.username,
        **overrides,
    }


def bearer_client(user: CustomUser) -> APIClient:
    """A client with an access token of a new session of ``user`` (the login endpoint is tested elsewhere)."""
    login = session_start(user=user, ip=None, user_agent="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {login.tokens.access_token}")
    return client


def matrix_caller(role: str, make_user) -> tuple[APIClient, CustomUser | None]:
    """A client calling as one of the permission matrices' callers: ``anonymous``, ``student``, ``staff``, ``hod``,
    ``service`` (a service account with ``users:read``) or ``service_*`` (one with another scope only)."""
    if role == "anonymous":
        return APIClient(), None
    if role.startswith("service"):
        ServiceAccount.objects.create(name="attendance", client_id="attendance", secret_hash="x", scopes=[])
        client = APIClient()
        scopes = ["users:read"] if role == "service" else ["attendance:write"]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {service_token('attendance', scopes)}")
        return client, None
    user = make_user(user_type={"student": UserType.STUDENT, "staff": UserType.STAFF, "hod": UserType.HOD}[role])
    return bearer_client(user), user
