"""Every security-relevant action leaves an audit record with the right fields."""

import pytest
from rest_framework import status

from conftest import TEST_PASSWORD
from users.models import SecurityEvent

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


def _events(type_):
    return list(SecurityEvent.objects.filter(type=type_).order_by("id"))


def test_login_success_and_failure(api_client, student):
    api_client.post(f"{API}/login/", {"username": student.username, "password": "nope"}, format="json")
    api_client.post(f"{API}/login/", {"username": "ghost", "password": "nope"}, format="json")
    api_client.post(
        f"{API}/login/",
        {"username": student.username, "password": TEST_PASSWORD},
        format="json",
        HTTP_USER_AGENT="ua/1",
    )

    failed = _events("login_failed")
    assert [(e.user_id, e.data["known_account"], e.ip) for e in failed] == [
        (student.pk, True, "127.0.0.1"),
        (None, False, "127.0.0.1"),
    ]
    (succeeded,) = _events("login_succeeded")
    assert succeeded.user_id == student.pk
    assert succeeded.user_agent == "ua/1"
    assert "session_id" in succeeded.data
    assert "nope" not in str([e.data for e in failed])  # never the password


def test_logout_revoke_password_change_and_refresh_reuse(client_for, api_client, student):
    first, second = client_for(student), client_for(student)
    second_id = next(s["id"] for s in second.get(f"{API}/sessions/").json() if s["is_current"])
    first.delete(f"{API}/sessions/{second_id}/")
    new = "Brand-new-passphrase-91"
    first.post(
        f"{API}/change-password/",
        {"old_password": TEST_PASSWORD, "new_password": new, "confirm_password": new},
        format="json",
    )
    refreshed = api_client.post(
        f"{API}/token/refresh/", {"refresh_token": first.tokens["refresh_token"]}, format="json"
    )
    assert refreshed.status_code == status.HTTP_200_OK
    api_client.post(f"{API}/token/refresh/", {"refresh_token": first.tokens["refresh_token"]}, format="json")
    third = client_for_password(api_client, student, new)
    third.post(f"{API}/logout/", {}, format="json")

    assert _events("session_revoked")[0].data == {"session_id": second_id}
    assert _events("password_changed")[0].user_id == student.pk
    assert _events("refresh_reuse")[0].user_id == student.pk
    assert _events("logout")[0].user_id == student.pk
    assert len(_events("logout")[0].data["session_ids"]) == 1


def client_for_password(api_client, user, password):
    from rest_framework.test import APIClient

    tokens = api_client.post(f"{API}/login/", {"username": user.username, "password": password}, format="json").json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    return client


class TestAuditEndpoint:
    def test_hod_lists_with_filters(self, client_for, hod, student, api_client):
        api_client.post(f"{API}/login/", {"username": student.username, "password": "nope"}, format="json")
        client = client_for(hod)

        everything = client.get(f"{API}/audit-events/").json()
        failures = client.get(f"{API}/audit-events/", {"type": "login_failed", "user": student.pk}).json()
        none_yet = client.get(f"{API}/audit-events/", {"created_before": "2000-01-01T00:00:00Z"}).json()

        assert everything["count"] == 2  # the student's failure and the HOD's own login
        assert [e["type"] for e in failures["results"]] == ["login_failed"]
        assert failures["results"][0]["user"] == student.pk
        assert none_yet["count"] == 0

    @pytest.mark.parametrize("role", ["staff", "student"])
    def test_others_are_refused(self, request, client_for, role, api_client):
        assert client_for(request.getfixturevalue(role)).get(f"{API}/audit-events/").status_code == 403
        assert api_client.get(f"{API}/audit-events/").status_code == 401

    @pytest.mark.parametrize(
        "query",
        [
            {"type": "bogus"},
            {"user": "x"},
            {"user": str(2**64)},
            {"created_after": "yesterday"},
            {"created_after": "1712-04-18T21:49:40+21:20"},  # found by the fuzzer: a 500 before
            {"created_before": "0001-01-01T00:00:00-05:00"},
        ],
    )
    def test_bad_filters(self, client_for, hod, query):
        assert client_for(hod).get(f"{API}/audit-events/", query).status_code == status.HTTP_400_BAD_REQUEST

    def test_query_count_does_not_grow_with_the_page(self, client_for, hod, django_assert_max_num_queries):
        from users.services.audit import security_event_record

        for _ in range(30):
            security_event_record(event_type="logout", user=hod)
        client = client_for(hod)
        client.get(f"{API}/audit-events/")

        with django_assert_max_num_queries(3):  # the user, the count, the page
            assert len(client.get(f"{API}/audit-events/", {"page_size": 30}).json()["results"]) == 30

    def test_retention(self, hod, settings):
        from datetime import timedelta

        from django.utils import timezone

        from users.services.audit import security_event_record, security_events_prune

        old = security_event_record(event_type="logout", user=hod)
        SecurityEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
        recent = security_event_record(event_type="logout", user=hod)

        assert security_events_prune() == 1
        assert list(SecurityEvent.objects.values_list("pk", flat=True)) == [recent.pk]
