"""Gunicorn settings for the container images, read from the environment (WEB_CONCURRENCY, GUNICORN_*, PORT)."""

import os

# Cap the default so a pod scheduled on a 64-core node does not open hundreds of database connections:
# each worker process holds up to GUNICORN_THREADS connections (CONN_MAX_AGE keeps them open).
MAX_DEFAULT_WORKERS = 8


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, got {value}")
    return value


def _available_cpus() -> int:
    """CPUs this process may run on (affinity-aware); cgroup quotas are not visible, so set WEB_CONCURRENCY."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(cpus: int) -> int:
    """The classic 2 x cores + 1, capped at MAX_DEFAULT_WORKERS."""
    return min(2 * cpus + 1, MAX_DEFAULT_WORKERS)


port = _env_int("PORT", 8000)
bind = [f"0.0.0.0:{port}"]

workers = _env_int("WEB_CONCURRENCY", default_workers(_available_cpus()))
# Threads let a worker overlap database and Redis waits; password hashing (argon2) releases the GIL.
threads = _env_int("GUNICORN_THREADS", 4)
worker_class = "gthread"

timeout = _env_int("GUNICORN_TIMEOUT_SECONDS", 30)
graceful_timeout = timeout
# Longer than nginx's upstream keepalive so the proxy, not gunicorn, closes idle connections.
keepalive = 75

# The longest request line (method, path, query string) gunicorn reads: its maximum short of unlimited, so an
# ids= list of realistic ids fits; longer lines get gunicorn's HTML 414, which the OpenAPI schema documents.
limit_request_line = 8190

# Recycle workers now and then so a slow leak never becomes an outage; jitter avoids restarting all at once.
max_requests = 2000
max_requests_jitter = 200

# The heartbeat file lives in memory; the root filesystem is read-only on Kubernetes.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs, not a shared temp file
# No runtime control socket: its default path is under $HOME, which is read-only in the image.
control_socket_disable = True

# Errors to stderr; the per-request line comes from the application's own request log (one JSON line per request).
errorlog = "-"
accesslog = None
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
capture_output = False
proc_name = "user-service"


def child_exit(server, worker) -> None:
    """Prometheus multi-process mode: drop the samples files of a worker that is gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
