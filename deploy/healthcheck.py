"""Container health check: GET the liveness endpoint on this container's port; exit 0 when it answers 200.

Standard library only, so it runs in the slim image (no curl) without importing Django.
Usage: ``python deploy/healthcheck.py [PATH]`` (default LIVENESS_PATH); the port comes from ``PORT`` (8000).
"""

import os
import sys
import urllib.error
import urllib.request

LIVENESS_PATH = "/api/v1/users/health/live/"
TIMEOUT_SECONDS = 4


def check(path: str = LIVENESS_PATH, port: int | None = None) -> bool:
    """True when http://127.0.0.1:<port><path> answers 200 within the timeout."""
    port = port or int(os.environ.get("PORT", "8000"))
    # 127.0.0.1 is in the default ALLOWED_HOSTS and in every deployment file's ALLOWED_HOSTS.
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # fixed http URL
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError) as exc:
        sys.stderr.write(f"health check {url} failed: {exc}\n")
        return False


if __name__ == "__main__":
    sys.exit(0 if check(sys.argv[1] if len(sys.argv) > 1 else LIVENESS_PATH) else 1)
