"""Inter-service hot paths under load, and the morning rush's token traffic, against the machine's ceiling.

gunicorn on 127.0.0.1 against PostgreSQL and Redis, wrk in a second process (``-t2 -c16``, 10-second runs), and
in the same run a trivial WSGI app under the same gunicorn flags as the machine's ceiling. Every endpoint is
measured once per round, ``BENCH_ROUNDS`` (3) interleaved rounds, each round with its own ceiling run; a
share of the ceiling is the median over the rounds of the share within the round. Targets:

- validate-token/: >= 30 % of the ceiling with one token, >= 25 % with 20,000 distinct tokens rotating
  (bench/lua/rotate.lua; 2,000 sessions of 1,000 people, ten tokens each);
- user/{id}/ over 1,000 rotating ids (a service token): >= 20 %;
- token/refresh/ over a pool of single-use refresh tokens (each a session of its own): >= 300 req/s;
- service-token/, 16 clients of one client id: >= 300 req/s and no error;
- bulk_info/ 500 ids p50 <= 3x its 10-id p50; local verification <= 1.5x a bare PyJWT RS256 verify;
  revocation propagation < 2 s; no errors anywhere.

Exit status 1 when any target fails.
"""

import json
import os
import statistics
import sys
import time

os.environ.setdefault("JWT_ACCESS_MINUTES", "60")  # tokens must outlive the run
os.environ.setdefault("SERVICE_TOKEN_MINUTES", "60")  # the gateway's service token too
# The warm-up caches every session's state and every person's JSON at the same moment; with the default lifetime
# they would all expire together in the middle of a run (a live system writes them at different moments).
os.environ.setdefault("SESSION_STATE_CACHE_SECONDS", "3600")
os.environ.setdefault("THROTTLE_PRINCIPAL_RATE", "100000000/min")  # one client sends everything here
os.environ.setdefault("THROTTLE_REFRESH_RATE", "100000000/min")  # every refresh comes from 127.0.0.1
os.environ.setdefault("THROTTLE_SERVICE_TOKEN_RATE", "100000000/min")
os.environ.setdefault("LOG_LEVEL", "WARNING")  # a log line per request would measure the log pipe

from bench.common import GUNICORN_FLAGS, Gunicorn, django_setup, table, verdict, wrk

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
REFRESH_POOL = int(os.environ.get("BENCH_REFRESH_POOL", "7000"))  # per round; more than 10 s of refreshes
DISTINCT_TOKENS = 20_000
UNUSABLE = "!"  # an unusable password hash: these people never log in with a password


def _seed():
    from users.models import CustomUser, ServiceAccount, Student, UserType
    from users.services.auth import session_start
    from users.services.service_accounts import service_account_create

    CustomUser.objects.filter(username__startswith="bench_").delete()
    people = [
        CustomUser(username=f"bench_{i}", email=f"bench_{i}@bench.test", user_type=UserType.STUDENT, password=UNUSABLE)
        for i in range(1000)
    ]
    people = CustomUser.objects.bulk_create(people)
    Student.objects.bulk_create([Student(user=u) for u in people])
    ServiceAccount.objects.filter(client_id="bench-gateway").delete()
    account, secret = service_account_create(name="bench-gateway", scopes=["users:read"])
    access = session_start(user=people[0], ip="127.0.0.1", user_agent="bench").tokens.access_token
    return people, account, secret, access


def _distinct_tokens(people) -> list[list[str]]:
    """DISTINCT_TOKENS access tokens: 2,000 sessions (two per person), ten tokens each, as refreshes leave them.

    Returned as ten lists (the first token of every session, then the second, ...): a gateway sees many
    sessions at a time, not one session's tokens in a row.
    """
    from users import tokens
    from users.services.auth import session_start

    by_generation: list[list[str]] = [[] for _ in range(10)]
    for n in range(DISTINCT_TOKENS // 10):
        login = session_start(user=people[n % len(people)], ip="127.0.0.1", user_agent="bench")
        by_generation[0].append(login.tokens.access_token)
        session = login.session
        for generation in range(1, 10):
            pair = tokens.token_pair_issue(
                user=login.user, session_id=str(session.id), amr=session.amr, auth_time=session.auth_time
            )
            by_generation[generation].append(pair.access_token)
    return by_generation


def _refresh_pool(people, size: int) -> list[str]:
    """``size`` refresh-request bodies, each the single-use refresh token of a session of its own."""
    from users.services.auth import session_start

    bodies = []
    for n in range(size):
        login = session_start(user=people[n % len(people)], ip="127.0.0.1", user_agent="bench")
        bodies.append(json.dumps({"refresh_token": login.tokens.refresh_token}))
    return bodies


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


def _warm(url: str, *, rotate: tuple[str, list[str]], headers: dict | None = None) -> None:
    """Request every line of ``rotate`` at least once: a first short run measures the rate, and a second, long
    enough at that rate for every line with room to spare, follows when the first did not cover them."""
    lines = len(rotate[1])
    first = wrk("warm-up", url, seconds=3, headers=headers, rotate=rotate)
    if first.rps * 3 < 1.5 * lines:
        wrk("warm-up", url, seconds=int(1.5 * lines / max(first.rps, 1.0)) + 2, headers=headers, rotate=rotate)


def _share_rows(rounds: list[dict], ceiling_name: str) -> dict[str, float]:
    """Per endpoint, the median over the rounds of its share of that round's ceiling."""
    return {
        name: statistics.median(r[name].rps / r[ceiling_name].rps for r in rounds)
        for name in rounds[0]
        if name != ceiling_name
    }


def _median_result(results):
    from bench.common import LoadResult

    return LoadResult(
        name=results[0].name,
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
    )


CEILING = "trivial WSGI (ceiling)"
VALIDATE_1 = "validate-token/, 1 token"
VALIDATE_20K = "validate-token/, 20,000 tokens"
USER_1K = "user/{id}/, 1,000 ids"
REFRESH = "token/refresh/, single-use tokens"
SERVICE = "service-token/, 16 clients"
BULK_10 = "bulk_info/ 10 ids"
BULK_500 = "bulk_info/ 500 ids"


def main() -> int:
    django_setup()
    started = time.perf_counter()
    people, account, secret, access = _seed()
    generations = _distinct_tokens(people)
    distinct = [token for generation in generations for token in generation]
    print(f"seeded 1,000 people and {len(distinct):,} tokens in {time.perf_counter() - started:.0f} s", flush=True)
    ids_10 = json.dumps({"user_ids": [p.pk for p in people[:10]]})
    ids_500 = json.dumps({"user_ids": [p.pk for p in people[:500]]})
    user_paths = [f"/api/v1/users/user/{p.pk}/" for p in people]
    grant = json.dumps({"client_id": account.client_id, "client_secret": secret})

    rounds: list[dict] = []
    with Gunicorn("bench.trivial_wsgi:application") as ceiling_server, Gunicorn() as server:
        service_token = _service_token(server.url, account.client_id, secret)
        service = {"Authorization": f"Bearer {service_token}", "Content-Type": "application/json"}
        api = f"{server.url}/api/v1/users"
        bearer = {"Authorization": f"Bearer {access}"}
        post = {"seconds": SECONDS, "headers": service, "method": "POST"}
        # A gateway's steady state: every session's state and every person's JSON cached once (each process
        # still verifies most of the 20,000 tokens itself: its memo holds JWT_VERIFIED_CACHE_SIZE of them).
        _warm(f"{api}/validate-token/", rotate=("bearer", generations[0]))
        _warm(f"{server.url}/", headers=service, rotate=("path", user_paths))
        for n in range(ROUNDS):
            pool = _refresh_pool(people, REFRESH_POOL)
            measured = [
                wrk(CEILING, f"{ceiling_server.url}/", seconds=SECONDS),
                wrk(VALIDATE_1, f"{api}/validate-token/", seconds=SECONDS, headers=bearer),
                wrk(VALIDATE_20K, f"{api}/validate-token/", seconds=SECONDS, rotate=("bearer", distinct)),
                wrk(USER_1K, f"{server.url}/", seconds=SECONDS, headers=service, rotate=("path", user_paths)),
                wrk(REFRESH, f"{api}/token/refresh/", seconds=SECONDS, rotate=("post-once", pool)),
                wrk(
                    SERVICE,
                    f"{api}/service-token/",
                    seconds=SECONDS,
                    method="POST",
                    body=grant,
                    headers={"Content-Type": "application/json"},
                ),  # fmt: skip
                wrk(BULK_10, f"{api}/bulk_info/", body=ids_10, **post),
                wrk(BULK_500, f"{api}/bulk_info/", body=ids_500, **post),
            ]
            rounds.append({r.name: r for r in measured})
            line = ", ".join(
                f"{r.name} {r.rps:,.0f}/s" + (f" ({r.errors} errors)" if r.errors else "") for r in measured
            )
            print(f"round {n + 1}: {line}", flush=True)
        ours_us, bare_us = _local_verification(access, server.url)
        delays = _revocation_delays(server.url, people, account.client_id, secret)

    shares = _share_rows(rounds, CEILING)
    summary = {name: _median_result([r[name] for r in rounds]) for name in rounds[0]}
    rows = []
    for name, result in summary.items():
        share = "100%" if name == CEILING else f"{shares[name]:.1%}"
        rows.append([name, f"{result.rps:,.0f}", share, f"{result.p50_ms:.2f}", f"{result.p99_ms:.2f}", result.errors])
    title = (
        f"HTTP under load ({SECONDS} s each, wrk -t2 -c16, gunicorn {' '.join(GUNICORN_FLAGS)}; "
        f"medians of {ROUNDS} interleaved rounds, shares = median of the per-round shares)"
    )
    print(table(title, ["endpoint", "req/s", "of ceiling", "p50 ms", "p99 ms", "errors"], rows))

    bulk_ratio = summary[BULK_500].p50_ms / summary[BULK_10].p50_ms
    verify_ratio = ours_us / bare_us
    p50_delay, max_delay = statistics.median(delays), max(delays)
    errors = sum(r.errors for r in summary.values())
    refresh, grants = summary[REFRESH].rps, summary[SERVICE].rps
    checks = [
        [f"{VALIDATE_1}: share of ceiling", f"{shares[VALIDATE_1]:.1%}", ">= 30%", shares[VALIDATE_1] >= 0.30],
        [f"{VALIDATE_20K}: share of ceiling", f"{shares[VALIDATE_20K]:.1%}", ">= 25%", shares[VALIDATE_20K] >= 0.25],
        [f"{USER_1K}: share of ceiling", f"{shares[USER_1K]:.1%}", ">= 20%", shares[USER_1K] >= 0.20],
        [REFRESH, f"{refresh:,.0f} req/s", ">= 300 req/s", refresh >= 300],
        [
            SERVICE,
            f"{grants:,.0f} req/s, {summary[SERVICE].errors} errors",
            ">= 300 req/s, 0 errors",
            grants >= 300 and summary[SERVICE].errors == 0,
        ],  # fmt: skip
        ["bulk_info p50 500 ids / 10 ids", f"{bulk_ratio:.2f}x", "<= 3x", bulk_ratio <= 3],
        ["local verify (clients.tokens)", f"{ours_us:.0f} us/token", "", None],
        ["bare PyJWT RS256 verify", f"{bare_us:.0f} us/token", "", None],
        ["local verify / bare PyJWT", f"{verify_ratio:.2f}x", "<= 1.5x", verify_ratio <= 1.5],
        ["revocation propagation p50", f"{p50_delay * 1000:.1f} ms", "", None],
        ["revocation propagation max", f"{max_delay * 1000:.1f} ms", "< 2 s", max_delay < 2],
        ["errors, every endpoint and round", str(errors), "0", errors == 0],
    ]
    rows = [[name, value, target, "" if ok is None else verdict(ok)] for name, value, target, ok in checks]
    print(table("Targets", ["measure", "value", "target", "verdict"], rows))
    return 0 if all(ok is not False for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
