"""Kubernetes manifests (kustomize base + production overlay), checked against the URLconf, image and settings."""

import re
import shutil
import subprocess

import pytest
import yaml
from django.urls import resolve

from deploy.tests.support import (
    ENTRYPOINT_COMMANDS,
    K8S,
    load_yaml_documents,
    parse_env_file,
)
from users.api.health import HealthView, LivenessView

APP_IMAGE = "user-service"
WORKLOADS = [
    ("Deployment", "user-service-web"),
    ("Deployment", "user-service-worker"),
    ("Deployment", "user-service-beat"),
    ("Job", "user-service-migrate"),
]
OVERLAY = K8S / "overlays" / "production"


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def all_containers(obj: dict) -> list[dict]:
    spec = pod_spec(obj)
    return spec.get("initContainers", []) + spec["containers"]


def kustomization_files(directory) -> list:
    """Every file a kustomization names: resources, patches, generator env files."""
    kustomization = load_yaml_documents(directory / "kustomization.yaml")[0]
    files = list(kustomization.get("resources", []))
    files += [patch["path"] for patch in kustomization.get("patches", []) if "path" in patch]
    for generator in kustomization.get("configMapGenerator", []) + kustomization.get("secretGenerator", []):
        files += generator.get("envs", []) + [entry.split("=")[-1] for entry in generator.get("files", [])]
    return files


@pytest.fixture(scope="module")
def secret_example() -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in load_yaml_documents(K8S / "secret.example.yaml")}


@pytest.fixture(scope="module")
def rendered_overlay() -> list[dict]:
    """The production overlay built by `kubectl kustomize` (kubectl ships with this machine image)."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is required to render the kustomize overlay"
    result = subprocess.run([kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# --- kustomize structure -----------------------------------------------------------------------------


@pytest.mark.parametrize("directory", [K8S / "base", OVERLAY], ids=["base", "production"])
def test_kustomization_files_exist(directory):
    files = kustomization_files(directory)

    assert files
    for name in files:
        assert (directory / name).exists(), f"{directory.name}/kustomization.yaml names missing {name}"


def test_base_is_namespace_agnostic_and_commits_no_secret(k8s_base):
    base = load_yaml_documents(K8S / "base" / "kustomization.yaml")[0]

    assert "namespace" not in base
    assert {kind for kind, _ in k8s_base} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "Ingress",
    }
    assert all("namespace" not in obj["metadata"] for obj in k8s_base.values())
    assert "secretGenerator" not in base


def test_overlay_sets_namespace_image_tag_and_replicas():
    overlay = load_yaml_documents(OVERLAY / "kustomization.yaml")[0]
    image = next(entry for entry in overlay["images"] if entry["name"] == APP_IMAGE)

    assert overlay["namespace"] == "user-service"
    assert overlay["resources"] == ["../../base"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", image["newTag"])
    assert {entry["name"]: entry["count"] for entry in overlay["replicas"]} == {"user-service-worker": 2}
    hpa = load_yaml_documents(OVERLAY / "web-hpa-patch.yaml")[0]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)


# --- workloads ---------------------------------------------------------------------------------------


def test_every_app_container_runs_the_one_image_with_a_known_command(k8s_base):
    for key in WORKLOADS:
        for container in all_containers(k8s_base[key]):
            assert container["image"] == APP_IMAGE, (key, container["name"])
            assert container["args"][0] in ENTRYPOINT_COMMANDS | {"sh"}, (key, container["name"])
    commands = {key[1]: k8s_base[key]["spec"]["template"]["spec"]["containers"][0]["args"] for key in WORKLOADS}
    assert commands == {
        "user-service-web": ["web"],
        "user-service-worker": ["worker"],
        "user-service-beat": ["beat"],
        "user-service-migrate": ["migrate"],
    }


@pytest.mark.parametrize("key", WORKLOADS, ids=lambda key: key[1])
def test_pods_run_as_uid_10001_on_a_read_only_root(k8s_base, key):
    spec = pod_spec(k8s_base[key])
    volumes = {volume["name"]: volume for volume in spec["volumes"]}

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["automountServiceAccountToken"] is False
    for container in all_containers(k8s_base[key]):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 10001
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp must be a writable emptyDir"  # noqa: S108
        for section in ("requests", "limits"):
            assert set(container["resources"][section]) == {"cpu", "memory"}, (container["name"], section)


def test_web_probes_resolve_in_the_urlconf_and_send_an_allowed_host(k8s_base, k8s_config):
    web = pod_spec(k8s_base[("Deployment", "user-service-web")])["containers"][0]
    allowed_hosts = k8s_config["ALLOWED_HOSTS"].split(",")

    assert resolve(web["readinessProbe"]["httpGet"]["path"]).func.view_class is HealthView
    assert web["readinessProbe"]["httpGet"]["path"] == "/api/v1/users/health/"
    assert resolve(web["livenessProbe"]["httpGet"]["path"]).func.view_class is LivenessView
    assert resolve(web["startupProbe"]["httpGet"]["path"]).func.view_class is LivenessView
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        http_get = web[probe]["httpGet"]
        assert http_get["port"] == "http"
        host = {header["name"]: header["value"] for header in http_get["httpHeaders"]}["Host"]
        assert host in allowed_hosts, f"{probe} would get 400 from ALLOWED_HOSTS"


def test_web_container_port_matches_gunicorn_and_the_service(k8s_base, k8s_config, gunicorn_port):
    web = pod_spec(k8s_base[("Deployment", "user-service-web")])["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in web["ports"]}
    service = k8s_base[("Service", "user-service")]

    assert ports == {"http": gunicorn_port}
    assert int(k8s_config["PORT"]) == gunicorn_port
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    web_labels = k8s_base[("Deployment", "user-service-web")]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= web_labels.items()


def test_web_waits_for_migrations_before_serving(k8s_base):
    init = pod_spec(k8s_base[("Deployment", "user-service-web")])["initContainers"]

    assert [container["name"] for container in init] == ["wait-for-migrations"]
    assert "python manage.py migrate --check" in init[0]["args"][-1]


def test_web_is_scaled_by_the_hpa_and_protected_by_the_pdb(k8s_base):
    web = k8s_base[("Deployment", "user-service-web")]
    hpa = k8s_base[("HorizontalPodAutoscaler", "user-service-web")]
    pdb = k8s_base[("PodDisruptionBudget", "user-service-web")]
    labels = web["spec"]["template"]["metadata"]["labels"]

    assert "replicas" not in web["spec"], "the HPA owns the web replica count"
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "user-service-web"}
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_beat_is_a_single_replica_replaced_with_recreate(k8s_base):
    beat = k8s_base[("Deployment", "user-service-beat")]

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    overlay_text = "".join(path.read_text() for path in OVERLAY.iterdir() if path.suffix == ".yaml")
    assert "user-service-beat" not in overlay_text


def test_migration_job_runs_once_and_does_not_restart_forever(k8s_base):
    job = k8s_base[("Job", "user-service-migrate")]

    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] <= 5
    assert job["spec"]["activeDeadlineSeconds"] > 0


def test_ingress_routes_the_public_paths_to_the_service_and_never_metrics(k8s_base):
    ingress = k8s_base[("Ingress", "user-service")]
    service = k8s_base[("Service", "user-service")]
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    service_ports = {port["name"] for port in service["spec"]["ports"]}

    assert {path["path"] for path in paths} == {"/api/", "/.well-known/", "/admin/", "/static/"}
    for path in paths:
        assert path["backend"]["service"]["name"] == "user-service"
        assert path["backend"]["service"]["port"]["name"] in service_ports
    assert ingress["spec"]["tls"][0]["secretName"]
    assert resolve("/api/v1/users/health/").func.view_class is HealthView  # reachable through /api/


# --- configuration and secrets -----------------------------------------------------------------------


def test_config_and_secret_env_vars_are_read_by_the_code(k8s_config, secret_example, known_env_names):
    secret_keys = set(secret_example["user-service-secrets"]["stringData"])

    assert set(k8s_config) - known_env_names == set()
    assert secret_keys - known_env_names == set()
    assert set(k8s_config).isdisjoint(secret_keys)
    assert {"SECRET_KEY", "DB_PASSWORD"} <= secret_keys
    assert {"SECRET_KEY", "DB_PASSWORD", "EMAIL_HOST_PASSWORD", "JWT_PRIVATE_KEY"}.isdisjoint(k8s_config)


def test_production_config_is_a_real_production_config(k8s_config):
    assert k8s_config["DEBUG"] == "False"
    assert k8s_config["TRUSTED_PROXY_COUNT"] == "1"
    assert k8s_config["MIGRATE_ON_START"] == "false"
    assert k8s_config["DB_HOST"]
    assert "localhost" in k8s_config["ALLOWED_HOSTS"].split(",")


def test_workloads_reference_the_config_the_secrets_and_the_signing_key(k8s_base, k8s_config, secret_example):
    key_file = k8s_config["JWT_PRIVATE_KEY_FILE"]
    key_dir, key_name = key_file.rsplit("/", 1)

    assert key_name in secret_example["user-service-jwt"]["stringData"]
    for key in WORKLOADS:
        volumes = {volume["name"]: volume for volume in pod_spec(k8s_base[key])["volumes"]}
        for container in all_containers(k8s_base[key]):
            refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
            assert refs == ["user-service-config", "user-service-secrets"], (key, container["name"])
            mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
            assert mounts[key_dir]["readOnly"] is True
            assert volumes[mounts[key_dir]["name"]]["secret"]["secretName"] == "user-service-jwt"


def test_secret_example_holds_placeholders_only(secret_example):
    for secret in secret_example.values():
        for key, value in secret["stringData"].items():
            assert "<" in value, f"{key} looks like a real value"


def test_generated_configmap_env_files_parse():
    for path in (K8S / "base" / "config.env", OVERLAY / "config.env"):
        values = parse_env_file(path)
        assert values
        assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", key) for key in values), path


# --- the overlay as kustomize builds it ----------------------------------------------------------------


def test_rendered_overlay_uses_the_tagged_image_and_hashed_config(rendered_overlay):
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in rendered_overlay}
    config_name = next(name for kind, name in objects if kind == "ConfigMap")
    overlay = load_yaml_documents(OVERLAY / "kustomization.yaml")[0]
    image = next(entry for entry in overlay["images"] if entry["name"] == APP_IMAGE)

    assert re.fullmatch(r"user-service-config-[a-z0-9]{10}", config_name)
    assert all(doc["metadata"]["namespace"] == "user-service" for doc in rendered_overlay)
    for key in WORKLOADS:
        for container in all_containers(objects[key]):
            assert container["image"] == f"{image['newName']}:{image['newTag']}"
            assert container["envFrom"][0]["configMapRef"]["name"] == config_name
    assert objects[("Deployment", "user-service-beat")]["spec"]["replicas"] == 1
    assert objects[("Deployment", "user-service-worker")]["spec"]["replicas"] == 2
    assert objects[("ConfigMap", config_name)]["data"]["DB_HOST"] != "postgres"  # the overlay's own database
    assert objects[("Ingress", "user-service")]["spec"]["rules"][0]["host"] == "users.school.example"


def test_rendered_overlay_validates_against_the_kubernetes_schemas(rendered_overlay):
    import kubernetes_validate

    for doc in rendered_overlay:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
