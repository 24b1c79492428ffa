"""Inter-service hot paths under load: validate-token, user/{id}/, bulk_info, local verification, revocation.

gunicorn on 127.0.0.1 against PostgreSQL and Redis, wrk in a second process, 10-second runs, and in the
same run a trivial WSGI app under the same gunicorn flags as the machine's ceiling. Targets:
validate-token >= 30 % of the ceiling, user/{id}/ >= 15 %, bulk_info 500 ids p50 <= 3x its 10-id p50,
local verification <= 1.5x a bare PyJWT RS256 verify, revocation propagation < 2 s.
"""

import json
import os
import statistics
import sys
import time

os.environ.setdefault("JWT_ACCESS_MINUTES", "60")  # tokens must outlive the run
os.environ.setdefault("THROTTLE_PRINCIPAL_RATE", "100000000/min")  # one client sends everything here
os.environ.setdefault("LOG_LEVEL", "WARNING")  # a log line per request would measure the log pipe

from bench.common import GUNICORN_FLAGS, Gunicorn, django_setup, table, verdict, wrk

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
UNUSABLE = "!"  # an unusable password hash: these people never log in with a password


def _seed():
    from users.models import CustomUser, UserType
    from users.services.auth import session_start
    from users.services.service_accounts import service_account_create

    CustomUser.objects.filter(username__startswith="bench_").delete()
    people = [
        CustomUser(username=f"bench_{i}", email=f"bench_{i}@bench.test", user_type=UserType.STUDENT, password=UNUSABLE)
        for i in range(1000)
    ]
    people = CustomUser.objects.bulk_create(people)
    from users.models import Student

    Student.objects.bulk_create([Student(user=u) for u in people])
    from users.models import ServiceAccount

    ServiceAccount.objects.filter(client_id="bench-gateway").delete()
    account, secret = service_account_create(name="bench-gateway", scopes=["users:read"])
    access = session_start(user=people[0], ip="127.0.0.1", user_agent="bench").tokens.access_token
    return people, account, secret, access


def _service_token(base: str, client_id: str, secret: str) -> str:
    import requests

    body = {"client_id": client_id, "client_secret": secret}
    return requests.post(f"{base}/api/v1/users/service-token/", json=body, timeout=10).json()["access_token"]


def _local_verification(access: str, base: str) -> tuple[float, float]:
    """Microseconds per token: the clients/ verifier, and a bare PyJWT verify with a pre-loaded key."""
    import jwt
    from django.conf import settings

    from clients.tokens import TokenVerifier
    from users.tokens import key_ring

    verifier = TokenVerifier(jwks_url=f"{base}/api/v1/users/.well-known/jwks.json", issuer=settings.JWT_ISSUER)
    verifier.refresh_keys()
    public_key = key_ring().private_key.public_key()

    def bare():
        jwt.decode(access, public_key, algorithms=["RS256"], issuer=settings.JWT_ISSUER)

    def ours():
        verifier.verify(access)

    results = []
    for fn in (ours, bare):
        fn()
        best = float("inf")
        for _ in range(5):  # best of 5 rounds: the machine is shared and noisy
            started = time.perf_counter()
            for _ in range(2000):
                fn()
            best = min(best, (time.perf_counter() - started) / 2000 * 1e6)
        results.append(best)
    return results[0], results[1]


def _revocation_delays(base: str, people, client_id: str, secret: str, rounds: int = 20) -> list[float]:
    """Seconds from a logout's response to a sibling verifier (pub/sub + polling) refusing the token."""
    import requests
    from django.conf import settings

    from clients.exceptions import TokenRejected
    from clients.revocations import RevocationPoller, RevocationSubscriber
    from clients.tokens import TokenVerifier
    from users.services.auth import session_start

    verifier = TokenVerifier(jwks_url=f"{base}/api/v1/users/.well-known/jwks.json", issuer=settings.JWT_ISSUER)
    verifier.refresh_keys()
    subscriber = RevocationSubscriber(verifier, redis_url=settings.REDIS_URL, channel=settings.REVOCATION_CHANNEL)
    subscriber.start().ready.wait(10)
    poller = RevocationPoller(verifier, base_url=base, client_id=client_id, client_secret=secret).start()
    delays = []
    try:
        for person in people[1 : rounds + 1]:
            access = session_start(user=person, ip="127.0.0.1", user_agent="bench").tokens.access_token
            verifier.verify(access)
            requests.post(
                f"{base}/api/v1/users/logout/", json={}, headers={"Authorization": f"Bearer {access}"}, timeout=10
            )
            logged_out = time.perf_counter()
            while time.perf_counter() - logged_out < 10:
                try:
                    verifier.verify(access)
                except TokenRejected:
                    break
                time.sleep(0.001)
            delays.append(time.perf_counter() - logged_out)
    finally:
        subscriber.stop()
        poller.stop()
    return delays


def main() -> int:
    django_setup()
    people, account, secret, access = _seed()
    ids_10 = json.dumps({"user_ids": [p.pk for p in people[:10]]})
    ids_500 = json.dumps({"user_ids": [p.pk for p in people[:500]]})

    with Gunicorn("bench.trivial_wsgi:application") as ceiling_server:
        ceiling = wrk("trivial WSGI (ceiling)", f"{ceiling_server.url}/", seconds=SECONDS)

    with Gunicorn() as server:
        service_token = _service_token(server.url, account.client_id, secret)
        service = {"Authorization": f"Bearer {service_token}", "Content-Type": "application/json"}
        api = f"{server.url}/api/v1/users"
        bearer = {"Authorization": f"Bearer {access}"}
        post = {"seconds": SECONDS, "headers": service, "method": "POST"}
        results = [
            ceiling,
            wrk("validate-token/", f"{api}/validate-token/", seconds=SECONDS, headers=bearer),
            wrk("user/{id}/", f"{api}/user/{people[5].pk}/", seconds=SECONDS, headers=service),
            wrk("bulk_info/ 10 ids", f"{api}/bulk_info/", body=ids_10, **post),
            wrk("bulk_info/ 500 ids", f"{api}/bulk_info/", body=ids_500, **post),
        ]
        ours_us, bare_us = _local_verification(access, server.url)
        delays = _revocation_delays(server.url, people, account.client_id, secret)

    by_name = {r.name: r for r in results}
    rows = [
        [r.name, f"{r.rps:,.0f}", f"{r.rps / ceiling.rps:.0%}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", r.errors]
        for r in results
    ]
    title = f"HTTP under load ({SECONDS} s each, wrk -t2 -c16, gunicorn {' '.join(GUNICORN_FLAGS)})"
    print(table(title, ["endpoint", "req/s", "of ceiling", "p50 ms", "p99 ms", "errors"], rows))
    validate_share = by_name["validate-token/"].rps / ceiling.rps
    user_share = by_name["user/{id}/"].rps / ceiling.rps
    bulk_ratio = by_name["bulk_info/ 500 ids"].p50_ms / by_name["bulk_info/ 10 ids"].p50_ms
    verify_ratio = ours_us / bare_us
    p50_delay, max_delay = statistics.median(delays), max(delays)
    targets = [
        ["validate-token/ share of ceiling", f"{validate_share:.0%}", ">= 30%", verdict(validate_share >= 0.30)],
        ["user/{id}/ share of ceiling", f"{user_share:.0%}", ">= 15%", verdict(user_share >= 0.15)],
        ["bulk_info p50 500 ids / 10 ids", f"{bulk_ratio:.2f}x", "<= 3x", verdict(bulk_ratio <= 3)],
        ["local verify (clients.tokens)", f"{ours_us:.0f} us/token", "", ""],
        ["bare PyJWT RS256 verify", f"{bare_us:.0f} us/token", "", ""],
        ["local verify / bare PyJWT", f"{verify_ratio:.2f}x", "<= 1.5x", verdict(verify_ratio <= 1.5)],
        ["revocation propagation p50", f"{p50_delay * 1000:.1f} ms", "", ""],
        ["revocation propagation max", f"{max_delay * 1000:.1f} ms", "< 2 s", verdict(max_delay < 2)],
    ]
    print(table("Targets", ["measure", "value", "target", "verdict"], targets))
    errors = sum(r.errors for r in results)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
