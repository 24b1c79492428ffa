"""Shared benchmark plumbing: a dedicated database, gunicorn on loopback, wrk runs, result tables."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get("BENCH_DB_NAME", "user_service_bench")


def django_setup(db_name: str = BENCH_DB) -> None:
    """Point Django at a dedicated benchmark database (created and migrated if needed) and set it up."""
    os.environ["DB_NAME"] = db_name
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "user_service.settings")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import psycopg

    params = {
        "host": os.environ.get("DB_HOST", "127.0.0.1"),
        "port": os.environ.get("DB_PORT", "5432"),
        "user": os.environ.get("DB_USER", "postgres"),
        "password": os.environ.get("DB_PASSWORD", ""),
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{db_name}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


GUNICORN_FLAGS = ["-w", os.environ.get("BENCH_WORKERS", "4"), "--threads", "1", "--log-level", "warning"]


class Gunicorn:
    """gunicorn serving ``app`` on 127.0.0.1 with the benchmark's fixed flags, as a child process."""

    def __init__(self, app: str = "user_service.wsgi:application", env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        command = [gunicorn, app, "-b", f"127.0.0.1:{self.port}", *GUNICORN_FLAGS]
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                time.sleep(0.5)  # let every worker boot
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not start")

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


@dataclass
class LoadResult:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


LUA = ROOT / "bench" / "lua"
WRK_THREADS = 2


def wrk(
    name: str,
    url: str,
    *,
    seconds: int = 10,
    connections: int = 16,
    headers: dict | None = None,
    method: str = "GET",
    body: str | None = None,
    rotate: tuple[str, list[str]] | None = None,
) -> LoadResult:
    """Run wrk (a C load generator in its own process) and parse requests/s and latency percentiles.

    ``rotate=(mode, lines)``: each request takes the next of ``lines`` (bench/lua/rotate.lua says how, by mode).
    """
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (make bench does it)")
    args = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    with tempfile.TemporaryDirectory() as tmp:
        tail: list[str] = []
        if rotate is not None:
            mode, lines = rotate
            data = Path(tmp) / "lines.txt"
            data.write_text("\n".join(lines) + "\n")
            args += ["-s", str(LUA / "rotate.lua")]
            tail = ["--", mode, str(data), str(WRK_THREADS)]
        elif method != "GET" or body is not None:
            script = Path(tmp) / "request.lua"
            escaped = (body or "").replace("\\", "\\\\").replace('"', '\\"')
            script.write_text(f'wrk.method = "{method}"\nwrk.body = "{escaped}"\n')
            args += ["-s", str(script)]
        out = subprocess.run([*args, url, *tail], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return LoadResult(name=name, rps=rps, p50_ms=p50, p99_ms=p99, errors=errors)


def table(title: str, headers: list[str], rows: list[list]) -> str:
    """A plain-text table (also valid Markdown)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([f"\n### {title}\n", line, sep, *body])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
