"""Readers shared by the deployment-file tests: YAML, env files, the Dockerfile, and the env names the code reads."""

import re
import shlex
from pathlib import Path

import yaml
from django.urls import resolve

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"

LIVENESS_PATH = "/api/v1/users/health/live/"
READINESS_PATH = "/api/v1/users/health/"
# Variables only Docker Compose itself reads (file interpolation), never the application.
COMPOSE_ONLY_VARS = {"USER_SERVICE_IMAGE", "NGINX_CERTS_DIR", "JWT_PRIVATE_KEY_PATH"}
# Commands the image's entrypoint understands (deploy/docker-entrypoint.sh).
ENTRYPOINT_COMMANDS = {"web", "worker", "beat", "migrate"}


def load_yaml_documents(path: Path) -> list:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def settings_env_names() -> set[str]:
    """Every name user_service/settings.py reads with python-decouple's ``config("NAME", ...)``."""
    source = (REPO / "user_service" / "settings.py").read_text()
    return set(re.findall(r"""\bconfig\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))


def deploy_runtime_env_names() -> set[str]:
    """Names the container's own start-up files read: deploy/gunicorn.conf.py, entrypoint, health check."""
    names: set[str] = set()
    for script in ("gunicorn.conf.py", "healthcheck.py"):
        source = (DEPLOY / script).read_text()
        names |= set(re.findall(r"""(?:_env_int|os\.environ\.get)\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))
    names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (DEPLOY / "docker-entrypoint.sh").read_text()))
    return names


def env_example_names() -> set[str] | None:
    """Names in .env.example (set or commented out), or None while the file does not exist."""
    path = REPO / ".env.example"
    if not path.exists():
        return None
    return set(re.findall(r"^\s*#?\s*([A-Z][A-Z0-9_]*)\s*=", path.read_text(), flags=re.MULTILINE))


def parse_env_file(path: Path) -> dict[str, str]:
    """A kustomize/Compose env file: KEY=VALUE lines, # comments."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """Instructions as (KEYWORD, arguments), continuation lines joined and comment lines dropped."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def exec_form(arguments: str) -> list[str]:
    """Arguments of CMD/ENTRYPOINT/HEALTHCHECK CMD: JSON exec form or shell words."""
    arguments = arguments.strip()
    if arguments.startswith("["):
        return yaml.safe_load(arguments)
    return shlex.split(arguments)


def view_class(path: str):
    """The class-based view a URL path resolves to in the project's URLconf."""
    return resolve(path).func.view_class
