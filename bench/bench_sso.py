"""Single sign-on next to the API it stands beside, same run, same server (gunicorn, 4 workers), same client.

- code exchange (POST oidc/token/, authorization_code with PKCE) throughput vs token/refresh/ throughput:
  target >= 0.5x. Both are single-use credentials, so each request carries its own (codes issued through the
  authorization endpoint beforehand, refresh tokens of sessions opened beforehand); 16 client threads.
- authorization request with a live sign-in session (GET oidc/authorize/ answered 302 with a code) p50 vs
  validate-token/ p50, sequential: target <= 2x.
"""

import base64
import hashlib
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urlparse

os.environ.setdefault("THROTTLE_REFRESH_RATE", "1000000/min")
os.environ.setdefault("THROTTLE_LOGIN_RATE", "1000000/min")
os.environ.setdefault("SSO_COOKIE_SECURE", "False")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.common import Gunicorn, django_setup, table, verdict

ROUNDS = int(os.environ.get("BENCH_SSO_ROUNDS", "400"))
THREADS = int(os.environ.get("BENCH_SSO_THREADS", "16"))
PASSWORD = "bench-sso-passphrase-1"  # noqa: S105 - a throw-away account in the benchmark database
REDIRECT_URI = "https://rp.bench.test/callback"
VERIFIER = "bench-sso-code-verifier-" + "x" * 40
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _throughput(work, items: list) -> tuple[float, int]:
    """Requests per second of ``work`` over ``items`` from THREADS threads, and how many failed."""
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        failures = sum(not ok for ok in pool.map(work, items))
    return len(items) / (time.perf_counter() - started), failures


def main() -> int:
    django_setup()
    import requests
    from django.http import HttpResponse

    from users.models import CustomUser
    from users.services.auth import session_start
    from users.services.oidc.clients import oidc_client_create
    from users.services.people.create import user_rows_create
    from users.web.signin import signin_cookie_set

    CustomUser.objects.filter(username="bench_sso").delete()
    user = user_rows_create(username="bench_sso", email="bench_sso@bench.test", password=PASSWORD)
    client = oidc_client_create(name="bench", redirect_uris=[REDIRECT_URI], first_party=True)
    browser_session = session_start(user=user, ip="127.0.0.1", user_agent="bench").session
    cookie = HttpResponse()
    signin_cookie_set(cookie, browser_session)
    cookies = {name: morsel.value for name, morsel in cookie.cookies.items()}
    refresh_tokens = [
        session_start(user=user, ip="127.0.0.1", user_agent="bench").tokens.refresh_token for _ in range(ROUNDS)
    ]
    access = session_start(user=user, ip="127.0.0.1", user_agent="bench").tokens.access_token
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid profile",
            "state": "bench",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        }
    )

    with Gunicorn(env={"BENCH_WORKERS": "4"}) as server, requests.Session() as http:
        authorize_url = f"{server.url}/oidc/authorize/?{query}"
        validate_url = f"{server.url}/api/v1/users/validate-token/"

        def authorize() -> str:
            response = http.get(authorize_url, cookies=cookies, allow_redirects=False, timeout=30)
            assert response.status_code == 302, (response.status_code, response.text[:300])
            return parse_qs(urlparse(response.headers["Location"]).query)["code"][0]

        # Latency, sequential: an authorization request with a live sign-in, and validate-token/.
        for _ in range(20):  # warm up both
            authorize()
            http.get(validate_url, headers={"Authorization": f"Bearer {access}"}, timeout=30)
        authorize_ms, validate_ms, codes = [], [], []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            codes.append(authorize())
            authorize_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            ok = http.get(validate_url, headers={"Authorization": f"Bearer {access}"}, timeout=30).status_code == 200
            validate_ms.append((time.perf_counter() - started) * 1000)
            assert ok

        def exchange(code: str) -> bool:
            data = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": VERIFIER,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
            }
            return requests.post(f"{server.url}/oidc/token/", data=data, timeout=30).status_code == 200

        def refresh(token: str) -> bool:
            body = {"refresh_token": token}
            return requests.post(f"{server.url}/api/v1/users/token/refresh/", json=body, timeout=30).status_code == 200

        exchange_rps, exchange_failed = _throughput(exchange, codes)
        refresh_rps, refresh_failed = _throughput(refresh, refresh_tokens)

    ratio_rps = exchange_rps / refresh_rps
    ratio_p50 = statistics.median(authorize_ms) / statistics.median(validate_ms)
    print(
        table(
            f"Code exchange vs refresh ({ROUNDS} single-use credentials each, {THREADS} client threads)",
            ["measure", "req/s", "failed", "target"],
            [
                ["POST oidc/token/ (authorization_code, PKCE)", f"{exchange_rps:.0f}", exchange_failed, ""],
                ["POST token/refresh/", f"{refresh_rps:.0f}", refresh_failed, ""],
                ["exchange / refresh", f"{ratio_rps:.2f}x", "", f">= 0.5x {verdict(ratio_rps >= 0.5)}"],
            ],
        )
    )
    print(
        table(
            f"Authorization with a live sign-in vs validate-token/ ({ROUNDS} sequential rounds)",
            ["measure", "p50 ms", "p99 ms", "target"],
            [
                [
                    "GET oidc/authorize/ (302 with a code)",
                    f"{statistics.median(authorize_ms):.2f}",
                    f"{_percentile(authorize_ms, 99):.2f}",
                    "",
                ],
                [
                    "GET validate-token/",
                    f"{statistics.median(validate_ms):.2f}",
                    f"{_percentile(validate_ms, 99):.2f}",
                    "",
                ],
                ["authorize p50 / validate p50", f"{ratio_p50:.2f}x", "", f"<= 2x {verdict(ratio_p50 <= 2)}"],
            ],
        )
    )
    passed = ratio_rps >= 0.5 and ratio_p50 <= 2
    return 0 if passed and exchange_failed == refresh_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
