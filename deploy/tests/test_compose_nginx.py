"""Compose files (development and production) and the nginx config, checked against the code and each other."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from deploy.tests.support import (
    COMPOSE_ONLY_VARS,
    DEPLOY,
    REPO,
    deploy_runtime_env_names,
    env_example_names,
    load_yaml_documents,
    view_class,
)
from users.api.health import LivenessView


def app_services(compose: dict) -> dict[str, dict]:
    """Services that run the user-service image (built here or named by USER_SERVICE_IMAGE)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if "build" in service or "USER_SERVICE_IMAGE" in str(service.get("image", ""))
    }


def is_one_shot(compose: dict, name: str) -> bool:
    """A job that exits (restart "no") and whose dependents wait for it to complete, not to be healthy."""
    if compose["services"][name].get("restart") != "no":
        return False
    waits = [
        spec["condition"]
        for service in compose["services"].values()
        for dep, spec in (service.get("depends_on") or {}).items()
        if dep == name
    ]
    return bool(waits) and all(condition == "service_completed_successfully" for condition in waits)


# --- Compose, both files -----------------------------------------------------------------------------


@pytest.fixture(params=["docker-compose.yml", "docker-compose.prod.yml"])
def compose(request):
    return load_yaml_documents(REPO / request.param)[0]


def test_compose_file_validates_against_the_compose_spec(compose):
    spec = importlib.util.find_spec("check_jsonschema")  # ships the compose-spec schema; not imported
    assert spec is not None, "check-jsonschema (requirements-dev.txt) is required"
    import jsonschema

    schema_path = Path(spec.origin).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text())

    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(compose), key=str)
    assert [error.message for error in errors] == []


def test_compose_every_service_has_a_healthcheck_or_is_a_one_shot(compose):
    for name, service in compose["services"].items():
        healthcheck = service.get("healthcheck")
        if is_one_shot(compose, name):
            continue
        assert healthcheck, f"{name} has no healthcheck"
        assert not healthcheck.get("disable")
        assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}


def test_compose_depends_on_waits_for_health_or_completion(compose):
    for name, service in compose["services"].items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must name a condition"
        for dependency, spec in depends_on.items():
            condition = spec["condition"]
            if condition == "service_completed_successfully":
                assert is_one_shot(compose, dependency), f"{name} -> {dependency}"
            else:
                assert condition == "service_healthy", f"{name} -> {dependency}: {condition}"
                assert "healthcheck" in compose["services"][dependency], f"{dependency} cannot become healthy"


def test_compose_healthchecks_through_the_script_hit_real_views(compose):
    for name, service in compose["services"].items():
        test = service.get("healthcheck", {}).get("test", [])
        if any(str(part).endswith("deploy/healthcheck.py") for part in test):
            assert view_class(test[-1]) is LivenessView, name


def test_compose_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/", "$")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_compose_app_services_find_the_stack_whatever_env_file_says(compose):
    for name, service in app_services(compose).items():
        env = service["environment"]
        assert env["DB_HOST"] == "db", name
        assert env["REDIS_URL"] == env["CELERY_BROKER_URL"] == "redis://redis:6379/0", name
        assert {"db", "redis"} <= set(compose["services"])


def test_compose_env_vars_are_read_by_the_code(compose, known_env_names):
    for name, service in app_services(compose).items():
        unknown = set(service.get("environment", {})) - known_env_names
        assert unknown == set(), f"{name} sets variables nothing reads: {sorted(unknown)}"


@pytest.mark.parametrize("filename", ["docker-compose.yml", "docker-compose.prod.yml"])
def test_compose_interpolated_variables_are_known(filename, known_env_names):
    text = re.sub(r"\$\$", "", (REPO / filename).read_text())
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))

    assert used - known_env_names - COMPOSE_ONLY_VARS == set()


def test_env_example_documents_the_deploy_variables():
    documented = env_example_names()
    assert documented is not None, ".env.example is missing"
    missing = (deploy_runtime_env_names() | COMPOSE_ONLY_VARS) - documented

    assert missing == set()


# --- Compose, development ----------------------------------------------------------------------------


def test_dev_compose_runs_the_autoreloading_server_on_the_source(dev_compose):
    web = dev_compose["services"]["web"]

    assert web["command"] == ["python", "manage.py", "runserver", "0.0.0.0:8000"]
    assert web["environment"]["DEBUG"] == "True"
    assert ".:/app" in web["volumes"]
    assert "127.0.0.1:8000:8000" in web["ports"]
    assert web["env_file"] == [{"path": ".env", "required": False}]
    assert {"worker", "beat", "db", "redis", "mailpit"} <= set(dev_compose["services"])
    assert dev_compose["services"]["worker"]["command"] == ["worker"]
    assert dev_compose["services"]["beat"]["command"] == ["beat"]


def test_dev_compose_backing_services(dev_compose):
    services = dev_compose["services"]
    env = services["web"]["environment"]

    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["mailpit"]["image"].startswith("axllent/mailpit:")
    assert "127.0.0.1:8025:8025" in services["mailpit"]["ports"]
    assert (env["EMAIL_HOST"], env["EMAIL_PORT"], env["EMAIL_USE_TLS"]) == ("mailpit", "1025", "False")
    assert (env["DB_HOST"], env["REDIS_URL"]) == ("db", "redis://redis:6379/0")
    assert env["DB_PASSWORD"] == services["db"]["environment"]["POSTGRES_PASSWORD"]
    assert env["DB_NAME"] == services["db"]["environment"]["POSTGRES_DB"]


# --- Compose, production -----------------------------------------------------------------------------


def test_prod_compose_runs_the_image_without_source_mounts(prod_compose):
    apps = app_services(prod_compose)

    assert set(apps) == {"migrate", "static", "web", "worker", "beat"}
    assert len({service["image"] for service in apps.values()}) == 1
    for name, service in prod_compose["services"].items():
        assert "build" not in service, name
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert not target.startswith("/app"), f"{name} mounts over the code: {volume}"
            if source.startswith((".", "/", "$")):
                assert name == "nginx", f"{name} bind-mounts {source}"


def test_prod_compose_publishes_ports_only_on_nginx(prod_compose):
    published = {name for name, service in prod_compose["services"].items() if service.get("ports")}

    assert published == {"nginx"}
    assert prod_compose["services"]["nginx"]["ports"] == ["80:80", "443:443"]


def test_prod_compose_long_running_services_restart_and_are_limited(prod_compose):
    for name, service in prod_compose["services"].items():
        if is_one_shot(prod_compose, name):
            continue
        assert service["restart"] in {"unless-stopped", "always"}, name
        limits = service["deploy"]["resources"]["limits"]
        assert limits["cpus"], name
        assert limits["memory"], name


def test_prod_compose_production_settings_and_secrets(prod_compose):
    web = prod_compose["services"]["web"]
    env = web["environment"]

    assert env["DEBUG"] == "False"
    assert env["TRUSTED_PROXY_COUNT"] == "1"
    assert web["command"] == ["web"]
    assert web["env_file"] == ".env"
    secret_name = env["JWT_PRIVATE_KEY_FILE"].removeprefix("/run/secrets/")
    assert secret_name in prod_compose["secrets"]
    for name, service in app_services(prod_compose).items():
        assert secret_name in service["secrets"], name
        assert service["read_only"] is True, name
        assert {"SECRET_KEY", "DB_PASSWORD", "EMAIL_HOST_PASSWORD", "JWT_PRIVATE_KEY"}.isdisjoint(
            service["environment"]
        ), f"{name} carries a secret inline"
    assert env["ALLOWED_HOSTS"].startswith("localhost,127.0.0.1,")  # the container health check's host


def test_prod_compose_runs_exactly_one_beat_and_migrates_once(prod_compose):
    services = prod_compose["services"]
    beats = [name for name, service in services.items() if service.get("command") == ["beat"]]

    assert beats == ["beat"]
    assert services["beat"]["deploy"].get("replicas", 1) == 1
    assert services["migrate"]["command"] == ["migrate"]
    assert services["web"]["environment"]["MIGRATE_ON_START"] == "false"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_prod_compose_static_volume_feeds_nginx(prod_compose, dockerfile):
    services = prod_compose["services"]
    static_root = next(
        value.split("=", 1)[1]
        for keyword, arguments in dockerfile
        if keyword == "ENV"
        for value in arguments.split()
        if value.startswith("STATIC_ROOT=")
    )
    nginx_conf = (DEPLOY / "nginx" / "nginx.conf").read_text()

    assert services["static"]["command"][-1] == f"cp -R {static_root}/. /srv/static/"
    assert "static:/srv/static" in services["static"]["volumes"]
    assert "static:/srv/static:ro" in services["nginx"]["volumes"]
    assert "alias /srv/static/;" in nginx_conf
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]


# --- nginx -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx_conf() -> str:
    return (DEPLOY / "nginx" / "nginx.conf").read_text()


def test_nginx_upstream_is_the_web_service_on_the_gunicorn_port(nginx_conf, prod_compose, gunicorn_port):
    host, port = re.search(r"upstream user_service \{\s*(?:#.*\n\s*)*server ([\w.-]+):(\d+);", nginx_conf).groups()

    assert host == "web"
    assert host in prod_compose["services"]
    assert int(port) == gunicorn_port
    assert nginx_conf.count("proxy_pass http://user_service;") >= 1


def test_nginx_forwards_client_scheme_host_and_request_id(nginx_conf):
    for header in (
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $forwarded_proto;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Request-ID $request_id_out;",
    ):
        assert header in nginx_conf


def test_nginx_limits_compresses_secures_and_hides_metrics(nginx_conf):
    assert re.search(r"client_max_body_size \d+m;", nginx_conf)
    assert "gzip on;" in nginx_conf
    for header in ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert re.search(rf"add_header {header} .+ always;", nginx_conf), header
        assert f"proxy_hide_header {header};" in nginx_conf, header  # sent once, not twice
    assert re.search(r"location ~ \^/metrics\(/\|\$\) \{\s*return 404;", nginx_conf)
    assert "server_tokens off;" in nginx_conf


def test_nginx_health_location_matches_its_compose_healthcheck(nginx_conf, prod_compose):
    test = prod_compose["services"]["nginx"]["healthcheck"]["test"]
    path = test[-1].removeprefix("http://127.0.0.1")

    assert f"location = {path} {{" in nginx_conf


# --- The replaced system's callers: user-management:8000 -------------------------------------------


def test_callers_name_user_management_is_allowed_and_resolves_in_both_compose_files(dev_compose, prod_compose):
    """The frontend, gateway and sibling services call http://user-management:8000: the name must resolve on the
    Compose network, to something listening on 8000, and Django must accept it as a Host."""
    for compose, entrance, port in ((dev_compose, "web", "8000:8000"), (prod_compose, "nginx", "8000")):
        aliases = compose["services"][entrance]["networks"]["default"]["aliases"]
        assert "user-management" in aliases, entrance
        exposed = compose["services"][entrance].get("expose", []) + compose["services"][entrance].get("ports", [])
        assert any(str(item).endswith(port) for item in exposed), entrance
        for name, service in app_services(compose).items():
            assert "user-management" in service["environment"]["ALLOWED_HOSTS"].split(","), name


def test_nginx_internal_port_is_uncompressed_and_hides_metrics(nginx_conf):
    internal = nginx_conf[nginx_conf.index("listen 8000;") :]

    assert "gzip off;" in internal.split("location", 1)[0]
    assert re.search(r"location ~ \^/metrics\(/\|\$\) \{\s*return 404;", internal)
    assert re.search(r"map \$server_port \$forwarded_proto \{\s*8000 https;\s*default \$scheme;", nginx_conf)
