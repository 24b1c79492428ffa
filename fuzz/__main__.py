"""`python -m fuzz` (`make fuzz`): every schemathesis check, against a live server, as each kind of caller.

It creates a throw-away PostgreSQL database, migrates and seeds it (an HOD, a staff member, a student and a
service account with ``users:read`` and ``tokens:introspect``, plus a few people to find), starts gunicorn on
127.0.0.1 with the production gunicorn settings (``deploy/gunicorn.conf.py``) and throttles and lockouts raised
(one client sends thousands of requests, most of them failed logins), then runs ``schemathesis run`` once per
caller: anonymous, Student, Staff and service account two at a time, then the HOD (its writes could reach the
other callers' accounts).
The database and this run's Redis keys are dropped at the end. Exit status: non-zero if any run failed.

Environment: the Makefile's TEST_ENV (database, Redis, signing key); FUZZ_EXAMPLES (100), FUZZ_SEED (1),
FUZZ_ROLES (comma-separated subset), FUZZ_PARALLEL (runs at a time, 2).
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "var" / "fuzz"
SCHEMA_PATH = "/api/schema/?format=json"
LIVE_PATH = "/api/v1/users/health/live/"
ROLES = ("anonymous", "student", "staff", "service", "hod")
UNLIMITED = "1000000/min"

# One client, thousands of requests, most of them refused logins: every limit that would turn the run into
# 429s is raised. Throttles and lockouts have their own tests (users/tests/test_throttles.py, test_lockout.py).
SERVER_ENV = {
    "THROTTLE_PRINCIPAL_RATE": UNLIMITED,
    "THROTTLE_REGISTER_RATE": UNLIMITED,
    "THROTTLE_LOGIN_RATE": UNLIMITED,
    "THROTTLE_REFRESH_RATE": UNLIMITED,
    "THROTTLE_SERVICE_TOKEN_RATE": UNLIMITED,
    "THROTTLE_PASSWORD_RESET_RATE": UNLIMITED,
    "THROTTLE_VERIFICATION_EMAIL_RATE": UNLIMITED,
    "LOGIN_LOCKOUT_THRESHOLD": "1000000",
    "LOGIN_IP_THRESHOLD": "1000000",
    # The seeded HOD logs in with a password alone (MFA has its own tests, users/tests/test_mfa_*.py).
    "MFA_REQUIRED_ROLES": "",
    "JWT_ACCESS_MINUTES": "60",
    "WEB_CONCURRENCY": "2",
    "GUNICORN_THREADS": "4",
    "LOG_LEVEL": "WARNING",
    "ALLOWED_HOSTS": "127.0.0.1",
}

# Excluded checks, each with its reason in the README's "Fuzzing" paragraph.
EXCLUDED_CHECKS = ("use_after_free", "ensure_resource_availability")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_params() -> dict:
    return {
        "host": os.environ.get("DB_HOST", "127.0.0.1"),
        "port": os.environ.get("DB_PORT", "5432"),
        "user": os.environ.get("DB_USER", "postgres"),
        "password": os.environ.get("DB_PASSWORD", ""),
    }


def database_create(name: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **_pg_params()) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **_pg_params()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_keys_drop(prefixes: list[str]) -> None:
    """Delete this run's keys (cache and broker prefixes are unique to it); never anything else."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for prefix in prefixes:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)


def seed() -> dict[str, dict]:
    """People and a service account; returns, per role, the token endpoint and the body that gets a token."""
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "user_service.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from users.models import UserType
    from users.services.people import person_create
    from users.services.service_accounts import service_account_create

    # People for the generated ids to find (ids 1, 2, ... are what the coverage phase tries first).
    for n in range(1, 4):
        for user_type, noun in ((UserType.STUDENT, "student"), (UserType.STAFF, "staff"), (UserType.HOD, "hod")):
            person_create(
                user_type=user_type,
                user={"username": f"{noun}{n}", "email": f"{noun}{n}@fuzz.test", "first_name": noun.title()},
                profile={},
            )
    # The callers get ids no generated id is likely to hit, so the run seldom edits or deactivates them.
    with connection.cursor() as cursor:
        for table in ("users_customuser", "users_student", "users_staff", "users_adminhod"):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 900000000)", [table])
    password = secrets.token_urlsafe(24)
    callers = {}
    for user_type, role in ((UserType.STUDENT, "student"), (UserType.STAFF, "staff"), (UserType.HOD, "hod")):
        username = f"fuzz-{role}"
        person_create(
            user_type=user_type, user={"username": username, "email": f"{username}@fuzz.test"}, profile={},
            password=password,
        )  # fmt: skip
        callers[role] = {"path": "/api/v1/users/login/", "body": {"username": username, "password": password}}
    account, secret = service_account_create(name="fuzz-service", scopes=["users:read", "tokens:introspect"])
    callers["service"] = {
        "path": "/api/v1/users/service-token/",
        "body": {"client_id": account.client_id, "client_secret": secret},
    }
    connection.close()
    return callers


class Server:
    """gunicorn with deploy/gunicorn.conf.py, bound to a free loopback port, as a child process."""

    def __init__(self, env: dict, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        command = [gunicorn, "-c", "deploy/gunicorn.conf.py", "-b", f"127.0.0.1:{self.port}"]
        command.append("user_service.wsgi:application")
        self.log = log.open("wb")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(self.url + LIVE_PATH, timeout=5).status_code == 200:
                    self.warm()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"gunicorn did not start; see {log}")

    def warm(self) -> None:
        """Have the workers build the schema before schemathesis asks for it (it allows ten seconds to load it,
        and each worker builds it on its first request: on a busy machine that took longer). Concurrent requests
        land on different workers."""
        from concurrent.futures import ThreadPoolExecutor

        import requests

        with ThreadPoolExecutor(max_workers=16) as pool:
            for response in pool.map(lambda _: requests.get(self.url + SCHEMA_PATH, timeout=300), range(16)):
                response.raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def schemathesis_start(role: str, server: Server, caller: dict | None, *, examples: int, seed: int):
    """Start one ``schemathesis run`` as ``role``, its output to var/fuzz/<role>.log; returns the process."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz.hooks", "FUZZ_BASE_URL": server.url, "PYTHONPATH": str(ROOT)}
    if caller is not None:
        env.update(FUZZ_TOKEN_PATH=caller["path"], FUZZ_TOKEN_BODY=json.dumps(caller["body"]))
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(ROOT / "fuzz" / "schemathesis.toml"),
        "run",
        server.url + SCHEMA_PATH,
        "--checks",
        "all",
        "--exclude-checks",
        ",".join(EXCLUDED_CHECKS),
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        # One thread per run: on Python 3.11, ast.parse in two threads at once (hypothesis describing its
        # filters) fails with "AST constructor recursion depth mismatch". Roles run as parallel processes instead.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(REPORTS / f"{role}.junit.xml"),
    ]
    log = (REPORTS / f"{role}.log").open("wb")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def summary_of(role: str) -> str:
    """The SUMMARY block at the end of a run's output."""
    text = (REPORTS / f"{role}.log").read_text(errors="replace")
    marker = text.rfind("SUMMARY")
    return text[text.rfind("\n", 0, marker) + 1 :] if marker >= 0 else text[-3000:]


def run_all(roles: list[str], server: Server, callers: dict, *, examples: int, seed: int, parallel: int) -> dict:
    """Run the roles ``parallel`` at a time, the HOD last (its writes may touch the other callers' accounts)."""
    results: dict[str, tuple[int, float]] = {}
    pending = [role for role in roles if role != "hod"]
    running: dict[str, tuple[subprocess.Popen, float]] = {}

    def start(role: str) -> None:
        print(f"fuzz as {role}: started (var/fuzz/{role}.log)", flush=True)
        process = schemathesis_start(role, server, callers.get(role), examples=examples, seed=seed)
        running[role] = (process, time.monotonic())

    hod_waiting = "hod" in roles
    try:
        while pending or running or hod_waiting:
            while pending and len(running) < parallel:
                start(pending.pop(0))
            for role, (process, started) in list(running.items()):
                if process.poll() is not None:
                    results[role] = (process.returncode, time.monotonic() - started)
                    del running[role]
                    print(f"fuzz as {role}: exit {process.returncode} after {results[role][1]:.0f} s", flush=True)
            if hod_waiting and not pending and not running:
                hod_waiting = False
                start("hod")
            time.sleep(0.5)
    finally:
        for process, _ in running.values():  # interrupted: stop the runs this started
            process.terminate()
            process.wait(timeout=30)
    return results


def main() -> int:
    examples = int(os.environ.get("FUZZ_EXAMPLES", "100"))
    seed_value = int(os.environ.get("FUZZ_SEED", "1"))
    parallel = int(os.environ.get("FUZZ_PARALLEL", "2"))
    roles = [r for r in os.environ.get("FUZZ_ROLES", ",".join(ROLES)).split(",") if r]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        print(f"unknown role(s) {unknown}; known: {list(ROLES)}")
        return 2
    REPORTS.mkdir(parents=True, exist_ok=True)
    run_id = f"{os.getpid()}-{secrets.token_hex(3)}"
    db_name = f"user_service_fuzz_{run_id.replace('-', '_')}"
    prefixes = [f"ums-fuzz-{run_id}", f"ums-fuzz-{run_id}:"]
    os.environ.update(SERVER_ENV)
    os.environ.update(DB_NAME=db_name, CACHE_KEY_PREFIX=prefixes[0], CELERY_BROKER_KEY_PREFIX=prefixes[1])
    started = time.monotonic()
    results: dict[str, tuple[int, float]] = {}
    database_create(db_name)
    try:
        callers = seed()
        server = Server(dict(os.environ), REPORTS / "gunicorn.log")
        try:
            results = run_all(roles, server, callers, examples=examples, seed=seed_value, parallel=parallel)
        finally:
            server.stop()
    finally:
        database_drop(db_name)
        redis_keys_drop(prefixes)
    for role in results:
        print(f"\n=== fuzz as {role} ===\n{summary_of(role)}")
    print(f"\n=== fuzz summary ({examples} examples per operation, seed {seed_value}) ===")
    for role, (code, seconds) in results.items():
        print(f"{role:<10} {'ok' if code == 0 else 'FAILED'}  {seconds:6.0f} s   var/fuzz/{role}.log")
    print(f"total {time.monotonic() - started:.0f} s")
    return 0 if all(code == 0 for code, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
