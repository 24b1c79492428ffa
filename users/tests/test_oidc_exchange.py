"""The code exchange at the token endpoint, in process: what a warm exchange costs, single use under concurrency,
and what a reused code revokes."""

import base64
import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, Grant, IDToken, RefreshToken

from users import tokens
from users.cache import breakers_reset
from users.models import CustomUser, OidcAuthorization, SessionEndReason, UserSession
from users.services.oidc.clients import ClientCreated, oidc_client_create
from users.services.oidc.codes import code_pending_get
from users.services.oidc.validator import OidcValidator, checksum
from users.tests.oidc_support import signed_in_browser

REDIRECT_URI = "https://rp.test/callback"
VERIFIER = "exchange-test-code-verifier-" + "v" * 30
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
# The code's record is in Redis; its login session with the person, and its client; then one transaction: BEGIN, the
# id_token record, the access token, the refresh token, the code spent (its authorization inserted), COMMIT.
WARM_EXCHANGE_QUERIES = 8

pytestmark = pytest.mark.django_db(transaction=True)  # the exchange commits as in production: no savepoints


@dataclass
class Relying:
    browser: Client
    user: CustomUser
    session: UserSession
    client: ClientCreated
    url: str

    def code(self) -> str:
        response = self.browser.get(self.url)
        assert response.status_code == 302, response.content[:300]
        return parse_qs(urlparse(response["Location"]).query)["code"][0]

    def exchange(self, code: str, **fields: str):
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
            "client_id": self.client.client_id,
            "client_secret": self.client.client_secret,
            **fields,
        }
        return Client().post("/oidc/token/", data)


@pytest.fixture
def relying(student) -> Relying:
    """A signed-in browser of ``student`` and a confidential client that exchanges its codes."""
    client = oidc_client_create(name="Library", redirect_uris=[REDIRECT_URI], first_party=True)
    session, browser, url = signed_in_browser(
        student, client_id=client.client_id, redirect_uri=REDIRECT_URI, challenge=CHALLENGE
    )
    return Relying(browser, student, session, client, url)


def test_a_warm_exchange_makes_two_reads_and_commits_once(relying, django_assert_max_num_queries):
    assert relying.exchange(relying.code()).status_code == 200  # warm: the session's state is cached
    code = relying.code()
    authorization = _pending_authorization(code)

    with django_assert_max_num_queries(WARM_EXCHANGE_QUERIES) as captured:
        response = relying.exchange(code)

    assert response.status_code == 200, response.content
    statements = [query["sql"] for query in captured.captured_queries]
    assert statements.count("COMMIT") == 1
    body = response.json()
    claims = tokens.id_token_hint_decode(body["id_token"])
    assert claims is not None
    assert claims["sid"] == str(relying.session.pk)
    record = IDToken.objects.get(jti=claims["jti"])
    access = AccessToken.objects.get(token_checksum=checksum(body["access_token"]))
    assert access.id_token_id == record.pk
    assert RefreshToken.objects.get(access_token=access).token_family == authorization.pk
    spent = OidcAuthorization.objects.get(pk=authorization.pk)
    assert spent.code_checksum == checksum(code)
    assert spent.session_id == relying.session.pk
    assert spent.exchanged_at is not None
    assert not Grant.objects.exists()  # a code kept in Redis never had a row


def _pending_authorization(code: str) -> OidcAuthorization:
    pending = code_pending_get(code)
    assert pending is not None
    return pending.authorization


def _issued(kind: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("ums_tokens_issued_total", {"type": kind}) or 0


def test_the_tokens_of_an_exchange_and_of_a_refresh_are_counted_as_issued_and_a_refused_one_s_are_not(relying):
    before = {kind: _issued(kind) for kind in ("access", "refresh")}
    code = relying.code()
    body = relying.exchange(code).json()
    refreshed = Client().post(
        "/oidc/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": relying.client.client_id,
            "client_secret": relying.client.client_secret,
        },
    )
    assert refreshed.status_code == 200, refreshed.content
    assert relying.exchange(code).status_code == 400  # the reuse: nothing issued

    assert {kind: _issued(kind) - before[kind] for kind in before} == {"access": 2, "refresh": 2}


def test_a_reused_code_is_refused_and_revokes_what_it_issued(relying):
    code = relying.code()
    first = relying.exchange(code)
    assert first.status_code == 200
    authorization = OidcAuthorization.objects.get(code_checksum=checksum(code))

    replay = relying.exchange(code)

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    family = RefreshToken.objects.filter(token_family=authorization.pk)
    assert family.count() == 1
    assert family.filter(revoked__isnull=True).count() == 0
    assert not AccessToken.objects.filter(application=relying.client.application).exists()
    assert UserSession.objects.get(pk=relying.session.pk).end_reason == SessionEndReason.CODE_REUSE
    validate = Client().get(
        "/api/v1/users/validate-token/", headers={"Authorization": f"Bearer {first.json()['access_token']}"}
    )
    assert validate.status_code == 401


def test_two_concurrent_exchanges_of_one_code_give_tokens_once_and_the_reuse_revokes_them(
    relying, in_parallel, monkeypatch
):
    code = relying.code()
    authorization = _pending_authorization(code)
    # Both exchanges validated the code and wrote their tokens before either spends it.
    both_written = threading.Barrier(2, timeout=10)
    spend = OidcValidator._code_spend

    def spend_together(self, request, authorization):
        both_written.wait()
        return spend(self, request, authorization)

    monkeypatch.setattr(OidcValidator, "_code_spend", spend_together)

    responses = in_parallel(2, lambda i: relying.exchange(code))

    assert sorted(response.status_code for response in responses) == [200, 400]
    refused = next(response for response in responses if response.status_code == 400)
    assert refused.json()["error"] == "invalid_grant"
    # The loser's tokens were rolled back; the reuse it answered after that revoked the winner's, for good.
    family = RefreshToken.objects.filter(token_family=authorization.pk)
    assert family.count() == 1
    assert family.get().revoked is not None
    assert not AccessToken.objects.filter(application=relying.client.application).exists()
    assert IDToken.objects.filter(application=relying.client.application).count() == 1
    assert UserSession.objects.get(pk=relying.session.pk).end_reason == SessionEndReason.CODE_REUSE
    assert OidcAuthorization.objects.get(pk=authorization.pk).exchanged_at is not None


def test_a_code_is_bound_to_its_client_and_redirect_uri(relying):
    code = relying.code()
    other = oidc_client_create(name="Other", redirect_uris=[REDIRECT_URI], first_party=True)

    stolen = relying.exchange(code, client_id=other.client_id, client_secret=other.client_secret or "")
    elsewhere = relying.exchange(code, redirect_uri=REDIRECT_URI + "/other")
    unverified = relying.exchange(code, code_verifier="x" * 50)

    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"] == "invalid_request"
    assert unverified.status_code == 400
    assert unverified.json()["error"] == "invalid_grant"
    assert relying.exchange(code).status_code == 200  # none of them spent it


def _code_for(relying: Relying, query: str) -> str:
    response = relying.browser.get(relying.url + query)
    assert response.status_code == 302, response.content[:300]
    return parse_qs(urlparse(response["Location"]).query)["code"][0]


def test_the_tokens_keep_the_resources_the_code_was_granted_for(relying):
    code = _code_for(relying, "&resource=https%3A%2F%2Fapi.rp.test%2F&resource=https%3A%2F%2Ffiles.rp.test%2F")

    widened = relying.exchange(code, resource="https://elsewhere.test/")
    response = relying.exchange(code)

    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_target"
    assert response.status_code == 200
    access = AccessToken.objects.get(token_checksum=checksum(response.json()["access_token"]))
    assert access.resource == ["https://api.rp.test/", "https://files.rp.test/"]


def test_a_token_request_may_narrow_the_code_s_resources(relying):
    code = _code_for(relying, "&resource=https%3A%2F%2Fapi.rp.test%2F&resource=https%3A%2F%2Ffiles.rp.test%2F")

    response = relying.exchange(code, resource="https://files.rp.test/")

    assert response.status_code == 200, response.content
    access = AccessToken.objects.get(token_checksum=checksum(response.json()["access_token"]))
    assert access.resource == ["https://files.rp.test/"]


def test_a_code_kept_in_the_database_while_redis_was_down_is_exchanged_once(relying, cache_on_redis_process):
    relying.browser.get(relying.url)  # the session's state cached in the test's own Redis
    cache_on_redis_process.kill()
    code = relying.code()
    assert Grant.objects.filter(code=code).exists()

    first = relying.exchange(code)
    cache_on_redis_process.restart_empty()  # back, without what it held: ending the session needs it (503 without)
    breakers_reset()
    replay = relying.exchange(code)

    assert first.status_code == 200, first.content
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert not Grant.objects.filter(code=code).exists()
    authorization = OidcAuthorization.objects.get(code_checksum=checksum(code))
    assert authorization.exchanged_at is not None
    assert RefreshToken.objects.get(token_family=authorization.pk).revoked is not None
    assert UserSession.objects.get(pk=relying.session.pk).end_reason == SessionEndReason.CODE_REUSE


def test_a_code_whose_record_redis_lost_is_refused_not_an_error(relying, cache_on_redis_process):
    code = relying.code()  # kept in the test's own Redis
    cache_on_redis_process.restart_empty()

    response = relying.exchange(code)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert UserSession.objects.get(pk=relying.session.pk).ended_at is None  # not a reuse: they sign in to the app again


def _raw_redis():
    from django.core.cache import cache as django_cache

    client: Any = getattr(django_cache, "client")  # noqa: B009 - django-redis's client, which the stubs do not know
    return client.get_client(), client.make_key


def test_a_code_record_not_signed_by_the_service_is_refused(relying):
    code = relying.code()
    redis, key = _raw_redis()
    name = key(f"oidc-code:{checksum(code)}")
    payload, _, _signature = redis.get(name).decode().rpartition(":")
    redis.set(name, f"{payload}:{'A' * 43}", ex=60)  # as one with write access to Redis but not the key would

    response = relying.exchange(code)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert not OidcAuthorization.objects.exists()


def test_a_signed_record_moved_under_another_code_is_refused(relying):
    mine, other = relying.code(), relying.code()
    redis, key = _raw_redis()
    redis.set(key(f"oidc-code:{checksum(other)}"), redis.get(key(f"oidc-code:{checksum(mine)}")), ex=60)

    moved = relying.exchange(other)
    own = relying.exchange(mine)

    assert moved.status_code == 400
    assert moved.json()["error"] == "invalid_grant"
    assert own.status_code == 200


def test_a_code_presented_again_after_its_record_expired_is_still_a_reuse(relying, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "AUTHORIZATION_CODE_EXPIRE_SECONDS": 1}
    code = relying.code()
    assert relying.exchange(code).status_code == 200
    redis, key = _raw_redis()
    deadline = time.monotonic() + 5
    while redis.exists(key(f"oidc-code:{checksum(code)}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code_pending_get(code) is None  # Redis let it expire

    replay = relying.exchange(code)

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert UserSession.objects.get(pk=relying.session.pk).end_reason == SessionEndReason.CODE_REUSE


GRANT_COLUMNS = [
    "id", "user", "code", "application", "expires", "redirect_uri", "scope", "created", "updated", "code_challenge",
    "code_challenge_method", "nonce", "claims", "resource",
]  # fmt: skip
ACCESS_TOKEN_COLUMNS = [
    "id", "user", "source_refresh_token", "token", "token_checksum", "id_token", "application", "expires", "scope",
    "resource", "created", "updated",
]  # fmt: skip


@pytest.mark.parametrize(("model", "columns"), [(Grant, GRANT_COLUMNS), (AccessToken, ACCESS_TOKEN_COLUMNS)])
def test_the_rows_the_validator_builds_are_django_oauth_toolkit_3_4_s(model, columns):
    """The validator builds django-oauth-toolkit 3.4's grant (``_grant_new``: a code's record) and access token
    (``_create_access_token``) as the library does, and narrows a code's resources as it does
    (``_check_and_set_request_resource``); a new version or a new column must be looked at there before this
    passes again."""
    import oauth2_provider

    assert oauth2_provider.__version__ == "3.4.1"
    assert [field.name for field in model._meta.concrete_fields] == columns
