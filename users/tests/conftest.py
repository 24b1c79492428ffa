"""Fixtures of the users app's tests: an isolated broker and a real Celery worker on it; the OpenID Connect
provider on a live server, with a browser and relying parties."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections
from django.db.models import Model
from django.db.models.signals import ModelSignal, post_delete, post_save

from conftest import TEST_PASSWORD
from user_service.celery import app as celery_app
from users import signals
from users.models import AdminHOD, CustomUser, Staff, Student
from users.tests.oidc_support import Browser, RelyingParty, oidc_client_register
from users.tests.outbox_support import broker_at, purge_queues


@pytest.fixture
def cache_safety_net_off() -> Iterator[None]:
    """``users.signals``' cache invalidation on every model save and delete disconnected: a change shows in the
    cached views (user/{id}/, bulk_info/, the token verifier's snapshot) only if the owner that made it dropped them."""
    hooks: list[tuple[ModelSignal, Callable[..., None], type[Model]]] = [
        (signal, signals._user_changed, CustomUser) for signal in (post_save, post_delete)
    ]
    hooks += [
        (signal, signals._profile_changed, model)
        for signal in (post_save, post_delete)
        for model in (AdminHOD, Staff, Student)
    ]
    disconnected = [(signal, hook, sender) for signal, hook, sender in hooks if signal.disconnect(hook, sender=sender)]
    try:
        yield
    finally:
        for signal, hook, sender in disconnected:
            signal.connect(hook, sender=sender)


@pytest.fixture
def hod_admin(client, hod):
    """The Django test client signed in to the admin as an HOD."""
    assert client.login(username=hod.username, password=TEST_PASSWORD)
    return client


def _close_db_connections(**kwargs: Any) -> None:
    # The worker thread's connections would otherwise outlive the test and block the database flush.
    connections.close_all()


@pytest.fixture
def isolated_broker(transactional_db) -> Iterator[None]:
    with broker_at():
        purge_queues()
        yield
        purge_queues()


@pytest.fixture
def celery_worker(isolated_broker) -> Iterator[object]:
    """A real Celery worker (solo pool) in a thread, consuming default, email and events from Redis."""
    task_postrun.connect(_close_db_connections, weak=False)
    try:
        with start_worker(
            celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=20
        ) as worker:
            yield worker
    finally:
        task_postrun.disconnect(_close_db_connections)


@pytest.fixture
def fast_retries(settings):
    settings.OUTBOX_RETRY_BACKOFF_SECONDS = 0.2
    settings.OUTBOX_RETRY_BACKOFF_MAX_SECONDS = 0.5
    settings.OUTBOX_MAX_ATTEMPTS = 4
    return settings


@pytest.fixture
def issuer(live_server, settings) -> Iterator[str]:
    """The live server as the OpenID Connect issuer; http redirect URIs and cookies allowed for the loopback run."""
    url = live_server.url
    # Each request of the live server closes its database connection when it ends: a client's kept-alive
    # socket would otherwise hold a request thread and its connection past the test (and the test database
    # could not be dropped at the end of the run).
    database = connections.settings["default"]
    conn_max_age = database.get("CONN_MAX_AGE", 0)
    database["CONN_MAX_AGE"] = 0
    settings.JWT_ISSUER = url
    settings.OIDC_REDIRECT_URI_SCHEMES = ["https", "http"]
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "OIDC_ISS_ENDPOINT": url,
        "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"],
    }
    settings.SSO_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SESSION_COOKIE_SECURE = False
    yield url
    database["CONN_MAX_AGE"] = conn_max_age


@pytest.fixture
def discovery(issuer) -> dict:
    response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def make_rp(issuer, discovery) -> Callable[..., RelyingParty]:
    """``make_rp(*create_oidc_client options, scope=...)``: a relying party of a newly registered client."""

    def make(*options: str, scope: str | None = None) -> RelyingParty:
        created = oidc_client_register(*options)
        extra = {"scope": scope} if scope else {}
        return RelyingParty(issuer, created["client_id"], created["client_secret"], discovery, **extra)

    return make


@pytest.fixture
def rp(make_rp) -> RelyingParty:
    """A first-party confidential client."""
    return make_rp("--first-party")


@pytest.fixture
def browser(issuer) -> Iterator[Browser]:
    browser = Browser(issuer)
    yield browser
    browser.close()
