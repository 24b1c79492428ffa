"""The clients' core works where Django, DRF and Flask cannot even be imported (e.g. a Flask-less, Django-less host)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from clients.tests.token_support import claims_for
from users import tokens

CLIENTS_DIR = Path(__file__).resolve().parent.parent
ADAPTERS = {"django", "drf", "flask"}  # the only modules allowed to import a framework


def core_modules() -> list[str]:
    """Every module of the package but the framework adapters (a new module is covered without listing it)."""
    return sorted(f"clients.{path.stem}" for path in CLIENTS_DIR.glob("*.py") if path.stem not in ADAPTERS)


@pytest.mark.slow
def test_the_core_verifies_and_refuses_tokens_without_any_framework(server, jwks, settings):
    # Given two tokens of the user service, one of them of a session the sibling will deny
    denied_sid = str(uuid.uuid4())
    allowed = tokens.encode(claims_for(settings))
    denied = tokens.encode(claims_for(settings, sid=denied_sid))

    # When a process that cannot import django, rest_framework or flask imports the whole core, configures a
    # verifier from its environment alone and checks both tokens (against the JWKS served on loopback)
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("core_process.py"))],
        cwd=CLIENTS_DIR.parent,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "USER_SERVICE_"))},
            "PYTHONPATH": str(CLIENTS_DIR.parent),
            "CORE_MODULES": ",".join(core_modules()),
            "USER_SERVICE_URL": server.url_for("/"),
            "USER_SERVICE_JWT_ISSUER": settings.JWT_ISSUER,
            "DENIED_SID": denied_sid,
        },
        input=f"{allowed}\n{denied}\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    # Then the frameworks really were out of reach, and none got loaded
    assert report["django_importable"] is False
    assert report["framework_modules"] == []
    # And the verifier found the JWKS under USER_SERVICE_URL, accepted the token until its session was denied
    assert report["jwks_url"] == server.url_for("/api/v1/users/.well-known/jwks.json")
    assert report["before_deny"] == {"sub": "42"}
    assert report["denied"] == {"refused": "token_revoked"}
    assert report["allowed"] == {"sub": "42"}
    # And the WSGI middleware let the good token through and answered the denied one 401 JSON
    assert report["wsgi_allowed"] == {"status": "200 OK", "body": "ok", "user_id": 42}
    assert report["wsgi_denied"]["status"] == "401 Unauthorized"
    assert json.loads(report["wsgi_denied"]["body"]) == {
        "valid": False,
        "detail": "Token has been revoked.",
        "code": "token_revoked",
    }


def test_the_core_module_list_leaves_out_only_the_adapters():
    # The subprocess test imports what this lists: every module of the package except the three adapters
    modules = core_modules()
    assert {"clients.tokens", "clients.jwks", "clients.deny_list", "clients.revocations", "clients.wsgi"} <= set(
        modules
    )
    assert not {f"clients.{name}" for name in ADAPTERS} & set(modules)
