"""The clients' core in a process that cannot import Django, DRF or Flask: verify tokens, refuse a denied session.

Run by test_core_without_frameworks.py with the environment: CORE_MODULES (comma-separated), USER_SERVICE_URL
and USER_SERVICE_JWT_ISSUER (the core's environment configuration), DENIED_SID; one token per line on stdin.
Prints one JSON object with what it saw.
"""

import importlib
import importlib.abc
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType

BLOCKED = frozenset({"django", "rest_framework", "flask"})


class _BlockFrameworks(importlib.abc.MetaPathFinder):
    """Every import of a blocked package fails, as in a service that does not have it installed."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if fullname.partition(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} cannot be imported in this process")


def _verdict(verifier, token: str) -> dict:
    from clients.exceptions import TokenRejected

    try:
        return {"sub": verifier.verify(token)["sub"]}
    except TokenRejected as exc:
        return {"refused": exc.code}


def _through_wsgi(verifier, token: str) -> dict:
    """One request through the WSGI middleware, called directly with a WSGI environ."""
    from clients.wsgi import ENVIRON_USER, BearerTokenMiddleware

    seen: dict = {}

    def app(environ, start_response):
        seen["user_id"] = environ[ENVIRON_USER].id
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)
        return lambda data: None

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_AUTHORIZATION": f"Bearer {token}"}
    body = b"".join(BearerTokenMiddleware(app, verifier)(environ, start_response))
    return {"status": statuses[0], "body": body.decode(), **seen}


def main() -> None:
    sys.meta_path.insert(0, _BlockFrameworks())
    report: dict = {}
    try:
        import django  # noqa: F401
    except ImportError:
        report["django_importable"] = False
    else:  # pragma: no cover - the block failed
        report["django_importable"] = True

    for name in os.environ["CORE_MODULES"].split(","):
        importlib.import_module(name)

    from clients.tokens import TokenVerifier

    verifier = TokenVerifier.from_settings()  # from the environment: USER_SERVICE_URL + USER_SERVICE_JWT_ISSUER
    report["jwks_url"] = verifier.keys.url
    allowed, denied = (line.strip() for line in sys.stdin.read().split())
    report["before_deny"] = _verdict(verifier, denied)
    verifier.deny(session_ids=[os.environ["DENIED_SID"]])
    report["denied"] = _verdict(verifier, denied)
    report["allowed"] = _verdict(verifier, allowed)
    report["wsgi_allowed"] = _through_wsgi(verifier, allowed)
    report["wsgi_denied"] = _through_wsgi(verifier, denied)
    report["framework_modules"] = sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
