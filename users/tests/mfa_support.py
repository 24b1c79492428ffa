"""Helpers of the MFA tests: real TOTP codes (pyotp), enrolling a person, the mfa_token of a password login."""

import time
from dataclasses import dataclass

import pyotp
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from users.models import CustomUser, TOTPDevice
from users.services import mfa
from users.services.mfa import crypto

API = "/api/v1/users"
STEP = 30


def step_settled(margin: float = 2.0) -> None:
    """Wait for the next time step if this one ends within ``margin`` seconds.

    A test that types the previous step's code (or the next one's) then stays within the service's drift
    when the service checks it a moment later; without this, a step ending in between fails it now and then.
    """
    left = STEP - time.time() % STEP
    if left < margin:
        time.sleep(left + 0.05)


def code_at(secret: str, moment: float) -> str:
    """The code an authenticator app shows at ``moment`` (epoch seconds)."""
    return pyotp.TOTP(secret).at(moment)


def secret_of(user: CustomUser) -> str:
    """The TOTP secret of ``user``, as the app holds it (decrypted from the database)."""
    return crypto.secret_decrypt(TOTPDevice.objects.get(user=user).secret_encrypted)


@dataclass(frozen=True)
class Enrolled:
    secret: str
    recovery_codes: list[str]

    def code(self, *, steps: int = 0) -> str:
        """The code of the current time step (plus ``steps``)."""
        return code_at(self.secret, time.time() + steps * STEP)


def enrol_totp(user: CustomUser) -> Enrolled:
    """A confirmed authenticator app for ``user``, through the services.

    Confirmed with the previous step's code (within the drift), so the current step's code is still unused.
    """
    enrolment = mfa.totp_enrol_begin(user=user)
    step_settled()
    codes = mfa.totp_enrol_confirm(user=user, code=code_at(enrolment.secret, time.time() - STEP))
    return Enrolled(secret=enrolment.secret, recovery_codes=codes)


def password_step(user: CustomUser, client: APIClient | None = None, password: str = TEST_PASSWORD) -> dict:
    """The body of ``login/`` for ``user``'s right password (a 401 when a second step follows)."""
    response = (client or APIClient()).post(
        f"{API}/login/", {"username": user.username, "password": password}, format="json"
    )
    return response.json()


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client
