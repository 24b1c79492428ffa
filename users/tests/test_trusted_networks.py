"""Trusted callers: THROTTLE_EXEMPT_NETWORKS (no per-IP throttle or lockout) and LEGACY_INTERNAL_NETWORKS."""

import ipaddress
import logging
import os
import subprocess
import sys
from typing import Any

import pytest
from prometheus_client import REGISTRY
from rest_framework import status
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from users.http import address_in_networks
from users.models import UserType

API = "/api/v1/users"
FRONTEND = "10.20.0.5"
ATTACKER = "203.0.113.9"
SIBLING = "10.30.0.7"
OUTSIDER = "198.51.100.4"
pytestmark = pytest.mark.django_db


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


@pytest.fixture
def trusted_frontend(settings):
    settings.THROTTLE_EXEMPT_NETWORKS = _networks("10.20.0.0/24")
    return settings


@pytest.fixture
def legacy_siblings(settings):
    settings.LEGACY_INTERNAL_NETWORKS = _networks("10.30.0.0/16")
    return settings


@pytest.fixture
def behind_one_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}  # what settings derive from it
    return settings


@pytest.fixture
def students(make_user):
    def make(count: int) -> list:
        return [
            make_user(user_type=UserType.STUDENT, username=f"pupil{n}", email=f"pupil{n}@school.test")
            for n in range(count)
        ]

    return make


def _login(user, password: str = TEST_PASSWORD, **extra: Any) -> int:
    body = {"username": user.email, "password": password}
    return APIClient().post(f"{API}/login/", body, format="json", **extra).status_code


def _legacy_calls(endpoint: str) -> float:
    return REGISTRY.get_sample_value("ums_legacy_anonymous_calls_total", {"endpoint": endpoint}) or 0.0


class TestAddressInNetworks:
    def test_matches_ipv4_ipv6_and_mapped_addresses_and_rejects_the_rest(self):
        networks = _networks("10.20.0.0/24", "fd00::/8")

        assert address_in_networks("10.20.0.255", networks)
        assert address_in_networks("fd00::1", networks)
        assert address_in_networks("::ffff:10.20.0.5", networks)
        assert not address_in_networks("10.20.1.0", networks)
        assert not address_in_networks("not-an-ip", networks)
        assert not address_in_networks(None, networks)
        assert not address_in_networks("10.20.0.5", ())

    @pytest.mark.parametrize("name", ["THROTTLE_EXEMPT_NETWORKS", "LEGACY_INTERNAL_NETWORKS"])
    def test_a_malformed_cidr_stops_start_up_naming_the_variable(self, name):
        env = {**os.environ, name: "10.0.0.0/8,10.0.0.300/24"}

        result = subprocess.run(
            [sys.executable, "-c", "import user_service.settings"], env=env, capture_output=True, text=True, check=False
        )

        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
        assert f"{name}: '10.0.0.300/24'" in result.stderr


class TestThrottleExemptNetworks:
    def test_trusted_frontend_logs_in_a_hundred_students_in_a_row(self, trusted_frontend, students):
        pupils = students(100)

        codes = [_login(pupil, REMOTE_ADDR=FRONTEND) for pupil in pupils]

        assert codes == [status.HTTP_200_OK] * 100

    def test_an_untrusted_address_still_gets_the_per_ip_throttle(self, trusted_frontend, students):
        pupils = students(61)  # the login rate is 60/min per IP

        codes = [_login(pupil, REMOTE_ADDR=ATTACKER) for pupil in pupils]

        assert codes[:60] == [status.HTTP_200_OK] * 60
        assert codes[60] == status.HTTP_429_TOO_MANY_REQUESTS

    def test_wrong_passwords_from_the_trusted_address_do_not_lock_it(self, trusted_frontend, students, settings):
        settings.LOGIN_IP_THRESHOLD = 3
        pupils = students(5)
        for pupil in pupils[:4]:
            _login(pupil, "wrong-password", REMOTE_ADDR=FRONTEND)

        trusted = _login(pupils[4], REMOTE_ADDR=FRONTEND)

        assert trusted == status.HTTP_200_OK

    def test_wrong_passwords_from_an_untrusted_address_lock_it(self, trusted_frontend, students, settings):
        settings.LOGIN_IP_THRESHOLD = 3
        pupils = students(5)
        for pupil in pupils[:4]:
            _login(pupil, "wrong-password", REMOTE_ADDR=ATTACKER)

        locked = _login(pupils[4], REMOTE_ADDR=ATTACKER)
        elsewhere = _login(pupils[4], REMOTE_ADDR=FRONTEND)

        assert locked == status.HTTP_429_TOO_MANY_REQUESTS
        assert elsewhere == status.HTTP_200_OK

    def test_the_account_lockout_still_applies_from_the_trusted_address(self, trusted_frontend, student, settings):
        wrong = [
            _login(student, "wrong-password", REMOTE_ADDR=FRONTEND) for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD)
        ]

        right = _login(student, REMOTE_ADDR=FRONTEND)

        assert wrong == [status.HTTP_401_UNAUTHORIZED] * settings.LOGIN_LOCKOUT_THRESHOLD
        assert right == status.HTTP_429_TOO_MANY_REQUESTS

    def test_behind_a_trusted_proxy_the_forwarded_address_decides(self, trusted_frontend, behind_one_proxy, students):
        behind_one_proxy.LOGIN_IP_THRESHOLD = 3
        pupils = students(100)
        proxy = "172.16.0.2"  # the proxy's own address is neither trusted nor counted

        trusted = [_login(pupil, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=FRONTEND) for pupil in pupils[:70]]
        untrusted = [_login(pupil, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=ATTACKER) for pupil in pupils[70:]]
        spoofed = _login(pupils[0], REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"{FRONTEND}, {ATTACKER}")

        assert trusted == [status.HTTP_200_OK] * 70
        assert untrusted == [status.HTTP_200_OK] * 30  # a separate count per forwarded address
        assert spoofed == status.HTTP_200_OK  # the attacker's 31st: counted as the attacker, not the frontend
        for pupil in pupils[1:5]:
            _login(pupil, "wrong-password", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"{FRONTEND}, {ATTACKER}")
        assert _login(pupils[5], REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=ATTACKER) == status.HTTP_429_TOO_MANY_REQUESTS
        assert _login(pupils[5], REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=FRONTEND) == status.HTTP_200_OK

    def test_the_account_lockout_applies_through_the_proxy(self, trusted_frontend, behind_one_proxy, student, settings):
        forwarded = {"REMOTE_ADDR": "172.16.0.2", "HTTP_X_FORWARDED_FOR": FRONTEND}
        for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD):
            _login(student, "wrong-password", **forwarded)

        assert _login(student, **forwarded) == status.HTTP_429_TOO_MANY_REQUESTS


class TestLegacyInternalNetworks:
    @pytest.fixture
    def people(self, make_user) -> list:
        return [
            make_user(user_type=UserType.STUDENT, username="ann", email="ann@school.test", first_name="Ann"),
            make_user(user_type=UserType.STAFF, username="bob", email="bob@school.test", first_name="Bob"),
        ]

    def test_by_default_anonymous_reads_are_refused(self, people):
        bulk = APIClient().post(f"{API}/bulk_info/", {"user_ids": [str(people[0].pk)]}, format="json")
        listed = APIClient().get(f"{API}/users/", REMOTE_ADDR=SIBLING)

        assert bulk.status_code == status.HTTP_401_UNAUTHORIZED
        assert listed.status_code == status.HTTP_401_UNAUTHORIZED

    def test_bulk_info_from_inside_takes_string_ids_logs_and_counts(self, legacy_siblings, people, caplog):
        before = _legacy_calls("users:bulk-info")
        ids = [str(person.pk) for person in people]

        with caplog.at_level(logging.WARNING, logger="users.authentication"):
            response = APIClient().post(f"{API}/bulk_info/", {"user_ids": ids}, format="json", REMOTE_ADDR=SIBLING)

        assert response.status_code == status.HTTP_200_OK
        assert sorted((u["id"], u["first_name"], u["email"]) for u in response.json()) == sorted(
            (p.pk, p.first_name, p.email) for p in people
        )
        assert _legacy_calls("users:bulk-info") == before + 1
        warnings = [r for r in caplog.records if r.name == "users.authentication"]
        assert len(warnings) == 1
        assert SIBLING in warnings[0].getMessage()
        assert "users:bulk-info" in warnings[0].getMessage()

    def test_users_list_from_inside_is_served_and_counted(self, legacy_siblings, people):
        before = _legacy_calls("users:user-list")

        response = APIClient().get(f"{API}/users/", REMOTE_ADDR=SIBLING)

        assert response.status_code == status.HTTP_200_OK
        listed = {(u["id"], u["first_name"], u["last_name"], u["email"]) for u in response.json()["results"]}
        assert {(p.pk, p.first_name, p.last_name, p.email) for p in people} <= listed
        assert _legacy_calls("users:user-list") == before + 1

    def test_from_outside_the_two_reads_stay_refused(self, legacy_siblings, people):
        before = _legacy_calls("users:bulk-info"), _legacy_calls("users:user-list")

        bulk = APIClient().post(f"{API}/bulk_info/", {"user_ids": ["1"]}, format="json", REMOTE_ADDR=OUTSIDER)
        listed = APIClient().get(f"{API}/users/", REMOTE_ADDR=OUTSIDER)

        assert bulk.status_code == status.HTTP_401_UNAUTHORIZED
        assert listed.status_code == status.HTTP_401_UNAUTHORIZED
        assert (_legacy_calls("users:bulk-info"), _legacy_calls("users:user-list")) == before

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("get", "/students/"),
            ("get", "/staff/"),
            ("get", "/profile/"),
            ("get", "/revocations/"),
            ("get", "/user/1/"),
            ("get", "/"),  # the users collection at the prefix: the list of users/, not its migration mode
            ("get", "/1/"),
            ("post", "/token/introspect/"),
        ],
    )
    def test_every_other_endpoint_stays_refused_from_inside(self, legacy_siblings, people, method, path):
        response = getattr(APIClient(), method)(f"{API}{path}", REMOTE_ADDR=SIBLING)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED

    def test_a_bad_token_from_inside_is_refused_not_served_by_address(self, legacy_siblings, people):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

        response = client.get(f"{API}/users/", REMOTE_ADDR=SIBLING)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED

    def test_behind_a_trusted_proxy_the_forwarded_address_decides(self, legacy_siblings, behind_one_proxy, people):
        inside = APIClient().get(f"{API}/users/", REMOTE_ADDR="172.16.0.2", HTTP_X_FORWARDED_FOR=SIBLING)
        spoofed = APIClient().get(
            f"{API}/users/", REMOTE_ADDR="172.16.0.2", HTTP_X_FORWARDED_FOR=f"{SIBLING}, {OUTSIDER}"
        )

        assert inside.status_code == status.HTTP_200_OK
        assert spoofed.status_code == status.HTTP_401_UNAUTHORIZED
