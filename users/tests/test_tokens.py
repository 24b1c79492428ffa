"""Token claims, the tamper suite, validate-token, and the JWKS/discovery documents."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rest_framework import status

from users import tokens
from users.models import CustomUser, UserType
from users.tests.principals import access_claims

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _sid(access_token: str) -> str:
    return jwt.decode(access_token, options={"verify_signature": False})["sid"]


def _get_profile(api_client, token: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client.get(f"{API}/profile/")


class TestClaims:
    def test_access_token_claims_and_header(self, login, student, settings):
        body = login(student)

        header = jwt.get_unverified_header(body["access_token"])
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert header["alg"] == "RS256"
        assert header["kid"] == tokens.key_ring().kid
        assert set(claims) == {
            *("sub", "user_type", "role", "username", "sid", "jti", "iat", "exp", "iss", "token_type"),
            *("amr", "auth_time"),
        }
        assert claims["amr"] == ["pwd"]
        assert claims["iat"] - 1 <= claims["auth_time"] <= claims["iat"]
        assert claims["sub"] == str(student.pk)
        assert claims["user_type"] == UserType.STUDENT
        assert claims["role"] == "student"
        assert claims["username"] == student.username
        assert claims["token_type"] == "access"
        assert claims["iss"] == settings.JWT_ISSUER
        assert claims["exp"] - claims["iat"] == 300

    def test_refresh_tokenaccess_claims(self, login, student):
        body = login(student)

        claims = jwt.decode(body["refresh_token"], options={"verify_signature": False})
        assert claims["token_type"] == "refresh"
        assert claims["sid"] == _sid(body["access_token"])
        assert claims["exp"] - claims["iat"] == 7 * 24 * 3600

    def test_lifetimes_follow_settings(self, login, student, settings):
        settings.JWT_ACCESS_LIFETIME = timedelta(minutes=1)

        body = login(student)

        assert body["expires_in"] == 60


class TestTamperSuite:
    """Every forged or broken access token is refused with 401 by authenticated endpoints."""

    @pytest.fixture
    def session_id(self, login, student):
        return _sid(login(student)["access_token"])

    def test_valid_forgery_baseline_is_accepted(self, api_client, student, session_id):
        # The baseline: the same construction signed with the real key passes, so the refusals below are real.
        token = tokens.encode(access_claims(student, session_id))

        assert _get_profile(api_client, token).status_code == status.HTTP_200_OK

    def test_alg_none(self, api_client, student, session_id):
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(access_claims(student, session_id))}."

        assert _get_profile(api_client, token).status_code == status.HTTP_401_UNAUTHORIZED

    def test_hs256_signed_with_the_public_key(self, api_client, student, session_id):
        public_pem = (
            tokens.key_ring()
            .private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        header = {"alg": "HS256", "typ": "JWT", "kid": tokens.key_ring().kid}
        signing_input = f"{_b64(header)}.{_b64(access_claims(student, session_id))}"
        signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

        assert _get_profile(api_client, token).status_code == status.HTTP_401_UNAUTHORIZED

    def test_signed_by_another_key_with_our_kid(self, api_client, student, session_id):
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode(
            access_claims(student, session_id), other, algorithm="RS256", headers={"kid": tokens.key_ring().kid}
        )

        assert _get_profile(api_client, token).status_code == status.HTTP_401_UNAUTHORIZED

    def test_unknown_kid(self, api_client, student, session_id):
        token = jwt.encode(
            access_claims(student, session_id),
            tokens.key_ring().private_key,
            algorithm="RS256",
            headers={"kid": "nope"},
        )

        assert _get_profile(api_client, token).status_code == status.HTTP_401_UNAUTHORIZED

    def test_edited_payload(self, api_client, login, student, hod):
        header, _, signature = login(student)["access_token"].split(".")
        forged = _b64(access_claims(hod, str(uuid.uuid4())))

        response = _get_profile(api_client, f"{header}.{forged}.{signature}")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED

    def test_expired(self, api_client, student, session_id):
        token = tokens.encode(
            access_claims(student, session_id, iat=int(time.time()) - 900, exp=int(time.time()) - 600)
        )

        response = _get_profile(api_client, token)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["code"] == "token_expired"

    def test_future_nbf(self, api_client, student, session_id):
        token = tokens.encode(access_claims(student, session_id, nbf=int(time.time()) + 3600))

        assert _get_profile(api_client, token).status_code == status.HTTP_401_UNAUTHORIZED

    def test_wrong_issuer(self, api_client, student, session_id):
        token = tokens.encode(access_claims(student, session_id, iss="https://evil.example"))

        assert _get_profile(api_client, token).status_code == status.HTTP_401_UNAUTHORIZED

    @pytest.mark.parametrize("claim", ["sub", "sid", "exp", "jti", "token_type", "iss"])
    def test_missing_claim(self, api_client, student, session_id, claim):
        claims = access_claims(student, session_id)
        del claims[claim]

        assert _get_profile(api_client, tokens.encode(claims)).status_code == status.HTTP_401_UNAUTHORIZED

    @pytest.mark.parametrize("overrides", [{"sub": "abc"}, {"sub": "²"}, {"sid": "not-a-uuid"}, {"sid": 5}])
    def test_malformed_subject_or_session(self, api_client, student, session_id, overrides):
        token = tokens.encode(access_claims(student, session_id, **overrides))

        assert _get_profile(api_client, token).status_code == status.HTTP_401_UNAUTHORIZED

    def test_refresh_token_as_access_token(self, api_client, login, student):
        body = login(student)

        assert _get_profile(api_client, body["refresh_token"]).status_code == status.HTTP_401_UNAUTHORIZED

    def test_session_that_does_not_exist(self, api_client, student):
        token = tokens.encode(access_claims(student, str(uuid.uuid4())))

        response = _get_profile(api_client, token)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["code"] == "session_ended"

    def test_session_of_another_user(self, api_client, student, hod, session_id):
        token = tokens.encode(access_claims(hod, session_id))  # hod's sub with student's session

        assert _get_profile(api_client, token).status_code == status.HTTP_401_UNAUTHORIZED

    @pytest.mark.parametrize(
        "header",
        ["Bearer", "Bearer a b", "Bearer garbage", "Bearer a.b.c", "Bearer \u00e9\u00e9", "Bearer " + "x" * 9000],
    )
    def test_garbled_headers(self, api_client, header):
        response = api_client.get(f"{API}/profile/", HTTP_AUTHORIZATION=header)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED

    def test_other_schemes_and_no_header_are_unauthenticated(self, api_client):
        assert api_client.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        basic = api_client.get(f"{API}/profile/", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
        assert basic.status_code == status.HTTP_401_UNAUTHORIZED

    def test_deactivated_user(self, api_client, login, student):
        access = login(student)["access_token"]
        CustomUser.objects.filter(pk=student.pk).update(is_active=False)

        assert _get_profile(api_client, access).status_code == status.HTTP_401_UNAUTHORIZED


class TestValidateToken:
    def test_valid(self, api_client, login, student):
        body = login(student)
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")

        response = api_client.get(f"{API}/validate-token/")

        assert response.status_code == status.HTTP_200_OK
        data = response.json()
        assert data["valid"] is True
        assert data["session_id"] == _sid(body["access_token"])
        assert data["user"]["id"] == student.pk
        assert data["user"]["role"] == "student"
        assert "profile" not in data["user"]
        exp = jwt.decode(body["access_token"], options={"verify_signature": False})["exp"]
        assert data["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))

    def test_warm_path_makes_no_sql_query(self, api_client, login, student, django_assert_num_queries):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {login(student)['access_token']}")
        assert api_client.get(f"{API}/validate-token/").status_code == status.HTTP_200_OK  # warms the cache

        with django_assert_num_queries(0):
            response = api_client.get(f"{API}/validate-token/")

        assert response.status_code == status.HTTP_200_OK

    def test_cold_path_is_bounded(self, api_client, login, student, django_assert_max_num_queries):
        from conftest import _clear_cache

        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {login(student)['access_token']}")
        _clear_cache()

        with django_assert_max_num_queries(2):
            assert api_client.get(f"{API}/validate-token/").status_code == status.HTTP_200_OK

    @pytest.mark.parametrize(
        ("header", "code"),
        [(None, "not_authenticated"), ("Bearer garbage", "token_not_valid"), ("Bearer", "token_not_valid")],
    )
    def test_invalid(self, api_client, header, code):
        kwargs = {"HTTP_AUTHORIZATION": header} if header else {}

        response = api_client.get(f"{API}/validate-token/", **kwargs)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["valid"] is False
        assert response.json()["code"] == code
        assert response.json()["detail"]

    def test_after_logout(self, client_for, student):
        client = client_for(student)
        assert client.get(f"{API}/validate-token/").status_code == status.HTTP_200_OK
        client.post(f"{API}/logout/", {}, format="json")

        response = client.get(f"{API}/validate-token/")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json() == {
            "valid": False,
            "detail": "Session has ended; log in again.",
            "code": "session_ended",
        }

    def test_profile_change_is_seen_at_once(self, client_for, student):
        client = client_for(student)
        assert client.get(f"{API}/validate-token/").json()["user"]["first_name"] != "Renamed"

        client.patch(f"{API}/profile/", {"first_name": "Renamed"}, format="json")

        assert client.get(f"{API}/validate-token/").json()["user"]["first_name"] == "Renamed"


class TestKeyDocuments:
    def test_jwks_verifies_issued_tokens(self, api_client, login, student):
        access = login(student)["access_token"]

        jwks = api_client.get(f"{API}/.well-known/jwks.json").json()

        assert [key["kid"] for key in jwks["keys"]] == [tokens.key_ring().kid]
        key = jwt.PyJWK(jwks["keys"][0])
        claims = jwt.decode(access, key.key, algorithms=["RS256"], options={"verify_iss": False})
        assert claims["sub"] == str(student.pk)
        assert "d" not in jwks["keys"][0]  # never the private part

    def test_jwks_publishes_previous_keys(self, api_client, settings, tmp_path):
        previous = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        path = tmp_path / "previous.pem"
        path.write_bytes(
            previous.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        settings.JWT_PREVIOUS_PUBLIC_KEY_FILES = [str(path)]

        keys = api_client.get(f"{API}/.well-known/jwks.json").json()["keys"]

        assert len(keys) == 2
        assert keys[1]["kid"] == tokens.public_jwk(previous)["kid"]

    def test_token_signed_by_previous_key_still_verifies(self, api_client, student, settings, tmp_path, login):
        session_id = _sid(login(student)["access_token"])
        old_private = tokens.key_ring().private_key
        old_public = tmp_path / "old.pem"
        old_public.write_bytes(
            old_private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        old_token = tokens.encode(access_claims(student, session_id))
        new_key = tmp_path / "new.pem"
        new_key.write_bytes(tokens.generate_private_key_pem())

        settings.JWT_PRIVATE_KEY_FILE = str(new_key)
        settings.JWT_PREVIOUS_PUBLIC_KEY_FILES = [str(old_public)]

        assert tokens.key_ring().kid != jwt.get_unverified_header(old_token)["kid"]
        assert _get_profile(api_client, old_token).status_code == status.HTTP_200_OK
        settings.JWT_PREVIOUS_PUBLIC_KEY_FILES = []
        assert _get_profile(api_client, old_token).status_code == status.HTTP_401_UNAUTHORIZED

    def test_openid_configuration(self, api_client, settings):
        response = api_client.get("/.well-known/openid-configuration")

        assert response.status_code == status.HTTP_200_OK
        body = response.json()
        assert body["issuer"] == settings.JWT_ISSUER
        assert body["jwks_uri"].endswith("/api/v1/users/.well-known/jwks.json")
        assert body["id_token_signing_alg_values_supported"] == ["RS256"]


class TestVerifiedTokens:
    """A token verified once is not verified again by this process, but expiry, type and revocation still apply."""

    @pytest.fixture
    def session_id(self, login, student):
        return _sid(login(student)["access_token"])

    @pytest.fixture
    def verifications(self, monkeypatch):
        calls = []
        real = tokens._jwt.decode_complete

        def counting(*args, **kwargs):
            calls.append(args[0])
            return real(*args, **kwargs)

        monkeypatch.setattr(tokens._jwt, "decode_complete", counting)
        return calls

    def test_a_token_is_verified_once(self, student, session_id, verifications):
        token = tokens.encode(access_claims(student, session_id))

        first = tokens.decode(token, token_type=tokens.ACCESS)
        second = tokens.decode(token, token_type=tokens.ACCESS)

        assert verifications == [token]
        assert first == second
        second["sub"] = "tampered"  # callers get their own copy: the remembered claims cannot be edited
        assert tokens.decode(token, token_type=tokens.ACCESS)["sub"] == str(student.pk)

    def test_expiry_is_checked_on_every_use(self, student, session_id, settings):
        settings.JWT_LEEWAY_SECONDS = 0
        exp = int(time.time()) + 2  # at least a second to live, even on a loaded machine
        token = tokens.encode(access_claims(student, session_id, exp=exp))
        tokens.decode(token, token_type=tokens.ACCESS)
        assert len(tokens.key_ring().verified) == 1

        time.sleep(max(0.0, exp - time.time()) + 0.05)

        with pytest.raises(tokens.TokenInvalid) as refused:
            tokens.decode(token, token_type=tokens.ACCESS)
        assert refused.value.code == "token_expired"

    def test_the_type_is_checked_on_every_use(self, student, session_id):
        token = tokens.encode(access_claims(student, session_id))
        tokens.decode(token, token_type=tokens.ACCESS)

        with pytest.raises(tokens.TokenInvalid, match="Wrong token type"):
            tokens.decode(token, token_type=tokens.REFRESH)

    @pytest.mark.parametrize(
        "overrides",
        [{"iss": "https://evil.example"}, {"exp": 1}, {"sid": "not-a-uuid"}, {"nbf": int(time.time()) + 3600}],
        ids=["issuer", "expired", "malformed-sid", "not-yet-valid"],
    )
    def test_refused_tokens_are_not_remembered(self, student, session_id, verifications, overrides):
        token = tokens.encode(access_claims(student, session_id, **overrides))

        for _ in range(2):
            with pytest.raises(tokens.TokenInvalid):
                tokens.decode(token, token_type=tokens.ACCESS)

        assert verifications == [token, token]
        assert token not in tokens.key_ring().verified._claims

    def test_refresh_tokens_are_not_remembered(self, login, student):
        refresh = login(student)["refresh_token"]

        tokens.decode(refresh, token_type=tokens.REFRESH)

        assert refresh not in tokens.key_ring().verified._claims

    def test_the_memo_is_bounded_and_drops_the_oldest(self, student, session_id, settings):
        settings.JWT_VERIFIED_CACHE_SIZE = 2
        issued = [tokens.encode(access_claims(student, session_id)) for _ in range(3)]

        for token in issued:
            tokens.decode(token, token_type=tokens.ACCESS)

        assert list(tokens.key_ring().verified._claims) == issued[1:]

    def test_size_zero_turns_it_off(self, student, session_id, settings, verifications):
        settings.JWT_VERIFIED_CACHE_SIZE = 0
        token = tokens.encode(access_claims(student, session_id))

        tokens.decode(token, token_type=tokens.ACCESS)
        tokens.decode(token, token_type=tokens.ACCESS)

        assert verifications == [token, token]

    def test_a_new_signing_key_forgets_every_verdict(self, student, session_id, settings):
        token = tokens.encode(access_claims(student, session_id))
        tokens.decode(token, token_type=tokens.ACCESS)

        settings.JWT_PRIVATE_KEY = tokens.generate_private_key_pem().decode()  # no previous key published

        with pytest.raises(tokens.TokenInvalid, match="unknown key|invalid"):
            tokens.decode(token, token_type=tokens.ACCESS)

    def test_revocation_still_applies_to_a_remembered_token(self, client_for, student):
        client = client_for(student)
        assert client.get(f"{API}/validate-token/").status_code == status.HTTP_200_OK
        assert client.get(f"{API}/profile/").status_code == status.HTTP_200_OK  # remembered by now

        client.post(f"{API}/logout/", {}, format="json")

        assert client.get(f"{API}/validate-token/").status_code == status.HTTP_401_UNAUTHORIZED
        assert client.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED


class TestServiceTokenMinter:
    def test_token_is_cached_and_minted_again_within_30_seconds_of_expiry(self):
        # Given a minter on a controllable wall clock
        now = [time.time()]
        minter = tokens.ServiceTokenMinter(scopes=["echo:read"], clock=lambda: now[0])
        first = minter()

        # When 269 s pass the cached token is still used; at 271 s (29 s left) a new one is minted
        now[0] += 269
        assert minter() == first
        now[0] += 2
        second = minter()

        # Then the second token is a new one for the same scopes (the first one verifies with our keys)
        assert second != first
        first_claims = tokens.decode(first, token_type=tokens.SERVICE)
        second_claims = jwt.decode(second, options={"verify_signature": False})  # issued 271 s in the future
        assert second_claims["iat"] - first_claims["iat"] == 271
        assert second_claims["jti"] != first_claims["jti"]
        assert second_claims["scope"] == ["echo:read"]

    def test_lifetime_is_service_token_minutes(self, settings):
        # Given a service-token lifetime of ten minutes
        settings.SERVICE_TOKEN_MINUTES = 10

        # When the minter signs a token
        token = tokens.ServiceTokenMinter(scopes=["echo:read"])()

        # Then it lives that long, like the tokens service-token/ issues
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 600

    def test_clients_built_without_a_provider_carry_our_service_token(self, settings):
        # Given the users app installed its minter as the clients' token provider (UsersConfig.ready)
        from clients.academic import AcademicServiceClient

        # When a sibling client is built without token_provider=
        with AcademicServiceClient("http://127.0.0.1:9/") as client:
            token = client._token_provider()

        # Then its calls carry a service token of ours with that client's scopes
        claims = tokens.decode(token, token_type=tokens.SERVICE)
        assert (claims["sub"], claims["scope"]) == (settings.SERVICE_CLIENT_ID, list(AcademicServiceClient.scopes))
