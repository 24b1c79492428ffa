"""A real gunicorn serving the project on a loopback port, in a child process, for end-to-end tests."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
LIVE_PATH = "/api/v1/users/health/live/"


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict:
    """The environment without any of the service's settings, plus ``extra``."""
    prefixes = ("DB_", "REDIS_", "JWT_", "SECRET_", "SECURE_", "DEBUG", "EMAIL_", "CACHE_", "MFA_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(extra)
    return env


class GunicornServer:
    def __init__(self, env: dict, tmp_path: Path, *, workers: int = 1, threads: int = 1, static: bool = True):
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**env, "VAR_DIR": str(tmp_path), "STATIC_ROOT": str(tmp_path / "static")}
        if static:  # only pages (docs, admin) need the collected static files
            subprocess.run(
                [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
            )
        if "DB_HOST" not in env:
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [str(gunicorn), "user_service.wsgi:application", "-b", f"127.0.0.1:{self.port}"]
        command += ["-w", str(workers), "--threads", str(threads)]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(f"{self.url}{LIVE_PATH}", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        stderr = self.process.stderr.read().decode() if self.process.stderr else ""
        raise RuntimeError(f"server did not start: {stderr[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def __enter__(self) -> "GunicornServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class RedisProcess:
    """A throw-away redis-server on its own loopback port (no persistence) that a test can pause, kill, restart."""

    def __init__(self) -> None:
        self.port = closed_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def _running(self) -> subprocess.Popen:
        if self.process is None:
            raise RuntimeError("redis-server is not running")
        return self.process

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing is ever answered (a hung Redis)."""
        self._running().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._running().send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(timeout=10)

    def restart_empty(self) -> None:
        self.kill()
        self.start()
