"""Benchmark: people lists, search and user lookup at 1,000 and 100,000 students; CSV import rows/s; search plan.

Run with the Makefile's TEST_ENV variables (DB_HOST, DB_USER, REDIS_URL, ... as for `make test`):

    DB_HOST=127.0.0.1 ... .venv/bin/python -m bench.bench_people

It (re)creates two databases of its own, ``user_service_bench_people_1k`` and ``..._100k``, seeds the same
first 1,000 students (+50 staff, 1 HOD) into both with ``seed_demo``'s bulk path and 99,000 more into the
second, serves each with gunicorn on 127.0.0.1 and loads them from a second process (wrk when installed, else
the small threaded HTTP client below, run as ``python -m bench.bench_people --loadgen ...``). Each endpoint is
measured on the two servers back to back, in three rounds; the verdict uses the median over the rounds of the
ratio within a round, so on a shared machine both sizes of a pair see the same background load. It also
prints the search queries' EXPLAIN ANALYZE at 100,000 and imports CSV rosters of 1,000 and 10,000 rows
through the API. The databases are left for inspection.
Targets (ratios measured in one run): p50 at 100k at most 1.5x p50 at 1k for each
endpoint; search served by an index; the 10,000-row import at most 10x the 1,000-row one and at least
2,000 rows/s. Exit status 0 only if every target is met.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_PEOPLE_DB_NAME", "user_service_bench_people")
SMALL_DB, LARGE_DB = f"{DB_NAME}_1k", f"{DB_NAME}_100k"
SMALL, LARGE = 1_000, 100_000
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
IMPORT_SIZES = (1_000, 10_000)
MAX_P50_RATIO = 1.5
MAX_IMPORT_RATIO = 10.0
MIN_IMPORT_ROWS_PER_SECOND = 2_000
HOD_PASSWORD = "bench-HOD-passphrase-2025"  # noqa: S105 - a throw-away benchmark account
SEED = 20_25


# --- Load generator (second process) -----------------------------------------------------------


def loadgen(url: str, seconds: float, connections: int, token: str) -> dict:
    """Keep ``connections`` keep-alive connections busy with GET ``url`` for ``seconds``; latency percentiles."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Authorization": f"Bearer {token}", "Host": parts.netloc}
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        conn = HTTPConnection(parts.hostname, parts.port, timeout=30)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[index] += 1
            except OSError:
                errors[index] += 1
                conn.close()
                conn = HTTPConnection(parts.hostname, parts.port, timeout=30)
                continue
            latencies[index].append(time.perf_counter() - started)
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    samples = sorted(value for values in latencies for value in values)
    if not samples:
        return {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "errors": sum(errors)}
    return {
        "rps": len(samples) / elapsed,
        "p50_ms": statistics.median(samples) * 1000,
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000,
        "errors": sum(errors),
    }


def load(name: str, url: str, token: str, seconds: float):
    """Measure one endpoint from a second process: wrk if installed, else this module's load generator."""
    from bench.common import LoadResult

    if shutil.which("wrk"):
        return LoadResult(name=name, **_wrk(url, token, seconds))
    command = [sys.executable, "-m", "bench.bench_people", "--loadgen", url, str(seconds), str(CONNECTIONS), token]
    result = json.loads(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    return LoadResult(name=name, **result)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk(url: str, token: str, seconds: float) -> dict:
    threads = min(2, CONNECTIONS)
    command = ["wrk", f"-t{threads}", f"-c{CONNECTIONS}", f"-d{max(1, int(seconds))}s", "--latency"]
    command += ["-H", f"Authorization: Bearer {token}", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def percentile(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE).groups()
        return float(value) * _UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "errors": (int(errors.group(1)) if errors else 0) + (sum(map(int, sockets.groups())) if sockets else 0),
    }


# --- The benchmark (this process: Django set up against the 100,000-student database) ----------------


def _pg(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(
        dbname=dbname,
        autocommit=True,
        host=os.environ.get("DB_HOST", "127.0.0.1"),
        port=os.environ.get("DB_PORT", "5432"),
        user=os.environ.get("DB_USER", "postgres"),
        password=os.environ.get("DB_PASSWORD", ""),
    )


def databases_recreate() -> None:
    with _pg() as conn:
        for name in (SMALL_DB, LARGE_DB):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{SMALL_DB}"')


def vacuum_analyze(dbname: str) -> None:
    with _pg(dbname) as conn:
        for table in ("users_customuser", "users_student", "users_staff"):
            conn.execute(f"VACUUM ANALYZE {table}")


def manage(dbname: str, *args: str) -> None:
    """A management command against ``dbname`` in a child process (this process's Django uses LARGE_DB)."""
    env = {**os.environ, "DB_NAME": dbname}
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def seed_both() -> None:
    """The same first 1,000 students (and 50 staff, 1 HOD) in both databases, then 99,000 more in the large one."""
    from django.core.management import call_command

    base = ["--hods", "1", "--staff", "50", "--students", str(SMALL), "--seed", str(SEED), "--password", HOD_PASSWORD]
    manage(SMALL_DB, "migrate", "-v0")
    manage(SMALL_DB, "seed_demo", *base)
    call_command("seed_demo", hods=1, staff=50, students=SMALL, seed=SEED, password=HOD_PASSWORD, stdout=io.StringIO())
    started = time.perf_counter()
    call_command("seed_demo", students=LARGE - SMALL, seed=SEED + 1, stdout=io.StringIO())
    elapsed = time.perf_counter() - started
    print(f"seeded {LARGE - SMALL} more students in {elapsed:.1f} s ({(LARGE - SMALL) / elapsed:.0f} rows/s)")
    for dbname in (SMALL_DB, LARGE_DB):
        vacuum_analyze(dbname)


def hod_token(base: str) -> str:
    import requests

    from users.models import CustomUser, UserType

    hod = CustomUser.objects.filter(user_type=UserType.HOD).order_by("pk").first()  # the same in both databases
    response = requests.post(
        f"{base}/api/v1/users/login/", json={"username": hod.username, "password": HOD_PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return response.json()["access_token"]


def targets() -> dict[str, str]:
    """The three measured URLs, the same in both databases: a page of 50, part of a name, one user by id."""
    from users.models import Student

    middle = Student.objects.select_related("user").order_by("pk")[SMALL // 2]  # one of the shared first 1,000
    term = middle.user.last_name.lower()[:5]
    return {
        "students/?page_size=50": "students/?page_size=50",
        "students/?search=<part of a name>": f"students/?search={term}",
        "user/{id}/": f"user/{middle.user_id}/",
    }


def measure(servers: dict, paths: dict[str, str]) -> dict:
    """Each endpoint on both servers in alternation, ROUNDS times; per (endpoint, size) the median round.

    Alternating makes the two sizes share whatever else the (shared, noisy) machine is doing at the time.
    """
    import requests

    from bench.common import LoadResult

    tokens = {label: hod_token(server.url) for label, server in servers.items()}
    rounds: dict = {}
    for name, path in paths.items():
        for label, server in servers.items():
            load(name, f"{server.url}/api/v1/users/{path}", tokens[label], 2)  # warm-up: connections, plans
        for _ in range(ROUNDS):
            for label, server in servers.items():
                result = load(name, f"{server.url}/api/v1/users/{path}", tokens[label], SECONDS)
                rounds.setdefault((name, label), []).append(result)
                if result.errors:
                    headers = {"Authorization": f"Bearer {tokens[label]}"}
                    sample = requests.get(f"{server.url}/api/v1/users/{path}", headers=headers, timeout=30)
                    print(f"  errors: one more request now answers {sample.status_code} {sample.text[:300]}")
                print(
                    f"  {label:>5} {name:<34} {result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}  ({path})",
                    flush=True,
                )
    summary = {
        key: LoadResult(
            name=key[0],
            rps=statistics.median(r.rps for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            errors=sum(r.errors for r in results),
        )
        for key, results in rounds.items()
    }
    # Each round measures the two sizes back to back: the ratio within a round cancels the machine's drift.
    ratios = {
        name: statistics.median(
            large.p50_ms / small.p50_ms
            for small, large in zip(rounds[(name, "1k")], rounds[(name, "100k")], strict=True)
        )
        for name in paths
    }
    return summary, ratios


def search_plan(paths: dict[str, str]) -> tuple[str, bool]:
    """EXPLAIN ANALYZE of the two queries of a students search page: the matching user ids, then the page."""
    from users.api.filters import StudentFilterSet
    from users.models import Student, UserType
    from users.selectors import people_queryset, people_search_user_ids

    term = paths["students/?search=<part of a name>"].split("=", 1)[1]
    ids_plan = people_search_user_ids(Student, term).explain(analyze=True)
    filtered = StudentFilterSet({"search": term}, queryset=people_queryset(user_type=UserType.STUDENT))
    assert filtered.is_valid(), filtered.errors
    page_plan = filtered.qs[:51].explain(analyze=True)
    plan = f"-- user ids matching {term!r}:\n{ids_plan}\n\n-- the page (students of those users):\n{page_plan}"
    index_used = "Bitmap Index Scan on users_user_" in ids_plan and "_trgm" in ids_plan
    return plan, index_used and "Seq Scan" not in page_plan


def roster_csv(size: int, prefix: str) -> bytes:
    lines = ["username,email,first_name,last_name,student_id,gender,date_of_birth,phone_number,course_id"]
    for n in range(size):
        lines.append(
            f"{prefix}{n},{prefix}{n}@import.school.example,First{n},Last{n},{prefix.upper()}-{n:06d},"
            f"{'MFO'[n % 3]},2006-0{n % 9 + 1}-1{n % 9},+1 555-010-{n % 10000:04d},{n % 40 + 1}"
        )
    return ("\n".join(lines) + "\n").encode()


def import_rate(base: str, size: int) -> tuple[float, float]:
    import requests

    token = hod_token(base)
    content = roster_csv(size, f"imp{size}x")
    started = time.perf_counter()
    response = requests.post(
        f"{base}/api/v1/users/students/import/",
        files={"file": ("roster.csv", content, "text/csv")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise SystemExit(f"import of {size} rows failed: {response.status_code} {response.text[:2000]}")
    return elapsed, size / elapsed


def main() -> int:
    from bench.common import Gunicorn, django_setup, table, verdict

    databases_recreate()
    django_setup(LARGE_DB)
    load_kind = "wrk" if shutil.which("wrk") else "python threads"
    print(f"databases {SMALL_DB}, {LARGE_DB}; load: {load_kind}, {CONNECTIONS} connections, {ROUNDS} x {SECONDS} s")
    seed_both()
    paths = targets()

    # Request logs at INFO would cost the server more than some of the requests measured; the per-principal
    # throttle (3,000/min by default) would answer most of one HOD's load-test requests with 429. The seeded HOD
    # has no second factor: with MFA required for HODs (the default) its password alone would get no token.
    quiet = {"LOG_LEVEL": "WARNING", "THROTTLE_PRINCIPAL_RATE": "10000000/min", "MFA_REQUIRED_ROLES": ""}
    with Gunicorn(env={**quiet, "DB_NAME": SMALL_DB}) as small, Gunicorn(env={**quiet, "DB_NAME": LARGE_DB}) as large:
        results, ratios = measure({"1k": small, "100k": large}, paths)
        plan, index_used = search_plan(paths)
        imports = {size: import_rate(large.url, size) for size in IMPORT_SIZES}

    print("\nEXPLAIN ANALYZE of the search page at 100,000 students:\n" + plan)
    rows, ok = [], index_used
    for name in paths:
        one, hundred = results[(name, "1k")], results[(name, "100k")]
        ratio = ratios[name]
        passed = ratio <= MAX_P50_RATIO and not one.errors and not hundred.errors
        ok &= passed
        rows.append(
            [
                name,
                f"{one.rps:.0f}",
                f"{one.p50_ms:.2f} / {one.p99_ms:.2f}",
                f"{hundred.rps:.0f}",
                f"{hundred.p50_ms:.2f} / {hundred.p99_ms:.2f}",
                f"{ratio:.2f}x",
                f"<= {MAX_P50_RATIO}x",
                verdict(passed),
            ]
        )
    print(
        table(
            f"People endpoints: 1,000 vs 100,000 students (same run; medians of {ROUNDS} alternating rounds)",
            ["endpoint", "1k req/s", "1k p50/p99 ms", "100k req/s", "100k p50/p99 ms", "p50 ratio*", "target", ""],
            rows,
        )
    )
    print("* median over the rounds of (100k p50 / 1k p50), each round measuring both sizes back to back")
    (t_small, r_small), (t_large, r_large) = imports[IMPORT_SIZES[0]], imports[IMPORT_SIZES[1]]
    ratio = t_large / t_small
    import_ok = ratio <= MAX_IMPORT_RATIO and r_large >= MIN_IMPORT_ROWS_PER_SECOND
    ok &= import_ok
    print(
        table(
            "CSV roster import through the API",
            ["rows", "seconds", "rows/s", "target", ""],
            [
                [f"{IMPORT_SIZES[0]:,}", f"{t_small:.2f}", f"{r_small:.0f}", "", ""],
                [
                    f"{IMPORT_SIZES[1]:,}",
                    f"{t_large:.2f}",
                    f"{r_large:.0f}",
                    f"time <= {MAX_IMPORT_RATIO:.0f}x 1k ({ratio:.1f}x), >= {MIN_IMPORT_ROWS_PER_SECOND} rows/s",
                    verdict(import_ok),
                ],
            ],
        )
    )
    check = "matching ids by Bitmap Index Scan on trigram indexes; page without Seq Scan"
    print(table("Search plan", ["check", ""], [[check, verdict(index_used)]]))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        parser = argparse.ArgumentParser()
        parser.add_argument("--loadgen", dest="url")
        parser.add_argument("seconds", type=float)
        parser.add_argument("connections", type=int)
        parser.add_argument("token")
        options = parser.parse_args()
        print(json.dumps(loadgen(options.url, options.seconds, options.connections, options.token)))
        sys.exit(0)
    sys.exit(main())
