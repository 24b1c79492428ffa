"""Dockerfile, .dockerignore, entrypoint, gunicorn config and health-check script, checked against the code."""

import fnmatch
import importlib
import os
import re
import runpy
import stat
import subprocess
from pathlib import Path

import pytest
from gunicorn.config import Config

from deploy.tests.support import (
    DEPLOY,
    ENTRYPOINT_COMMANDS,
    LIVENESS_PATH,
    READINESS_PATH,
    REPO,
    exec_form,
    load_yaml_documents,
    view_class,
)
from users.api.health import HealthView, LivenessView

YAML_FILES = sorted(
    [REPO / "docker-compose.yml", REPO / "docker-compose.prod.yml"]
    + list(DEPLOY.rglob("*.yaml"))
    + list(DEPLOY.rglob("*.yml"))
)


def stage_instructions(dockerfile, stage: str) -> list[tuple[str, str]]:
    """The instructions of one named build stage."""
    current, selected = None, []
    for keyword, arguments in dockerfile:
        if keyword == "FROM":
            current = arguments.split()[-1] if " AS " in arguments.upper() else None
        elif current == stage:
            selected.append((keyword, arguments))
    return selected


# --- every YAML file ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: str(path.relative_to(REPO)))
def test_yaml_file_parses_into_mappings(path):
    documents = load_yaml_documents(path)

    assert documents, f"{path} is empty"
    assert all(isinstance(document, dict) for document in documents)


# --- Dockerfile --------------------------------------------------------------------------------------


def test_dockerfile_builds_wheels_then_installs_only_wheels_on_python_312_slim(dockerfile):
    args = dict(arguments.split("=", 1) for keyword, arguments in dockerfile if keyword == "ARG" and "=" in arguments)
    stages = [arguments.split() for keyword, arguments in dockerfile if keyword == "FROM"]

    assert args["PYTHON_IMAGE"] == "python:3.12-slim"
    assert [stage[-1] for stage in stages] == ["builder", "runtime"]
    assert all(stage[0] == "${PYTHON_IMAGE}" for stage in stages)
    builder_runs = " ".join(a for k, a in stage_instructions(dockerfile, "builder") if k == "RUN")
    assert "pip wheel --wheel-dir /wheels -r requirements.txt" in builder_runs
    runtime_runs = " ".join(a for k, a in stage_instructions(dockerfile, "runtime") if k == "RUN")
    assert "--no-index" in runtime_runs
    assert "from=builder" in runtime_runs
    for compiler in ("build-essential", "gcc", "apt-get install"):
        assert compiler not in runtime_runs


def test_dockerfile_runs_as_uid_10001_with_python_env(dockerfile):
    runtime = stage_instructions(dockerfile, "runtime")
    env = " ".join(arguments for keyword, arguments in runtime if keyword == "ENV")
    users = [arguments for keyword, arguments in runtime if keyword == "USER"]

    assert users[-1] == "10001:10001"
    keywords = [keyword for keyword, _ in runtime]
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert "RUN" not in keywords[last_user:]  # nothing after the switch runs as root or undoes it
    assert "--uid 10001" in " ".join(arguments for keyword, arguments in runtime if keyword == "RUN")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    assert "STATIC_ROOT=/app/staticfiles" in env
    assert "DJANGO_SETTINGS_MODULE=user_service.settings" in env


def test_dockerfile_collects_static_with_throwaway_secrets_only(dockerfile):
    runs = [arguments for keyword, arguments in dockerfile if keyword == "RUN" and "collectstatic" in arguments]
    baked = " ".join(arguments for keyword, arguments in dockerfile if keyword in {"ENV", "ARG", "LABEL"})

    assert len(runs) == 1
    assert "python manage.py collectstatic --noinput" in runs[0]
    assert 'SECRET_KEY="build-only-$(python' in runs[0]  # generated inside the step
    assert 'JWT_PRIVATE_KEY="$(python' in runs[0]
    for secret in ("SECRET_KEY", "JWT_PRIVATE_KEY", "DB_PASSWORD", "EMAIL_HOST_PASSWORD"):
        assert secret not in baked


def test_dockerfile_entrypoint_cmd_and_workdir_point_at_real_files(dockerfile):
    runtime = dict(stage_instructions(dockerfile, "runtime"))
    entrypoint = exec_form(runtime["ENTRYPOINT"])
    workdir = runtime["WORKDIR"]
    script = REPO / Path(entrypoint[0]).relative_to(workdir)

    assert workdir == "/app"
    assert script == DEPLOY / "docker-entrypoint.sh"
    assert script.stat().st_mode & stat.S_IXUSR, "the entrypoint must be executable"
    assert exec_form(runtime["CMD"]) == ["web"]
    assert runtime["EXPOSE"] == "8000"


def test_dockerfile_healthcheck_hits_the_liveness_view(dockerfile):
    healthcheck = next(arguments for keyword, arguments in dockerfile if keyword == "HEALTHCHECK")
    command = exec_form(healthcheck.split(" CMD ", 1)[1])

    assert command[:2] == ["python", "/app/deploy/healthcheck.py"]
    assert (DEPLOY / "healthcheck.py").is_file()
    assert command[2] == LIVENESS_PATH
    assert view_class(command[2]) is LivenessView
    assert "--interval=" in healthcheck
    assert "--timeout=" in healthcheck


def test_dockerignore_keeps_what_the_image_needs_and_drops_local_state():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [pattern for pattern in patterns if pattern and not pattern.startswith("#")]

    def excluded(path: str) -> bool:
        result = False
        parts = path.split("/")
        candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        for pattern in patterns:
            negate, pattern = pattern.startswith("!"), pattern.lstrip("!")
            if pattern.startswith("**/"):
                hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
            else:
                hit = any(fnmatch.fnmatch(candidate, pattern) for candidate in candidates)
            if hit:
                result = not negate
        return result

    for needed in (
        "manage.py",
        "requirements.txt",
        "user_service/wsgi.py",
        "user_service/celery.py",
        "users/models.py",
        "deploy/gunicorn.conf.py",
        "deploy/docker-entrypoint.sh",
        "deploy/healthcheck.py",
    ):
        assert not excluded(needed), needed
    for unwanted in (".venv/bin/python", "var/db.sqlite3", ".git/HEAD", ".env", "users/__pycache__/models.pyc"):
        assert excluded(unwanted), unwanted
    for cache in (".pytest_cache", ".ruff_cache", ".mypy_cache"):
        assert excluded(f"{cache}/x"), cache


# --- entrypoint --------------------------------------------------------------------------------------


def test_entrypoint_is_valid_posix_shell():
    result = subprocess.run(["sh", "-n", str(DEPLOY / "docker-entrypoint.sh")], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


@pytest.fixture
def run_entrypoint(tmp_path):
    """Run the entrypoint with gunicorn, celery and python replaced by stubs that print their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("gunicorn", "celery", "python"):
        stub = bin_dir / program
        stub.write_text(f'#!/bin/sh\necho "{program} $*"\n')
        stub.chmod(0o755)

    def run(*args: str, **env: str) -> list[str]:
        environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", **env}
        result = subprocess.run(
            [str(DEPLOY / "docker-entrypoint.sh"), *args], capture_output=True, text=True, env=environment, check=True
        )
        return result.stdout.splitlines()

    return run


def test_entrypoint_starts_gunicorn_with_the_deploy_config_by_default(run_entrypoint):
    assert run_entrypoint() == ["gunicorn --config deploy/gunicorn.conf.py user_service.wsgi:application"]
    assert run_entrypoint("web", "--bind", "127.0.0.1:9") == [
        "gunicorn --config deploy/gunicorn.conf.py user_service.wsgi:application --bind 127.0.0.1:9"
    ]


@pytest.mark.parametrize("flag", ["true", "TRUE", "1", "yes"])
def test_entrypoint_migrates_first_when_migrate_on_start(run_entrypoint, flag):
    assert run_entrypoint("worker", MIGRATE_ON_START=flag) == [
        "python manage.py migrate --noinput",
        "celery -A user_service worker -Q default,email,events --concurrency 2 -l info",
    ]


def test_entrypoint_does_not_migrate_by_default_or_when_false(run_entrypoint):
    assert run_entrypoint("beat") == ["celery -A user_service beat -l info --schedule /tmp/celerybeat-schedule"]
    assert run_entrypoint("beat", MIGRATE_ON_START="false") == [
        "celery -A user_service beat -l info --schedule /tmp/celerybeat-schedule"
    ]


def test_entrypoint_migrate_command_and_passthrough(run_entrypoint):
    assert run_entrypoint("migrate", MIGRATE_ON_START="true") == ["python manage.py migrate --noinput"]
    assert run_entrypoint("python", "manage.py", "createsuperuser") == ["python manage.py createsuperuser"]


def test_entrypoint_worker_queues_and_concurrency_come_from_env(run_entrypoint):
    assert run_entrypoint("worker", CELERY_WORKER_QUEUES="email", CELERY_WORKER_CONCURRENCY="6") == [
        "celery -A user_service worker -Q email --concurrency 6 -l info"
    ]


def test_modules_the_entrypoint_starts_exist():
    source = (DEPLOY / "docker-entrypoint.sh").read_text()
    wsgi_module, attribute = re.search(r"gunicorn --config (\S+) (\S+)", source).group(2).split(":")
    celery_apps = set(re.findall(r"celery -A (\S+)", source))

    assert (REPO / re.search(r"gunicorn --config (\S+)", source).group(1)).is_file()
    assert callable(getattr(importlib.import_module(wsgi_module), attribute))
    assert celery_apps == {"user_service"}
    assert importlib.import_module("user_service.celery").app.main == "user_service"
    assert set(re.findall(r"^\s{4}(\w+)\)$", source, flags=re.MULTILINE)) == ENTRYPOINT_COMMANDS


# --- gunicorn config ---------------------------------------------------------------------------------


def load_gunicorn_config(monkeypatch, **env: str) -> dict:
    for name in ("PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))


def test_gunicorn_config_reads_port_workers_threads_timeout(monkeypatch):
    config = load_gunicorn_config(
        monkeypatch, PORT="9000", WEB_CONCURRENCY="5", GUNICORN_THREADS="3", GUNICORN_TIMEOUT_SECONDS="45"
    )

    assert config["bind"] == ["0.0.0.0:9000"]
    assert (config["workers"], config["threads"], config["timeout"]) == (5, 3, 45)
    assert config["worker_class"] == "gthread"


def test_gunicorn_config_defaults(monkeypatch, gunicorn_port):
    config = load_gunicorn_config(monkeypatch)

    assert gunicorn_port == 8000
    assert config["bind"] == ["0.0.0.0:8000"]
    assert config["threads"] == 4
    assert config["timeout"] == 30
    assert 1 <= config["workers"] <= config["MAX_DEFAULT_WORKERS"] == 8
    assert [config["default_workers"](cpus) for cpus in (1, 2, 3, 4, 64)] == [3, 5, 7, 8, 8]


@pytest.mark.parametrize("value", ["many", "0", "-2"])
def test_gunicorn_config_refuses_bad_numbers(monkeypatch, value):
    with pytest.raises(SystemExit, match="WEB_CONCURRENCY"):
        load_gunicorn_config(monkeypatch, WEB_CONCURRENCY=value)


def test_gunicorn_config_uses_only_real_settings_with_valid_values(monkeypatch):
    config = load_gunicorn_config(monkeypatch)
    settings = Config()
    helpers = {"port"}  # plain variables of the file, not gunicorn settings
    names = [
        name
        for name, value in config.items()
        if name.islower() and not name.startswith("_") and not callable(value) and not isinstance(value, type(os))
    ]
    names = [name for name in names if name not in helpers]

    unknown = [name for name in names if name not in settings.settings]
    assert unknown == []
    for name in names:
        settings.set(name, config[name])  # gunicorn's own validators
    assert settings.control_socket_disable is True
    assert settings.worker_tmp_dir in {"/dev/shm", None}  # noqa: S108 - gunicorn's heartbeat dir, a tmpfs


# --- health check script -----------------------------------------------------------------------------


def test_healthcheck_script_targets_the_liveness_view():
    healthcheck = runpy.run_path(str(DEPLOY / "healthcheck.py"))

    assert healthcheck["LIVENESS_PATH"] == LIVENESS_PATH
    assert view_class(LIVENESS_PATH) is LivenessView
    assert view_class(READINESS_PATH) is HealthView


def test_healthcheck_script_passes_on_200_and_fails_otherwise(httpserver):
    check = runpy.run_path(str(DEPLOY / "healthcheck.py"))["check"]
    httpserver.expect_request(LIVENESS_PATH).respond_with_json({"status": "alive"})
    httpserver.expect_request(READINESS_PATH).respond_with_json({"status": "unhealthy"}, status=503)

    assert check(LIVENESS_PATH, port=httpserver.port) is True
    assert check(READINESS_PATH, port=httpserver.port) is False
    httpserver.stop()
    assert check(LIVENESS_PATH, port=httpserver.port) is False
