"""Password logins: the hash parameters, one login next to its floor, and the morning rush (a login storm).

Three parts, in one run (``python -m bench.bench_login [params|latency|storm ...]`` for some of them):

- ``params``: OWASP's five recommended Argon2id parameter sets (Password Storage Cheat Sheet: p = 1 and
  m = 46/19/12/9/7 MiB with t = 1/2/3/4/5), and Django's own Argon2 default for comparison: wall and CPU
  time of one hash, and the hashes per second two cores could do. The service's choice (users/hashers.py)
  is marked; the README's Security section gives the reasoning.
- ``latency``: sequential logins over HTTP next to a bare verify with the configured hasher. Target: the rest of
  a login (login p50 minus verify p50) at most 18 ms, the share the earlier target (login p50 <= 1.15x the
  verify) allowed next to Django's 123 ms default hash; as a ratio it would now reward a slower hash.
- ``storm``: 2,000 student accounts with real passwords (each its own, hashed with the configured hasher),
  logging in through gunicorn (``-w 4``) from wrk at 8 and then 16 connections, each request the next account
  (bench/lua/rotate.lua). Targets: >= 30 logins/s (15 per core: Keycloak's published sizing) with p99 < 1 s
  and no error at both, and the peak memory a worker adds while it serves logins <= 64 MiB per concurrent
  login (each sync worker serves one request at a time, so that is the largest rise of one worker's peak
  resident memory, ``VmHWM`` reset before the storm, over its resident memory before it).

Exit status 1 when any target fails.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("THROTTLE_LOGIN_RATE", "100000000/min")  # every login comes from 127.0.0.1
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench.common import GUNICORN_FLAGS, Gunicorn, django_setup, table, verdict, wrk

ROUNDS = int(os.environ.get("BENCH_LOGIN_ROUNDS", "60"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
STORM_ACCOUNTS = 2_000
STORM_CONNECTIONS = (8, 16)
PASSWORD = "bench-login-passphrase-1"  # noqa: S105 - a throw-away account in the benchmark database
MIB = 1024 * 1024

# OWASP Password Storage Cheat Sheet, Argon2id: "m=47104 (46 MiB), t=1, p=1" ... "m=7168 (7 MiB), t=5, p=1".
OWASP_SETS = [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)]


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _storm_password(n: int) -> str:
    return f"storm-{n}-passphrase-{n * 7919 % 10007}"


# --- params ---------------------------------------------------------------------------------------


def params() -> bool:
    from argon2.low_level import Type, hash_secret
    from django.contrib.auth.hashers import Argon2PasswordHasher, get_hasher

    chosen = get_hasher()
    candidates = [(m, t, 1, "OWASP") for m, t in OWASP_SETS]
    django = Argon2PasswordHasher
    candidates.append((django.memory_cost, django.time_cost, django.parallelism, "Django's default"))
    rows = []
    for memory, passes, lanes, source in candidates:
        walls, cpus = [], []
        for n in range(12):
            wall, cpu = time.perf_counter(), time.process_time()
            hash_secret(
                f"password-{n}".encode(), b"sixteen-byte-slt", time_cost=passes, memory_cost=memory,
                parallelism=lanes, hash_len=32, type=Type.ID,
            )  # fmt: skip
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
        wall_ms, cpu_ms = statistics.median(walls[2:]), statistics.median(cpus[2:])
        is_chosen = (memory, passes, lanes) == (chosen.memory_cost, chosen.time_cost, chosen.parallelism)
        rows.append(
            [
                f"m={memory // 1024} MiB, t={passes}, p={lanes}",
                source + (" (chosen)" if is_chosen else ""),
                f"{wall_ms:.1f}",
                f"{cpu_ms:.1f}",
                f"{2000 / cpu_ms:.0f}",
                f"{memory // 1024}",
            ]
        )
    headers = ["parameters", "source", "wall ms", "CPU ms", "hashes/s on 2 cores", "MiB per hash"]
    print(table("Argon2id parameter sets (median of 10 hashes each, one thread)", headers, rows))
    return True


# --- latency --------------------------------------------------------------------------------------


def latency() -> bool:
    import requests
    from django.contrib.auth.hashers import get_hasher

    from users.models import CustomUser
    from users.services.people.create import user_rows_create

    CustomUser.objects.filter(username="bench_login").delete()
    user = user_rows_create(username="bench_login", email="bench_login@bench.test", password=PASSWORD)
    encoded = CustomUser.objects.get(pk=user.pk).password
    hasher = get_hasher()
    assert hasher.algorithm == encoded.split("$", 1)[0], encoded

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
    rest = statistics.median(logins) - statistics.median(verify)
    rows = [
        ["bare verify", f"{statistics.median(verify):.1f}", f"{_percentile(verify, 99):.1f}", ""],
        ["POST login/ (HTTP, sequential)", f"{statistics.median(logins):.1f}", f"{_percentile(logins, 99):.1f}", ""],
        ["login p50 / verify p50", f"{ratio:.2f}x", "", ""],
        ["login p50 - verify p50 (the rest of a login)", f"{rest:.1f}", "", f"<= 18 ms {verdict(rest <= 18)}"],
    ]
    described = f"m={hasher.memory_cost // 1024} MiB, t={hasher.time_cost}, p={hasher.parallelism}"
    title = f"Login latency ({ROUNDS} sequential rounds, Argon2id {described})"
    print(table(title, ["measure", "p50 ms", "p99 ms", "target"], rows))
    return rest <= 18


# --- storm ----------------------------------------------------------------------------------------


def _storm_accounts() -> list[str]:
    """The login bodies of STORM_ACCOUNTS students, created once with the configured hasher and kept."""
    from concurrent.futures import ProcessPoolExecutor

    from django.contrib.auth.hashers import get_hasher, identify_hasher

    from users.models import CustomUser, Student, UserType

    names = [f"storm_{n}" for n in range(STORM_ACCOUNTS)]
    existing = CustomUser.objects.filter(username__in=names)
    sample = existing.filter(username=names[0]).values_list("password", flat=True).first()
    current = (
        sample is not None and existing.count() == STORM_ACCOUNTS and not identify_hasher(sample).must_update(sample)
    )
    if not current:
        existing.delete()
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            hashes = list(pool.map(_make_password, range(STORM_ACCOUNTS), chunksize=50))
        people = CustomUser.objects.bulk_create(
            CustomUser(
                username=name,
                email=f"{name}@storm.bench.test",
                user_type=UserType.STUDENT,
                password=encoded,
                email_verified=True,
            )  # fmt: skip
            for name, encoded in zip(names, hashes, strict=True)
        )
        Student.objects.bulk_create(Student(user=person) for person in people)
        print(
            f"created {STORM_ACCOUNTS:,} accounts ({get_hasher().algorithm}) in {time.perf_counter() - started:.0f} s"
        )
    return [json.dumps({"username": name, "password": _storm_password(n)}) for n, name in enumerate(names)]


def _make_password(n: int) -> str:
    from django.contrib.auth.hashers import make_password

    return make_password(_storm_password(n))


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def _memory(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def storm() -> bool:
    bodies = _storm_accounts()
    rows, ok = [], True
    with Gunicorn() as server:
        url = f"{server.url}/api/v1/users/login/"
        # Every worker has served requests, but no login yet: the rise of its peak memory over what it holds now
        # is what logins add (an upper bound per login: it also counts the login path's first imports).
        wrk("warm-up", f"{server.url}/api/v1/users/health/live/", seconds=2, connections=8)
        workers = _workers(server.process.pid)
        before = {pid: _memory(pid, "VmRSS") for pid in workers}
        for pid in workers:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        for connections in STORM_CONNECTIONS:
            result = wrk(
                f"{connections} at once", url, seconds=SECONDS, connections=connections, rotate=("post", bodies)
            )
            passed = result.rps >= 30 and result.p99_ms < 1000 and result.errors == 0
            ok &= passed
            rows.append(
                [
                    f"{connections} concurrent clients",
                    f"{result.rps:.1f}",
                    f"{result.rps / (os.cpu_count() or 1):.1f}",
                    f"{result.p50_ms:.0f}",
                    f"{result.p99_ms:.0f}",
                    result.errors,
                    f">= 30/s, p99 < 1 s, 0 errors: {verdict(passed)}",
                ]
            )
        rise = max(_memory(pid, "VmHWM") - before[pid] for pid in workers)
    memory_ok = rise <= 64 * MIB
    memory = f"{rise / MIB:.1f} MiB"
    rows.append(["peak memory per concurrent login", memory, "", "", "", "", f"<= 64 MiB: {verdict(memory_ok)}"])
    title = (
        f"Login storm ({STORM_ACCOUNTS:,} accounts with real passwords, each request the next account; "
        f"{SECONDS} s each, wrk -t2, gunicorn {' '.join(GUNICORN_FLAGS)})"
    )
    print(table(title, ["load", "logins/s", "per core", "p50 ms", "p99 ms", "errors", "target"], rows))
    return ok and memory_ok


PARTS = {"params": params, "latency": latency, "storm": storm}


def main(names: list[str]) -> int:
    django_setup()
    results = [PARTS[name]() for name in (names or list(PARTS))]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
