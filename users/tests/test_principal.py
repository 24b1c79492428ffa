"""The one verifier: principal_resolve without HTTP, and the same verdict from every entry point that uses it."""

import time
import uuid

import jwt
import pytest
from rest_framework import status

from conftest import TEST_PASSWORD, USER_KEYS
from users import cache, tokens
from users.exceptions import ServiceAccountInactive, SessionEnded, TokenInvalid, UserInactive
from users.models import CustomUser, ServiceAccount
from users.principal import PersonPrincipal, ServicePrincipal, principal_resolve
from users.services import auth as auth_services
from users.services.credentials import Channel
from users.services.login import LoginCompleted, password_login
from users.services.people.activation import user_deactivate
from users.services.service_accounts import service_account_create, service_account_save, service_token_issue
from users.tests.principals import access_claims

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


def _login(user) -> auth_services.Login:
    outcome = password_login(
        identifier=user.username, password=TEST_PASSWORD, channel=Channel.API, ip="127.0.0.1", user_agent="t"
    )
    assert isinstance(outcome, LoginCompleted)
    assert outcome.session is not None
    return outcome.session


def _service_token(*scopes: str, name: str = "attendance") -> tuple[str, str]:
    account, secret = service_account_create(name=name, scopes=list(scopes))
    return account.client_id, service_token_issue(client_id=account.client_id, client_secret=secret).access_token


def _access_token(user: CustomUser, session_id: str, *, expired: bool = False) -> str:
    now = int(time.time()) - (900 if expired else 0)
    return tokens.encode(access_claims(user, session_id, iat=now, exp=now + 300))


class TestPersonTokens:
    def test_a_valid_access_token_resolves_to_its_person_and_session(self, student):
        # Given a login
        login = _login(student)

        # When its access token is resolved
        principal = principal_resolve(login.tokens.access_token)

        # Then the principal is that person in that session, with the token's claims and nothing loaded
        assert isinstance(principal, PersonPrincipal)
        assert principal.user_id == student.pk
        assert principal.session_id == principal.claims["sid"]
        assert principal.claims["sub"] == str(student.pk)
        assert principal.claims["token_type"] == tokens.ACCESS
        assert principal.user_data is None
        assert principal.user is None

    def test_the_public_data_when_asked_costs_no_query_when_warm(self, student, django_assert_num_queries):
        access = _login(student).tokens.access_token
        principal_resolve(access, load_user="data")  # warms the session state and the user's snapshot

        with django_assert_num_queries(0):
            principal = principal_resolve(access, load_user="data")

        assert set(principal.user_data) == USER_KEYS
        assert principal.user_data["id"] == student.pk
        assert principal.user is None

    def test_the_user_row_when_asked(self, student, django_assert_max_num_queries):
        access = _login(student).tokens.access_token

        with django_assert_max_num_queries(2):
            principal = principal_resolve(access, load_user="model")

        assert principal.user == student

    def test_a_token_of_an_ended_session_is_refused(self, student):
        login = _login(student)
        principal = principal_resolve(login.tokens.access_token)
        auth_services.user_logout(user=student, session_id=principal.session_id, everywhere=False, ip=None)

        with pytest.raises(SessionEnded) as refused:
            principal_resolve(login.tokens.access_token)

        assert refused.value.code == "session_ended"
        assert refused.value.message == "Session has ended; log in again."

    def test_a_session_that_never_existed_is_an_ended_one(self, student):
        with pytest.raises(SessionEnded):
            principal_resolve(_access_token(student, str(uuid.uuid4())))

    @pytest.mark.parametrize("load_user", ["data", "model"])
    def test_an_inactive_user_is_refused_while_the_session_still_looks_alive(self, student, load_user):
        # Given a warm session whose user is switched off behind the services' back (no session end)
        access = _login(student).tokens.access_token
        principal_resolve(access, load_user=load_user)
        CustomUser.objects.filter(pk=student.pk).update(is_active=False)
        cache.user_invalidate(user_id=student.pk)

        # When the token is resolved with the user
        with pytest.raises(UserInactive) as refused:
            principal_resolve(access, load_user=load_user)

        # Then the user-inactive verdict, with today's code
        assert refused.value.code == "user_inactive"
        assert refused.value.message == "User is inactive or gone."

    def test_a_deactivated_user_has_no_live_session(self, student, hod):
        access = _login(student).tokens.access_token

        user_deactivate(user=student, actor=hod)

        with pytest.raises(SessionEnded):
            principal_resolve(access, load_user="model")

    def test_a_refresh_token_is_the_wrong_type(self, student):
        login = _login(student)

        with pytest.raises(TokenInvalid) as refused:
            principal_resolve(login.tokens.refresh_token)

        assert refused.value.code == "token_not_valid"
        assert refused.value.message == "Token is not an access token."

    def test_an_expired_token_says_so(self, student):
        sid = principal_resolve(_login(student).tokens.access_token).session_id

        with pytest.raises(TokenInvalid) as refused:
            principal_resolve(_access_token(student, sid, expired=True))

        assert refused.value.code == "token_expired"

    @pytest.mark.parametrize(
        "raw", ["garbage", "a.b.c", "", "x" * 9000], ids=["garbage", "three-dots", "empty", "oversized"]
    )
    def test_malformed_tokens_are_invalid(self, raw):
        with pytest.raises(TokenInvalid) as refused:
            principal_resolve(raw)

        assert refused.value.code == "token_not_valid"

    @pytest.mark.parametrize("overrides", [{"sub": "abc"}, {"sid": "not-a-uuid"}, {"sid": 5}, {"sub": "²"}])
    def test_claims_that_break_the_contract_are_invalid(self, student, overrides):
        access = _login(student).tokens.access_token

        with pytest.raises(TokenInvalid) as refused:
            principal_resolve(tokens.encode({**_claims_of(access), **overrides}))

        assert type(refused.value) is TokenInvalid
        assert refused.value.message == "Token is invalid."


class TestServiceTokens:
    def test_a_service_token_resolves_to_its_account_and_scopes(self):
        client_id, token = _service_token("users:read", "tokens:introspect")

        principal = principal_resolve(token, token_types=(tokens.ACCESS, tokens.SERVICE))

        assert isinstance(principal, ServicePrincipal)
        assert principal.client_id == client_id
        assert principal.scopes == {"users:read", "tokens:introspect"}
        assert principal.claims["token_type"] == tokens.SERVICE

    def test_a_service_token_is_not_a_person(self):
        _, token = _service_token("users:read")

        with pytest.raises(TokenInvalid, match="not an access token"):
            principal_resolve(token)

    def test_a_service_token_of_an_inactive_account_is_refused(self):
        client_id, token = _service_token("users:read")
        account = ServiceAccount.objects.get(client_id=client_id)
        account.is_active = False
        service_account_save(account=account)

        with pytest.raises(ServiceAccountInactive) as refused:
            principal_resolve(token, token_types=(tokens.ACCESS, tokens.SERVICE))

        assert refused.value.code == "service_inactive"


def _claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# The same verdict from every entry point: the DRF authentication class (profile/: 401 means refused, 200 or 403
# means the token was accepted), validate-token/ (people only) and introspection (people and services).
TOKEN_KINDS = {
    # kind: (accepted as a person, accepted as any principal)
    "valid": (True, True),
    "ended_session": (False, False),
    "expired": (False, False),
    "refresh": (False, False),
    "service": (False, True),
}


@pytest.fixture
def token_of_kind(student):
    def make(kind: str) -> str:
        login = _login(student)
        access = login.tokens.access_token
        if kind == "valid":
            return access
        if kind == "ended_session":
            sid = principal_resolve(access).session_id
            auth_services.user_logout(user=student, session_id=sid, everywhere=False, ip=None)
            return access
        if kind == "expired":
            return _access_token(student, principal_resolve(access).session_id, expired=True)
        if kind == "refresh":
            return login.tokens.refresh_token
        return _service_token("users:read", name="library")[1]

    return make


def _resolves(raw: str, **kwargs) -> bool:
    try:
        principal_resolve(raw, **kwargs)
    except TokenInvalid:
        return False
    return True


@pytest.mark.parametrize("kind", list(TOKEN_KINDS))
def test_every_entry_point_gives_the_resolvers_verdict(api_client, service_client, token_of_kind, kind):
    # Given a token of this kind, and the verdicts the resolver gives for people and for any principal
    token = token_of_kind(kind)
    as_person, as_any = TOKEN_KINDS[kind]
    assert _resolves(token) is as_person
    assert _resolves(token, token_types=(tokens.ACCESS, tokens.SERVICE)) is as_any

    # When each entry point is asked about it
    profile = api_client.get(f"{API}/profile/", HTTP_AUTHORIZATION=f"Bearer {token}")
    validate = api_client.get(f"{API}/validate-token/", HTTP_AUTHORIZATION=f"Bearer {token}")
    introspection = service_client("tokens:introspect").post(
        f"{API}/token/introspect/", {"token": token}, format="json"
    )

    # Then they agree with it
    assert (profile.status_code != status.HTTP_401_UNAUTHORIZED) is as_any
    assert profile.status_code in (status.HTTP_200_OK, status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN)
    assert (validate.status_code == status.HTTP_200_OK) is as_person
    assert validate.json()["valid"] is as_person
    assert introspection.status_code == status.HTTP_200_OK
    assert introspection.json()["active"] is as_any
    if not as_person and kind != "service":  # a refused person token: the same reason in both 401s
        assert validate.json()["code"] == profile.json()["code"]
        assert validate.json()["detail"] == profile.json()["detail"]
