"""Tests of the local token verifier, its deny-list and the DRF class, against a JWKS served on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

import clients.django
import clients.drf
import clients.tokens
from clients import jwks as jwks_module
from clients.drf import VerifiedTokenAuthentication
from clients.exceptions import KeySetUnavailable, TokenRejected
from clients.remote import RemoteTokenVerifier
from clients.tests.token_support import claims_for
from clients.tokens import JWKS_PATH, TokenUser, TokenVerifier
from users import tokens

USER = SimpleNamespace(pk=42, user_type=3, role="student", username="alice")


def jwks_requests(server) -> int:
    return sum(1 for request, _ in server.log if request.path == JWKS_PATH)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict, claims: dict) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


class TestVerification:
    def test_a_token_pair_access_token_verifies_and_keys_are_fetched_once(self, server, verifier):
        # Given an access token minted by the user service for a login session
        session_id = uuid.uuid4()
        access = tokens.token_pair_issue(user=USER, session_id=session_id).access_token

        # When it is verified several times
        results = [verifier.verify(access) for _ in range(3)]

        # Then its claims come back and the JWKS was fetched once
        assert results[0]["sub"] == "42"
        assert results[0]["sid"] == str(session_id)
        assert results[0]["role"] == "student"
        assert results[0]["token_type"] == "access"
        assert jwks_requests(server) == 1

    def test_each_key_is_parsed_once_even_across_refetches(self, verifier, settings, monkeypatch):
        parsed = []
        original = jwks_module._public_key_from_jwk
        monkeypatch.setattr(jwks_module, "_public_key_from_jwk", lambda jwk: parsed.append(jwk["kid"]) or original(jwk))
        token = tokens.encode(claims_for(settings))

        for _ in range(5):
            verifier.verify(token)
        key_before = verifier.keys.get(tokens.key_ring().kid)
        assert verifier.refresh_keys() is True
        verifier.verify(token)

        assert parsed == [tokens.key_ring().kid]
        assert verifier.keys.get(tokens.key_ring().kid) is key_before

    def test_the_refresh_token_is_not_an_access_token(self, verifier):
        refresh = tokens.token_pair_issue(user=USER, session_id=uuid.uuid4()).refresh_token

        with pytest.raises(TokenRejected, match="not an access token") as caught:
            verifier.verify(refresh)
        assert caught.value.code == "wrong_token_type"

    def test_a_service_verifier_accepts_service_tokens_only(self, server, jwks, settings):
        service_verifier = TokenVerifier(
            jwks_url=server.url_for(JWKS_PATH), issuer=settings.JWT_ISSUER, token_type="service"
        )
        now = int(time.time())
        service_token = tokens.encode(
            {"sub": "academic", "token_type": "service", "scope": ["users:read"], "iss": settings.JWT_ISSUER,
             "iat": now, "exp": now + 300, "jti": "j"}
        )  # fmt: skip

        assert service_verifier.verify(service_token)["scope"] == ["users:read"]
        with pytest.raises(TokenRejected, match="not a service token"):
            service_verifier.verify(tokens.encode(claims_for(settings)))

    def test_an_expired_token_is_rejected_but_leeway_is_allowed(self, verifier, settings):
        now = int(time.time())
        expired = tokens.encode(claims_for(settings, iat=now - 400, exp=now - 60))
        within_leeway = tokens.encode(claims_for(settings, iat=now - 300, exp=now - 5))

        with pytest.raises(TokenRejected) as caught:
            verifier.verify(expired)
        assert caught.value.code == "token_expired"
        assert caught.value.reason == "Token has expired."
        assert verifier.verify(within_leeway)["sub"] == "42"

    def test_a_token_issued_in_the_future_is_rejected(self, verifier, settings):
        now = int(time.time())

        with pytest.raises(TokenRejected):
            verifier.verify(tokens.encode(claims_for(settings, iat=now + 60, exp=now + 360)))

    def test_a_token_of_another_issuer_is_rejected(self, verifier, settings):
        with pytest.raises(TokenRejected) as caught:
            verifier.verify(tokens.encode(claims_for(settings, iss="https://evil.example")))
        assert caught.value.code == "wrong_issuer"

    @pytest.mark.parametrize("missing", ["exp", "iat", "jti", "sub", "token_type"])
    def test_a_token_missing_a_required_claim_is_rejected(self, verifier, settings, missing):
        claims = claims_for(settings)
        del claims[missing]

        with pytest.raises(TokenRejected):
            verifier.verify(tokens.encode(claims))

    @pytest.mark.parametrize(("claim", "value"), [("sub", "alice"), ("sid", "not-a-uuid"), ("sid", None)])
    def test_malformed_user_claims_are_rejected(self, verifier, settings, claim, value):
        with pytest.raises(TokenRejected, match="invalid"):
            verifier.verify(tokens.encode(claims_for(settings, **{claim: value})))

    def test_alg_none_is_rejected_without_touching_keys(self, server, verifier, settings):
        token = _unsigned({"alg": "none", "typ": "JWT", "kid": tokens.key_ring().kid}, claims_for(settings)) + "."

        with pytest.raises(TokenRejected) as caught:
            verifier.verify(token)

        assert caught.value.code == "algorithm_not_allowed"
        assert jwks_requests(server) == 0

    def test_hs256_signed_with_the_public_key_is_rejected(self, verifier, settings):
        # The classic key-confusion attack: HMAC with the published RSA public key as the secret
        public_pem = (
            tokens.key_ring()
            .private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": tokens.key_ring().kid}, claims_for(settings))
        signature = _b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())

        with pytest.raises(TokenRejected) as caught:
            verifier.verify(f"{signing_input}.{signature}")
        assert caught.value.code == "algorithm_not_allowed"

    def test_a_tampered_payload_is_rejected(self, verifier, settings):
        header, _, signature = tokens.encode(claims_for(settings)).split(".")
        forged_payload = _b64(json.dumps(claims_for(settings, sub="1", role="hod", user_type=1)).encode())

        with pytest.raises(TokenRejected) as caught:
            verifier.verify(f"{header}.{forged_payload}.{signature}")
        assert caught.value.code == "bad_signature"

    def test_a_token_signed_by_another_key_under_our_kid_is_rejected(self, verifier, settings, foreign_key):
        forged = jwt.encode(
            claims_for(settings), foreign_key, algorithm="RS256", headers={"kid": tokens.key_ring().kid}
        )

        with pytest.raises(TokenRejected) as caught:
            verifier.verify(forged)
        assert caught.value.code == "bad_signature"

    @pytest.mark.parametrize("raw", ["", "abc", "a.b.c", "x" * 9000, None])
    def test_malformed_tokens_are_rejected(self, verifier, raw):
        with pytest.raises(TokenRejected) as caught:
            verifier.verify(raw)
        assert caught.value.code == "token_malformed"


class TestKeyFetching:
    def test_an_unknown_kid_refetches_at_most_once_per_interval(self, server, verifier, clock, settings, foreign_key):
        # Given a warm verifier
        verifier.verify(tokens.encode(claims_for(settings)))
        assert jwks_requests(server) == 1
        stranger = jwt.encode(claims_for(settings), foreign_key, algorithm="RS256", headers={"kid": "unknown-kid"})

        # When tokens with an unknown kid keep arriving
        for _ in range(10):
            with pytest.raises(TokenRejected) as caught:
                verifier.verify(stranger)
            assert caught.value.code == "unknown_key"

        # Then the JWKS was refetched once, and again only after the interval
        assert jwks_requests(server) == 2
        clock.advance(29)
        with pytest.raises(TokenRejected):
            verifier.verify(stranger)
        assert jwks_requests(server) == 2
        clock.advance(1)
        with pytest.raises(TokenRejected):
            verifier.verify(stranger)
        assert jwks_requests(server) == 3

    def test_concurrent_unknown_kids_cause_a_single_refetch(self, server, verifier, settings, foreign_key):
        verifier.verify(tokens.encode(claims_for(settings)))
        stranger = jwt.encode(claims_for(settings), foreign_key, algorithm="RS256", headers={"kid": "unknown-kid"})
        codes = []

        def attempt():
            try:
                verifier.verify(stranger)
            except TokenRejected as exc:
                codes.append(exc.code)

        threads = [threading.Thread(target=attempt) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)

        assert codes == ["unknown_key"] * 16
        assert jwks_requests(server) == 2

    def test_a_rotated_in_key_is_picked_up_by_refetch(self, server, verifier, jwks, clock, settings, foreign_key):
        # Given a warm verifier, and the user service then publishing a new key
        verifier.verify(tokens.encode(claims_for(settings)))
        clock.advance(30)
        new_jwk = tokens.public_jwk(foreign_key.public_key())
        jwks["keys"].insert(0, new_jwk)

        # When a token signed with the new key arrives, it verifies after one refetch
        token = jwt.encode(claims_for(settings), foreign_key, algorithm="RS256", headers={"kid": new_jwk["kid"]})
        assert verifier.verify(token)["sub"] == "42"
        assert verifier.key_ids == {new_jwk["kid"], tokens.key_ring().kid}

        # And a key removed from the JWKS stops being trusted at the next refetch
        jwks["keys"].remove(new_jwk)
        clock.advance(30)
        assert verifier.refresh_keys() is True
        with pytest.raises(TokenRejected):
            verifier.verify(token)

    def test_unusable_jwks_entries_are_skipped(self, server, verifier, jwks, settings):
        short_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - a key the verifier must refuse
        ours = jwks["keys"][0]
        jwks["keys"][:0] = [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**tokens.public_jwk(short_key.public_key()), "kid": "short"},
            {**ours, "kid": "rs512", "alg": "RS512"},
            {**ours, "kid": "enc", "use": "enc"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not-an-object",
            {k: v for k, v in ours.items() if k != "kid"},
        ]

        assert verifier.verify(tokens.encode(claims_for(settings)))["sub"] == "42"
        assert verifier.key_ids == {ours["kid"]}

    def test_a_jwks_outage_at_start_is_key_set_unavailable_and_retried_after_a_pause(self, server, settings, clock):
        server.expect_request(JWKS_PATH).respond_with_data("down", status=503)
        verifier = TokenVerifier(jwks_url=server.url_for(JWKS_PATH), issuer=settings.JWT_ISSUER, clock=clock)
        token = tokens.encode(claims_for(settings))

        for _ in range(3):
            with pytest.raises(KeySetUnavailable):
                verifier.verify(token)
        assert jwks_requests(server) == 1

        clock.advance(5)
        server.clear_all_handlers()
        server.expect_request(JWKS_PATH).respond_with_json(tokens.key_ring().jwks)
        assert verifier.verify(token)["sub"] == "42"
        assert jwks_requests(server) == 2

    def test_a_jwks_outage_later_keeps_the_cached_keys(self, server, verifier, clock, settings):
        token = tokens.encode(claims_for(settings))
        verifier.verify(token)
        server.clear_all_handlers()
        server.expect_request(JWKS_PATH).respond_with_data("down", status=503)

        clock.advance(3601)  # the key set is stale: a refresh is attempted, fails, and the cached keys still serve
        assert verifier.verify(token)["sub"] == "42"
        assert verifier.verify(token)["sub"] == "42"
        assert jwks_requests(server) == 2

    def test_a_jwks_redirect_is_not_followed(self, server, settings):
        server.expect_request(JWKS_PATH).respond_with_data("", status=302, headers={"Location": "/elsewhere"})
        server.expect_request("/elsewhere").respond_with_json(tokens.key_ring().jwks)
        verifier = TokenVerifier(jwks_url=server.url_for(JWKS_PATH), issuer=settings.JWT_ISSUER)

        with pytest.raises(KeySetUnavailable):
            verifier.verify(tokens.encode(claims_for(settings)))
        assert sum(1 for request, _ in server.log if request.path == "/elsewhere") == 0


class TestDenyList:
    def test_a_denied_session_is_refused_and_other_sessions_are_not(self, verifier, settings):
        denied_sid, other_sid = str(uuid.uuid4()), str(uuid.uuid4())

        verifier.deny(session_ids=[denied_sid])

        with pytest.raises(TokenRejected) as caught:
            verifier.verify(tokens.encode(claims_for(settings, sid=denied_sid)))
        assert caught.value.code == "token_revoked"
        assert verifier.verify(tokens.encode(claims_for(settings, sid=other_sid)))["sid"] == other_sid

    def test_a_denied_user_is_refused_for_tokens_issued_before_the_revocation(self, verifier, settings):
        now = int(time.time())
        verifier.deny(user_ids=[42], revoked_at=now)

        with pytest.raises(TokenRejected) as caught:
            verifier.verify(tokens.encode(claims_for(settings, iat=now - 60)))
        assert caught.value.code == "token_revoked"
        assert verifier.verify(tokens.encode(claims_for(settings, sub="43")))["sub"] == "43"

    def test_a_reactivated_user_gets_working_tokens_again(self, verifier, settings):
        now = int(time.time())
        verifier.deny(user_ids=["42"], revoked_at=now - 120)

        assert verifier.verify(tokens.encode(claims_for(settings, iat=now)))["sub"] == "42"


class WhoAmIView(APIView):
    authentication_classes = [VerifiedTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response(
            {
                "id": request.user.id,
                "username": request.user.username,
                "user_type": request.user.user_type,
                "role": request.user.role,
                "session_id": request.user.session_id,
                "sid_claim": request.auth["sid"],
            }
        )


def _view_with(verifier):
    class Authentication(VerifiedTokenAuthentication):
        pass

    Authentication.verifier = verifier
    return WhoAmIView.as_view(authentication_classes=[Authentication])


class TestDRFAuthentication:
    def test_a_valid_token_authenticates_a_token_user(self, verifier):
        session_id = uuid.uuid4()
        access = tokens.token_pair_issue(user=USER, session_id=session_id).access_token
        request = APIRequestFactory().get("/whoami/", HTTP_AUTHORIZATION=f"Bearer {access}")

        response = _view_with(verifier)(request)

        assert response.status_code == status.HTTP_200_OK
        assert response.data == {
            "id": 42,
            "username": "alice",
            "user_type": 3,
            "role": "student",
            "session_id": str(session_id),
            "sid_claim": str(session_id),
        }

    def test_no_token_is_401_with_a_bearer_challenge(self, verifier):
        response = _view_with(verifier)(APIRequestFactory().get("/whoami/"))

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'

    def test_a_rejected_token_is_401_with_the_reason(self, verifier, settings):
        now = int(time.time())
        expired = tokens.encode(claims_for(settings, iat=now - 400, exp=now - 60))
        request = APIRequestFactory().get("/whoami/", HTTP_AUTHORIZATION=f"Bearer {expired}")

        response = _view_with(verifier)(request)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.data["detail"] == "Token has expired."

    def test_a_revoked_session_is_401(self, verifier, settings):
        claims = claims_for(settings)
        verifier.deny(session_ids=[claims["sid"]])
        request = APIRequestFactory().get("/whoami/", HTTP_AUTHORIZATION=f"Bearer {tokens.encode(claims)}")

        assert _view_with(verifier)(request).status_code == status.HTTP_401_UNAUTHORIZED

    @pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer \u00e9t\u00e9"])
    def test_a_malformed_header_is_401(self, verifier, header):
        request = APIRequestFactory().get("/whoami/", HTTP_AUTHORIZATION=header)

        assert _view_with(verifier)(request).status_code == status.HTTP_401_UNAUTHORIZED

    def test_no_signing_keys_is_503_not_401(self, server, settings):
        server.expect_request(JWKS_PATH).respond_with_data("down", status=503)
        verifier = TokenVerifier(jwks_url=server.url_for(JWKS_PATH), issuer=settings.JWT_ISSUER)
        request = APIRequestFactory().get(
            "/whoami/", HTTP_AUTHORIZATION=f"Bearer {tokens.encode(claims_for(settings))}"
        )

        assert _view_with(verifier)(request).status_code == status.HTTP_503_SERVICE_UNAVAILABLE

    def test_the_default_verifier_is_built_from_settings(self, server, jwks, settings):
        settings.USER_SERVICE_JWKS_URL = server.url_for(JWKS_PATH)
        access = tokens.token_pair_issue(user=USER, session_id=uuid.uuid4()).access_token
        request = APIRequestFactory().get("/whoami/", HTTP_AUTHORIZATION=f"Bearer {access}")

        response = WhoAmIView.as_view()(request)

        assert response.status_code == status.HTTP_200_OK
        assert response.data["id"] == 42

    def test_the_default_verifier_without_a_jwks_url_names_the_setting(self, settings):
        settings.USER_SERVICE_JWKS_URL = ""

        with pytest.raises(ImproperlyConfigured, match="USER_SERVICE_JWKS_URL"):
            clients.django.default_verifier()

    def test_token_user_reads_like_an_authenticated_user(self, settings):
        user = TokenUser.from_claims(claims_for(settings))

        assert user.is_authenticated is True
        assert user.is_anonymous is False
        assert user.pk == user.id == 42
        assert str(user) == "alice"

    def test_the_default_verifier_asks_validate_token_when_settings_say_remote(self, server, settings):
        # Given a sibling configured to check tokens remotely
        settings.USER_SERVICE_TOKEN_CHECK = "remote"
        settings.USER_SERVICE_URL = server.url_for("/")

        # When the default verifier is built, then it is the remote one, against that URL
        checker = clients.django.default_verifier()
        assert isinstance(checker, RemoteTokenVerifier)
        assert checker.client.base_url == server.url_for("/").rstrip("/")

    def test_the_names_that_moved_out_of_clients_tokens_still_resolve(self):
        # Settings written before the DRF class moved name it under clients.tokens
        assert clients.tokens.VerifiedTokenAuthentication is clients.drf.VerifiedTokenAuthentication
        assert clients.tokens.AuthenticationUnavailable is clients.drf.AuthenticationUnavailable
        assert clients.tokens.default_verifier is clients.django.default_verifier
        with pytest.raises(AttributeError):
            _ = clients.tokens.NoSuchName
