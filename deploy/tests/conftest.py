"""Fixtures for the deployment-file tests: parsed Compose files, Dockerfile, Kubernetes base and env names."""

import re

import pytest

from deploy.tests.support import (
    DEPLOY,
    K8S,
    REPO,
    deploy_runtime_env_names,
    env_example_names,
    load_yaml_documents,
    parse_dockerfile,
    parse_env_file,
    settings_env_names,
)


@pytest.fixture(scope="session")
def known_env_names() -> set[str]:
    return settings_env_names() | deploy_runtime_env_names() | (env_example_names() or set())


@pytest.fixture(scope="session")
def dev_compose() -> dict:
    return load_yaml_documents(REPO / "docker-compose.yml")[0]


@pytest.fixture(scope="session")
def prod_compose() -> dict:
    return load_yaml_documents(REPO / "docker-compose.prod.yml")[0]


@pytest.fixture(scope="session")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(REPO / "Dockerfile")


@pytest.fixture(scope="session")
def gunicorn_port() -> int:
    """The port deploy/gunicorn.conf.py binds when PORT is not set."""
    match = re.search(r"""_env_int\("PORT",\s*(\d+)\)""", (DEPLOY / "gunicorn.conf.py").read_text())
    assert match, "deploy/gunicorn.conf.py no longer reads PORT with a default"
    return int(match.group(1))


@pytest.fixture(scope="session")
def k8s_base() -> dict[tuple[str, str], dict]:
    """Every object of the base kustomization, keyed by (kind, name)."""
    kustomization = load_yaml_documents(K8S / "base" / "kustomization.yaml")[0]
    objects = {}
    for resource in kustomization["resources"]:
        for doc in load_yaml_documents(K8S / "base" / resource):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


@pytest.fixture(scope="session")
def k8s_config() -> dict[str, str]:
    """The production ConfigMap's data: base/config.env with overlays/production/config.env merged over it."""
    return parse_env_file(K8S / "base" / "config.env") | parse_env_file(K8S / "overlays" / "production" / "config.env")
