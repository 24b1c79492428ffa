"""Login latency with a second factor and with a passkey, next to a password login, sequential over HTTP, same run.

Targets: a TOTP login (POST login/ then POST login/mfa/) p50 at most 1.15x (password login p50 + one request's
overhead, the p50 of GET health/live/); a passwordless passkey login (POST login/webauthn/options/ then POST
login/webauthn/, the authenticator's own signing not counted: in a browser that is the person touching the key) p50
at most 0.5x the password login p50 (no Argon2 on that path).
"""

import os
import statistics
import sys
import time

os.environ.setdefault("THROTTLE_LOGIN_RATE", "100000/min")  # sequential logins from one address
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("MFA_REQUIRED_ROLES", "")
os.environ.setdefault("WEBAUTHN_RP_ID", "localhost")
os.environ.setdefault("WEBAUTHN_ORIGINS", "http://localhost:3000")

from bench.common import Gunicorn, django_setup, table, verdict

ROUNDS = int(os.environ.get("BENCH_MFA_ROUNDS", "40"))
PASSWORD = "bench-mfa-passphrase-1"  # noqa: S105 - throw-away accounts in the benchmark database
PREFIX = "bench_mfa_"


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _row(name: str, values: list[float], target: str = "") -> list[str]:
    return [name, f"{statistics.median(values):.1f}", f"{_percentile(values, 99):.1f}", target]


def main() -> int:
    django_setup()
    import pyotp
    import requests

    from users.models import CustomUser
    from users.services import mfa
    from users.services.people.create import user_rows_create
    from users.tests.webauthn_support import Browser, SoftAuthenticator

    CustomUser.objects.filter(username__startswith=PREFIX).delete()

    def person(name: str) -> CustomUser:
        return user_rows_create(username=PREFIX + name, email=f"{PREFIX}{name}@bench.test", password=PASSWORD)

    plain = person("password")
    # A TOTP code is accepted once per 30-second step: one person per round, each with their own app.
    secrets_by_user = {}
    for i in range(ROUNDS + 1):
        user = person(f"totp{i}")
        enrolment = mfa.totp_enrol_begin(user=user)
        mfa.totp_enrol_confirm(user=user, code=pyotp.TOTP(enrolment.secret).at(time.time() - 30))
        secrets_by_user[user.username] = enrolment.secret
    passkey_owner = person("passkey")
    browser = Browser(SoftAuthenticator())

    overhead, passwords, totps, passkeys = [], [], [], []
    with Gunicorn(env={"BENCH_WORKERS": "1"}) as server, requests.Session() as http:
        api = f"{server.url}/api/v1/users"

        def post(path: str, body: dict | None = None, token: str | None = None) -> requests.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return http.post(f"{api}/{path}", json=body or {}, headers=headers, timeout=30)

        # The passkey, registered through the API as a person would.
        access = post("login/", {"username": passkey_owner.username, "password": PASSWORD}).json()["access_token"]
        options = post("mfa/webauthn/register/options/", token=access).json()
        registered = post("mfa/webauthn/register/", {"credential": browser.create(options)}, token=access)
        assert registered.status_code == 201, registered.text

        # warm up every path once
        http.get(f"{api}/health/live/", timeout=30)
        post("login/", {"username": plain.username, "password": PASSWORD})
        warm = f"{PREFIX}totp{ROUNDS}"
        token = post("login/", {"username": warm, "password": PASSWORD}).json()["mfa_token"]
        post("login/mfa/", {"mfa_token": token, "code": pyotp.TOTP(secrets_by_user[warm]).now()})

        for i in range(ROUNDS):
            started = time.perf_counter()
            live = http.get(f"{api}/health/live/", timeout=30)
            overhead.append((time.perf_counter() - started) * 1000)
            assert live.status_code == 200, live.text

            started = time.perf_counter()
            response = post("login/", {"username": plain.username, "password": PASSWORD})
            passwords.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text

            username = f"{PREFIX}totp{i}"
            code = pyotp.TOTP(secrets_by_user[username]).now()
            started = time.perf_counter()
            first = post("login/", {"username": username, "password": PASSWORD})
            second = post("login/mfa/", {"mfa_token": first.json()["mfa_token"], "code": code})
            totps.append((time.perf_counter() - started) * 1000)
            assert second.status_code == 200, second.text

            started = time.perf_counter()
            options = post("login/webauthn/options/").json()
            asked = time.perf_counter()
            assertion = browser.get(options)  # the authenticator: not the service's time
            answered = time.perf_counter()
            response = post("login/webauthn/", {"credential": assertion})
            passkeys.append(((asked - started) + (time.perf_counter() - answered)) * 1000)
            assert response.status_code == 200, response.text

    password_p50 = statistics.median(passwords)
    totp_limit = 1.15 * (password_p50 + statistics.median(overhead))
    passkey_limit = 0.5 * password_p50
    totp_ok = statistics.median(totps) <= totp_limit
    passkey_ok = statistics.median(passkeys) <= passkey_limit
    rows = [
        _row("GET health/live/ (one request's overhead)", overhead),
        _row("POST login/ (password, Argon2id)", passwords),
        _row("TOTP login: login/ + login/mfa/", totps, f"<= {totp_limit:.1f} {verdict(totp_ok)}"),
        _row(
            "passkey login: login/webauthn/options/ + login/webauthn/",
            passkeys,
            f"<= {passkey_limit:.1f} {verdict(passkey_ok)}",
        ),
    ]
    title = f"Login with a second factor and with a passkey ({ROUNDS} sequential rounds, one gunicorn worker)"
    print(table(title, ["measure", "p50 ms", "p99 ms", "target (p50)"], rows))
    CustomUser.objects.filter(username__startswith=PREFIX).delete()
    return 0 if totp_ok and passkey_ok else 1


if __name__ == "__main__":
    sys.exit(main())
