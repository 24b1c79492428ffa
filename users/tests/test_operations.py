"""Health, docs, schema, run modes (embedded, production refusals, database down) and the admin."""

import subprocess
import sys
import threading
import time

import pytest
import requests
from django.core.management import call_command
from rest_framework import status

from conftest import TEST_PASSWORD
from users.models import AdminHOD, CustomUser, UserType
from users.tests.servers import ROOT, GunicornServer, clean_env, closed_port

API = "/api/v1/users"


class TestHealth:
    @pytest.mark.django_db
    def test_healthy_with_real_database_cache_and_broker(self, api_client):
        response = api_client.get(f"{API}/health/")

        assert response.status_code == status.HTTP_200_OK
        body = response.json()
        assert body["status"] == "healthy"
        assert {name: check["status"] for name, check in body["checks"].items()} == {
            "database": "ok",
            "cache": "ok",
            "broker": "ok",  # the test run uses the real Redis as broker
        }

    @pytest.mark.django_db
    def test_degraded_when_the_broker_is_down(self, api_client, settings, monkeypatch):
        from users.api import health

        monkeypatch.setattr(health, "_broker_client", None)
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"

        body = api_client.get(f"{API}/health/").json()

        assert body["status"] == "degraded"
        assert body["checks"]["broker"]["status"] == "down"
        monkeypatch.setattr(health, "_broker_client", None)

    def test_liveness_needs_nothing(self, api_client):
        response = api_client.get(f"{API}/health/live/")  # no database access is allowed in this test

        assert response.status_code == status.HTTP_200_OK
        assert response.json() == {"status": "alive"}


class TestDocs:
    @pytest.mark.django_db
    def test_schema_documents_every_endpoint_with_errors(self, api_client):
        response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

        assert response.status_code == status.HTTP_200_OK
        paths = response.json()["paths"]
        expected = {
            "register/": ("post", {"201", "400"}),
            "login/": ("post", {"200", "400", "401"}),
            "logout/": ("post", {"204", "401"}),
            "token/refresh/": ("post", {"200", "401"}),
            "profile/": ("patch", {"200", "400", "401"}),
            "change-password/": ("post", {"200", "400", "401"}),
            "sessions/": ("get", {"200", "401"}),
            "sessions/{session_id}/": ("delete", {"204", "401", "404"}),
            "validate-token/": ("get", {"200", "401"}),
            "health/": ("get", {"200", "503"}),
        }
        for path, (method, codes) in expected.items():
            operation = paths[f"/api/v1/users/{path}"][method]
            assert operation["summary"], path
            assert codes <= set(operation["responses"]), (path, set(operation["responses"]))

    @pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
    def test_ui_pages_use_local_assets(self, client, url):
        response = client.get(url)

        assert response.status_code == status.HTTP_200_OK
        html = response.content.decode()
        assert "/static/drf_spectacular_sidecar/" in html
        assert "cdn.jsdelivr.net" not in html


class TestAdmin:
    @pytest.mark.django_db
    def test_hod_enters_the_admin(self, client, hod):
        assert client.login(username=hod.username, password=TEST_PASSWORD)

        assert client.get("/admin/").status_code == status.HTTP_200_OK
        assert client.get("/admin/users/customuser/").status_code == status.HTTP_200_OK
        assert client.get(f"/admin/users/customuser/{hod.pk}/change/").status_code == status.HTTP_200_OK

    @pytest.mark.django_db
    @pytest.mark.parametrize("role", ["staff", "student"])
    def test_staff_and_students_cannot_enter(self, request, client, role):
        user = request.getfixturevalue(role)
        CustomUser.objects.filter(pk=user.pk).update(is_staff=True)  # even if someone flagged them
        client.login(username=user.username, password=TEST_PASSWORD)

        response = client.get("/admin/users/customuser/")

        assert response.status_code == status.HTTP_302_FOUND
        assert "/admin/login/" in response["Location"]

    @pytest.mark.django_db
    def test_adding_a_user_in_the_admin_creates_its_profile(self, client, hod):
        client.login(username=hod.username, password=TEST_PASSWORD)

        response = client.post(
            "/admin/users/customuser/add/",
            {
                "username": "newhod",
                "email": "newhod@school.test",
                "user_type": UserType.HOD,
                "password1": "Admin-created-passphrase-1",
                "password2": "Admin-created-passphrase-1",
                "usable_password": "true",
            },
        )

        assert response.status_code == status.HTTP_302_FOUND, response.content[:2000]
        user = CustomUser.objects.get(username="newhod")
        assert AdminHOD.objects.filter(user=user).exists()
        assert user.is_staff is True

    @pytest.mark.django_db
    def test_role_cannot_be_changed_in_the_admin(self, client, hod, student):
        client.login(username=hod.username, password=TEST_PASSWORD)

        page = client.get(f"/admin/users/customuser/{student.pk}/change/").content.decode()

        assert 'name="user_type"' not in page  # shown read-only, not as an input

    @pytest.mark.django_db
    def test_createsuperuser_makes_an_hod_with_profile(self):
        call_command("createsuperuser", username="boss", email="boss@school.test", interactive=False, verbosity=0)

        user = CustomUser.objects.get(username="boss")
        assert user.user_type == UserType.HOD
        assert user.is_superuser
        assert user.is_staff
        assert AdminHOD.objects.filter(user=user).exists()


@pytest.mark.slow
class TestRunModes:
    def test_embedded_mode_starts_with_no_configuration(self, tmp_path):
        server = GunicornServer(clean_env(), tmp_path)
        try:
            health = requests.get(f"{server.url}{API}/health/", timeout=5)
            docs = requests.get(f"{server.url}/api/docs/", timeout=5)
            register = requests.post(
                f"{server.url}{API}/register/",
                json={"username": "emb", "email": "emb@school.test", "password": "Embedded-mode-passphrase"},
                timeout=10,
            )
            login = requests.post(
                f"{server.url}{API}/login/",
                json={"username": "emb", "password": "Embedded-mode-passphrase"},
                timeout=10,
            )
        finally:
            server.stop()

        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        assert health.json()["checks"]["broker"]["status"] == "skipped"  # eager Celery
        assert docs.status_code == 200
        assert register.status_code == 201
        assert login.status_code == 200
        assert (tmp_path / "db.sqlite3").exists()
        assert (tmp_path / "jwt_signing_key.pem").stat().st_mode & 0o777 == 0o600

    def test_embedded_mode_signs_a_person_in_to_an_app_once_per_code(self, tmp_path):
        """The embedded default has no Redis: codes are kept by SQLite and spent there (once)."""
        import json

        from users.tests.oidc_support import REDIRECT_URI, Browser, RelyingParty, callback_params

        env = clean_env()
        server = GunicornServer(env, tmp_path, static=False)
        try:
            password = "Embedded-mode-passphrase"
            registered = requests.post(
                f"{server.url}{API}/register/",
                json={"username": "emb", "email": "emb@school.test", "password": password},
                timeout=10,
            )
            command = [sys.executable, "manage.py", "create_oidc_client", "Library", "--redirect-uri", REDIRECT_URI]
            created = subprocess.run(
                [*command, "--first-party", "--json"],
                cwd=ROOT,
                env={**env, "VAR_DIR": str(tmp_path)},
                capture_output=True,
                text=True,
                check=True,
            )
            client = json.loads(created.stdout)
            endpoints = {"authorization_endpoint": f"{server.url}/oidc/authorize/"}
            endpoints["token_endpoint"] = f"{server.url}/oidc/token/"
            rp = RelyingParty(server.url, client["client_id"], client["client_secret"], endpoints)
            browser = Browser(server.url)
            callback = browser.sign_in(browser.get(rp.authorization_url()), "emb", password)
            code = callback_params(callback)["code"]
            tokens = rp.exchange(callback)
            replay = requests.post(
                endpoints["token_endpoint"],
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
                auth=(client["client_id"], client["client_secret"]),
                timeout=10,
            )
            browser.close()
        finally:
            server.stop()

        assert registered.status_code == 201
        assert tokens["access_token"]
        assert tokens["id_token"]
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_grant"

    def test_database_down_gives_503_fast_and_liveness_stays_up(self, tmp_path):
        env = clean_env(
            DB_HOST="127.0.0.1",
            DB_PORT=str(closed_port()),
            DEBUG="True",
            DB_CONNECT_TIMEOUT_SECONDS="2",
        )
        server = GunicornServer(env, tmp_path)
        try:
            started = time.monotonic()
            health = requests.get(f"{server.url}{API}/health/", timeout=10)
            login = requests.post(f"{server.url}{API}/login/", json={"username": "a", "password": "b"}, timeout=10)
            elapsed = time.monotonic() - started
            live = requests.get(f"{server.url}{API}/health/live/", timeout=5)
        finally:
            server.stop()

        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert login.status_code == 503
        assert login.json()["code"] == "database_unavailable"
        assert login.headers["Retry-After"]
        assert elapsed < 8
        assert live.status_code == 200


class TestProductionSettings:
    def _django_setup(self, **env: str) -> subprocess.CompletedProcess:
        code = "import django; django.setup()"
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=clean_env(DJANGO_SETTINGS_MODULE="user_service.settings", **env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_refuses_the_default_secret_key(self):
        result = self._django_setup(DEBUG="False")

        assert result.returncode != 0
        assert "SECRET_KEY" in result.stderr

    def test_refuses_a_missing_signing_key(self):
        result = self._django_setup(DEBUG="False", SECRET_KEY="s" * 64)

        assert result.returncode != 0
        assert "JWT_PRIVATE_KEY" in result.stderr

    def test_refuses_to_run_without_a_way_to_send_mail(self, settings):
        env = {"DEBUG": "False", "SECRET_KEY": "s" * 64, "JWT_PRIVATE_KEY_FILE": str(settings.JWT_PRIVATE_KEY_FILE)}
        result = self._django_setup(**env, EMAIL_BACKEND="", EMAIL_HOST="")

        assert result.returncode != 0
        assert "EMAIL_HOST" in result.stderr

    def test_refuses_to_run_without_a_key_for_second_factors(self, settings):
        env = {"DEBUG": "False", "SECRET_KEY": "s" * 64, "JWT_PRIVATE_KEY_FILE": str(settings.JWT_PRIVATE_KEY_FILE)}
        result = self._django_setup(**env, EMAIL_HOST="smtp.school.example")

        assert result.returncode != 0
        assert "MFA_ENCRYPTION_KEYS must be set" in result.stderr

    def test_refuses_a_malformed_key_for_second_factors(self):
        result = self._django_setup(DEBUG="True", MFA_ENCRYPTION_KEYS="not-a-fernet-key")

        assert result.returncode != 0
        assert "MFA_ENCRYPTION_KEYS: every key must be a Fernet key" in result.stderr

    def test_check_deploy_is_clean(self, tmp_path, settings):
        env = clean_env(
            DEBUG="False",
            SECRET_KEY="a-Very-long-random-production-secret-key-0123456789-abcdefghijklmnop",
            JWT_PRIVATE_KEY_FILE=str(settings.JWT_PRIVATE_KEY_FILE),
            DB_HOST="127.0.0.1",
            VAR_DIR=str(tmp_path),
            EMAIL_HOST="smtp.school.example",
            MFA_ENCRYPTION_KEYS="dGVzdC1vbmx5LW1mYS1rZXktbm90LWZvci1wcm9kISE=",
        )

        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert result.returncode == 0, result.stderr + result.stdout
        assert "no issues" in result.stdout


def test_every_setting_read_from_the_environment_is_documented():
    import re

    read = set(re.findall(r'config\("([A-Z0-9_]+)"', (ROOT / "user_service" / "settings.py").read_text()))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))

    assert read - documented == set()


@pytest.mark.django_db
def test_a_blank_gender_is_allowed_by_the_schema(api_client):
    """Found by the fuzzer: read-only choice fields lost their blank value, so a new student matched no schema."""
    schemas = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"][
        "schemas"
    ]

    gender = schemas["StudentProfile"]["properties"]["gender"]

    assert {"$ref": "#/components/schemas/BlankEnum"} in gender["oneOf"]
    assert schemas["BlankEnum"]["enum"] == [""]


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_schema_requests_both_succeed(monkeypatch):
    """Found by make fuzz: two first requests for the schema in one process (gunicorn's threads) crashed one of them
    in drf-spectacular's lazy loading of an optional extension's class. The import is slowed down to widen that
    window; the extension's state is put back as a fresh process has it."""
    from django.test import Client
    from drf_spectacular import plumbing
    from drf_spectacular.extensions import OpenApiSerializerExtension

    missing = "not_installed_package.serializers.Missing"

    class OptionalExtension(OpenApiSerializerExtension):
        target_class = missing
        optional = True

    real_import = plumbing.import_string

    def slow_import(path):
        if path == missing:
            time.sleep(0.2)
        return real_import(path)

    monkeypatch.setattr(plumbing, "import_string", slow_import)
    statuses: list[int] = []
    try:
        start = threading.Barrier(2)

        def fetch() -> None:
            start.wait()
            response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
            statuses.append(response.status_code)

        threads = [threading.Thread(target=fetch) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        OpenApiSerializerExtension._registry.remove(OptionalExtension)

    assert statuses == [200, 200]
