"""Login latency next to its floor: sequential logins over HTTP vs one bare Argon2id verify, same run.

Target: login p50 at most 1.15x the bare verify (the hash is the floor; everything else is small).
"""

import os
import statistics
import sys
import time

os.environ.setdefault("THROTTLE_LOGIN_RATE", "100000/min")  # sequential logins from one address
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.common import Gunicorn, django_setup, table, verdict

ROUNDS = int(os.environ.get("BENCH_LOGIN_ROUNDS", "60"))
PASSWORD = "bench-login-passphrase-1"  # noqa: S105 - a throw-away account in the benchmark database


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> int:
    django_setup()
    import requests
    from django.contrib.auth.hashers import Argon2PasswordHasher

    from users.models import CustomUser
    from users.services.people.create import user_rows_create

    CustomUser.objects.filter(username="bench_login").delete()
    user = user_rows_create(username="bench_login", email="bench_login@bench.test", password=PASSWORD)
    encoded = CustomUser.objects.get(pk=user.pk).password
    assert encoded.startswith("argon2$"), encoded

    hasher = Argon2PasswordHasher()
    verify = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        hasher.verify(PASSWORD, encoded)
        verify.append((time.perf_counter() - started) * 1000)

    logins = []
    with Gunicorn(env={"BENCH_WORKERS": "1"}) as server, requests.Session() as http:
        url = f"{server.url}/api/v1/users/login/"
        http.post(url, json={"username": "bench_login", "password": PASSWORD}, timeout=30)  # warm up
        for _ in range(ROUNDS):
            started = time.perf_counter()
            response = http.post(url, json={"username": "bench_login", "password": PASSWORD}, timeout=30)
            logins.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text

    ratio = statistics.median(logins) / statistics.median(verify)
    rows = [
        ["bare Argon2id verify", f"{statistics.median(verify):.1f}", f"{_percentile(verify, 99):.1f}", ""],
        ["POST login/ (HTTP, sequential)", f"{statistics.median(logins):.1f}", f"{_percentile(logins, 99):.1f}", ""],
        ["login p50 / verify p50", f"{ratio:.2f}x", "", f"<= 1.15x {verdict(ratio <= 1.15)}"],
    ]
    params = f"Argon2id t={hasher.time_cost} m={hasher.memory_cost} KiB p={hasher.parallelism}"
    print(
        table(f"Login latency ({ROUNDS} sequential rounds, {params})", ["measure", "p50 ms", "p99 ms", "target"], rows)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
