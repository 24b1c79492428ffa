"""Benchmark: outbox throughput and commit-to-delivery latency against plain Celery tasks, one worker, one webhook.

Run with the Makefile's TEST_ENV variables (DB_HOST, REDIS_URL, ... as for `make test`):

    DB_HOST=127.0.0.1 ... .venv/bin/python -m bench.bench_outbox

It uses its own database ``user_service_bench_outbox`` (created and migrated if missing) and its own
Redis key prefix. One ``celery worker -P solo`` process (one task at a time) delivers to a threaded
HTTP receiver on loopback that records when each event arrives.

- drain: N messages are queued with the worker stopped (outbox: one transaction per message, the task
  published after commit; plain: one ``apply_async`` carrying the event), then the worker starts;
  messages/s is measured between the first and the last arrival at the receiver. The outbox table is
  emptied with TRUNCATE between rounds, so no round wades through the dead rows of the one before.
- relay (information): N pending rows whose tasks were never published, delivered by the beat relay.
- latency: with the worker idle, one message at a time, alternating outbox and plain; from the commit
  (outbox) or the publish (plain) to the arrival at the receiver.

Targets (ratios, the machine is noisy): outbox drain time <= 1.5 x plain; outbox p50 latency within
100 ms of plain p50.
"""

import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from user_service.celery import app

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "user_service_bench_outbox"
N = int(os.environ.get("BENCH_OUTBOX_MESSAGES", "10000"))
LATENCY_SAMPLES = int(os.environ.get("BENCH_OUTBOX_LATENCY_SAMPLES", "200"))
MAX_DRAIN_RATIO = 1.5
MAX_P50_GAP_MS = 100.0
SECRET = "bench-secret"  # noqa: S105 - a benchmark value
KEY_PREFIX = f"bench-outbox-{os.getpid()}:"


@app.task(name="bench.outbox.plain_event_task", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def plain_event_task(body: dict) -> None:
    """The same delivery without the outbox: the task carries the event and POSTs it."""
    from django.conf import settings

    from users.services.events import event_serialize, webhook_post

    webhook_post(settings.EVENT_WEBHOOK_URLS[0], raw=event_serialize(body), body=body, secret=SECRET)


class Receiver:
    """Threaded HTTP receiver on loopback: records the arrival time of every event id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.monotonic()
                event_id = self.headers.get("X-Event-ID", "")
                with receiver.lock:
                    if event_id in receiver.arrivals:
                        receiver.duplicates += 1
                    else:
                        receiver.arrivals[event_id] = now
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()
            self.duplicates = 0

    def wait_for(self, count: int, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.arrivals)} of {count} events arrived")
            time.sleep(0.01)


class Worker:
    """One ``celery worker -P solo`` process on the benchmark database and key prefix."""

    def __init__(self, settings_dir: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(settings_dir), str(ROOT)]),
            "DJANGO_SETTINGS_MODULE": "bench_outbox_settings",
            "CELERY_SKIP_CHECKS": "1",
            "LOG_LEVEL": "WARNING",
        }
        self.log = settings_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        command = [sys.executable, "-m", "celery", "-A", "user_service", "worker", "-P", "solo", "-Q", "events,default"]
        command += ["-I", "bench.bench_outbox", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "-l", "WARNING"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _write_settings(directory: Path, webhook_url: str) -> None:
    (directory / "bench_outbox_settings.py").write_text(
        "from user_service.settings import *  # noqa\n"
        f"DATABASES['default']['NAME'] = {BENCH_DB!r}\n"
        f"EVENT_WEBHOOK_URLS = [{webhook_url!r}]\n"
        f"EVENT_WEBHOOK_SECRET = {SECRET!r}\n"
        "OUTBOX_RELAY_GRACE_SECONDS = 0\n"
        "OUTBOX_RELAY_BATCH_SIZE = 2000\n"
        "CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "
        f"'global_keyprefix': {KEY_PREFIX!r}}}\n"
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:  # a linear script
    from bench.common import django_setup, table, verdict

    django_setup(BENCH_DB)
    from django.conf import settings
    from django.db import connection, transaction

    from users.models import CustomUser, OutboxMessage
    from users.services import outbox
    from users.services.outbox import event_enqueue
    from users.services.people.create import user_rows_create

    def outbox_empty() -> None:
        """TRUNCATE rather than DELETE: earlier rounds must not leave dead rows for this one to wade through."""
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {OutboxMessage._meta.db_table}")

    receiver = Receiver()
    settings.EVENT_WEBHOOK_URLS = [receiver.url]
    settings.EVENT_WEBHOOK_SECRET = SECRET
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "global_keyprefix": KEY_PREFIX}
    outbox.outbox_dispatch_reset()
    with app.connection_for_write() as conn:
        for queue in ("default", "email", "events"):
            conn.default_channel.queue_purge(queue)
    outbox_empty()
    user = CustomUser.objects.filter(username="bench-outbox").first() or user_rows_create(
        username="bench-outbox", email="bench-outbox@school.test", password=None
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    _write_settings(tmp, receiver.url)
    from users.selectors import user_public_data

    user_json = user_public_data(user)

    def plain_body() -> dict:
        return {
            "event_id": str(uuid.uuid4()),
            "type": "user.updated",
            "occurred_at": "2026-01-01T00:00:00Z",
            "user": user_json,
            "data": {"fields": ["first_name"]},
        }

    def run_worker_until(count: int) -> tuple[float, float]:
        worker = Worker(tmp)
        try:
            receiver.wait_for(count)
        finally:
            worker.stop()
        times = sorted(receiver.arrivals.values())
        return times[-1] - times[0], count / (times[-1] - times[0])

    print(f"{N} messages, one worker (-P solo), webhook receiver on loopback", flush=True)

    # --- drain: outbox ---------------------------------------------------------------------------
    receiver.reset()
    started = time.monotonic()
    for i in range(N):
        with transaction.atomic():
            event_enqueue(event_type="user.updated", user=user, data={"fields": ["first_name"], "n": i})
    outbox_produce = time.monotonic() - started
    outbox_drain, outbox_rate = run_worker_until(N)
    sent = OutboxMessage.objects.filter(status="sent").count()
    outbox_duplicates = receiver.duplicates
    print(f"outbox drain: {outbox_drain:.2f}s ({outbox_rate:.0f} msg/s); rows sent {sent}/{N}", flush=True)

    # --- drain: plain tasks ----------------------------------------------------------------------
    receiver.reset()
    started = time.monotonic()
    for _ in range(N):
        plain_event_task.apply_async(args=[plain_body()], queue="events")
    plain_produce = time.monotonic() - started
    plain_drain, plain_rate = run_worker_until(N)
    plain_duplicates = receiver.duplicates
    print(f"plain drain: {plain_drain:.2f}s ({plain_rate:.0f} msg/s)", flush=True)

    # --- relay (information): rows whose tasks were never published --------------------------------
    outbox_empty()
    receiver.reset()
    outbox._broker_down_until = float("inf")  # as if the broker had been down for every commit
    for i in range(N):
        with transaction.atomic():
            event_enqueue(event_type="user.updated", user=user, data={"fields": ["first_name"], "n": i})
    outbox.outbox_dispatch_reset()
    from users.tasks import outbox_relay_task

    worker = Worker(tmp)
    try:
        while len(receiver.arrivals) < N:
            outbox_relay_task.delay()
            time.sleep(1.0)
            if worker.process.poll() is not None:
                raise RuntimeError(worker.log.read_text()[-2000:])
        receiver.wait_for(N)
        times = sorted(receiver.arrivals.values())
        relay_rate = N / (times[-1] - times[0])
        print(f"relay: {relay_rate:.0f} msg/s", flush=True)

        # --- latency with the worker idle, alternating -------------------------------------------
        outbox_empty()
        receiver.reset()
        time.sleep(1.0)
        outbox_latency: list[float] = []
        plain_latency: list[float] = []
        for _ in range(LATENCY_SAMPLES):
            committed: list[float] = []
            expected = len(receiver.arrivals) + 1
            with transaction.atomic():
                transaction.on_commit(lambda: committed.append(time.monotonic()))  # noqa: B023 - runs in this loop
                message = event_enqueue(event_type="user.updated", user=user, data={"fields": ["first_name"]})
            receiver.wait_for(expected, timeout=30)
            outbox_latency.append((receiver.arrivals[str(message.pk)] - committed[0]) * 1000)
            time.sleep(0.01)
            body = plain_body()
            expected = len(receiver.arrivals) + 1
            published = time.monotonic()
            plain_event_task.apply_async(args=[body], queue="events")
            receiver.wait_for(expected, timeout=30)
            plain_latency.append((receiver.arrivals[body["event_id"]] - published) * 1000)
            time.sleep(0.01)
    finally:
        worker.stop()

    ratio = outbox_drain / plain_drain
    o50, o99 = _percentile(outbox_latency, 0.5), _percentile(outbox_latency, 0.99)
    p50, p99 = _percentile(plain_latency, 0.5), _percentile(plain_latency, 0.99)
    rows = [
        ["drain time", f"{outbox_drain:.2f} s", f"{plain_drain:.2f} s", f"{ratio:.2f}x <= {MAX_DRAIN_RATIO}x",
         verdict(ratio <= MAX_DRAIN_RATIO)],
        ["throughput (1 worker)", f"{outbox_rate:.0f} msg/s", f"{plain_rate:.0f} msg/s", "", ""],
        ["enqueue (producer) per msg", f"{outbox_produce / N * 1000:.2f} ms", f"{plain_produce / N * 1000:.2f} ms",
         "information", ""],
        ["commit-to-delivery p50", f"{o50:.1f} ms", f"{p50:.1f} ms", f"gap {o50 - p50:.1f} <= {MAX_P50_GAP_MS:.0f} ms",
         verdict(o50 - p50 <= MAX_P50_GAP_MS)],
        ["commit-to-delivery p99", f"{o99:.1f} ms", f"{p99:.1f} ms", "information", ""],
        ["relay (beat path)", f"{relay_rate:.0f} msg/s", "-", "information", ""],
        ["delivered once", f"{sent}/{N} sent, {outbox_duplicates} dup", f"{plain_duplicates} dup",
         "no duplicates", verdict(sent == N and outbox_duplicates == 0)],
    ]  # fmt: skip
    print(table("Outbox vs plain Celery tasks", ["measure", "outbox", "plain task", "target", "result"], rows))
    means = f"outbox {statistics.mean(outbox_latency):.1f} ms, plain {statistics.mean(plain_latency):.1f} ms"
    print(f"\nmean commit-to-delivery latency: {means}")
    outbox_empty()
    shutil.rmtree(tmp, ignore_errors=True)
    ok = ratio <= MAX_DRAIN_RATIO and o50 - p50 <= MAX_P50_GAP_MS and sent == N and outbox_duplicates == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
