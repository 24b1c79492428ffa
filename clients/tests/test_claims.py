"""The shared claim contract: what a well-formed token of each type is, and that it needs no Django."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest

from clients import claims
from clients.claims import ClaimsInvalid, WrongTokenType, claims_check, token_type_check

REPO = Path(__file__).resolve().parents[2]


def access_claims(**overrides: object) -> dict:
    return {
        "sub": "42",
        "sid": str(uuid.uuid4()),
        "jti": uuid.uuid4().hex,
        "iat": 1,
        "exp": 2,
        "iss": "http://users",
        "token_type": "access",
        "user_type": 3,
        "role": "student",
        "username": "alice",
        **overrides,
    }


def service_claims(**overrides: object) -> dict:
    return {
        "sub": "attendance",
        "scope": ["users:read"],
        "jti": "j",
        "iat": 1,
        "exp": 2,
        "iss": "http://users",
        "token_type": "service",
        **overrides,
    }


BROKEN_REFRESH = access_claims(token_type="refresh", sid="not-a-uuid")


class TestClaimsCheck:
    def test_well_formed_tokens_of_each_type_pass(self):
        claims_check(access_claims(), token_types=(claims.ACCESS,))
        claims_check(access_claims(token_type="refresh"), token_types=(claims.REFRESH,))
        claims_check(service_claims(), token_types=(claims.ACCESS, claims.SERVICE))

    @pytest.mark.parametrize(
        ("broken", "token_types", "reason"),
        [
            (access_claims(token_type="refresh", sid="x"), (claims.ACCESS,), "Token is not an access token."),
            (
                access_claims(token_type="refresh", sid="x"),
                (claims.ACCESS, claims.SERVICE),
                "Token is not an access token.",
            ),
            (service_claims(scope="x"), (claims.ACCESS,), "Token is not an access token."),
            (access_claims(sid="x"), (claims.REFRESH,), "Token is not a refresh token."),
        ],
        ids=["refresh-as-access", "refresh-as-access-or-service", "service-as-access", "access-as-refresh"],
    )
    def test_another_type_is_reported_before_its_broken_claims(self, broken, token_types, reason):
        with pytest.raises(WrongTokenType) as refused:
            claims_check(broken, token_types=token_types)

        assert refused.value.reason == reason
        assert refused.value.expected == token_types

    @pytest.mark.parametrize("token_type", [None, 5, "id", ["access"]])
    def test_a_missing_or_unknown_type_is_a_wrong_type(self, token_type):
        with pytest.raises(WrongTokenType):
            claims_check(access_claims(token_type=token_type), token_types=claims.TOKEN_TYPES)

    @pytest.mark.parametrize(
        "overrides",
        [
            {"sub": "abc"},
            {"sub": "²"},  # a digit to str.isdigit, not an id
            {"sub": 42},
            {"sub": ""},
            {"sid": "not-a-uuid"},
            {"sid": 5},
            {"sid": None},
        ],
    )
    @pytest.mark.parametrize("token_type", [claims.ACCESS, claims.REFRESH])
    def test_user_claims_must_be_a_digit_id_and_a_session_uuid(self, overrides, token_type):
        with pytest.raises(ClaimsInvalid) as refused:
            claims_check(access_claims(token_type=token_type, **overrides), token_types=(token_type,))

        assert type(refused.value) is ClaimsInvalid
        assert refused.value.reason == "Token is invalid."

    @pytest.mark.parametrize("overrides", [{"scope": "users:read"}, {"scope": ["a", 1]}, {"scope": None}, {"sub": 7}])
    def test_service_claims_must_be_a_client_id_and_a_scope_list(self, overrides):
        with pytest.raises(ClaimsInvalid, match="Token is invalid"):
            claims_check(service_claims(**overrides), token_types=(claims.SERVICE,))

    @pytest.mark.parametrize(
        ("make", "token_type"),
        [(access_claims, claims.ACCESS), (access_claims, claims.REFRESH), (service_claims, claims.SERVICE)],
    )
    def test_every_required_claim_of_a_type_is_required(self, make, token_type):
        for name in claims.REQUIRED_CLAIMS_BY_TYPE[token_type]:
            if name == claims.TOKEN_TYPE:
                continue  # its absence is a wrong type, above
            complete = make(token_type=token_type)
            del complete[name]

            with pytest.raises(ClaimsInvalid):
                claims_check(complete, token_types=(token_type,))

    def test_the_type_alone_is_checked_for_remembered_claims(self):
        assert token_type_check(access_claims(), (claims.ACCESS, claims.SERVICE)) == claims.ACCESS
        with pytest.raises(WrongTokenType):
            token_type_check(access_claims(), (claims.REFRESH,))


class TestTheIssuerFollowsTheContract:
    def test_minted_tokens_carry_exactly_the_contracts_claims(self, settings):
        from users import tokens

        user = SimpleNamespace(pk=42, user_type=3, role="student", username="alice")
        pair = tokens.token_pair_issue(user=user, session_id=uuid.uuid4())
        access = jwt.decode(pair.access_token, options={"verify_signature": False})
        refresh = jwt.decode(pair.refresh_token, options={"verify_signature": False})

        assert set(access) == claims.ACCESS_CLAIMS
        assert set(refresh) == claims.REFRESH_CLAIMS
        assert jwt.get_unverified_header(pair.access_token)["alg"] == claims.ALGORITHM
        claims_check(access, token_types=(claims.ACCESS,))
        claims_check(refresh, token_types=(claims.REFRESH,))

    @pytest.mark.django_db
    def test_service_tokens_carry_exactly_the_contracts_claims(self):
        from users.services.service_accounts import service_account_create, service_token_issue

        account, secret = service_account_create(name="library", scopes=["users:read"])
        token = service_token_issue(client_id=account.client_id, client_secret=secret).access_token
        service = jwt.decode(token, options={"verify_signature": False})

        assert set(service) == claims.SERVICE_CLAIMS
        claims_check(service, token_types=(claims.SERVICE,))


def test_the_contract_imports_without_django():
    # Given a Python in which importing Django fails
    script = textwrap.dedent(
        """
        import sys
        sys.modules["django"] = None  # any `import django...` now raises ImportError
        from clients import claims
        claims.claims_check(
            {"sub": "1", "sid": "00000000-0000-0000-0000-000000000000", "jti": "j", "iat": 1, "exp": 2,
             "iss": "i", "token_type": "access"},
            token_types=(claims.ACCESS,),
        )
        assert not any(name == "django" or name.startswith("django.") for name in sys.modules if sys.modules[name])
        print("ok")
        """
    )

    # When clients.claims is imported and used there
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )

    # Then it works: the contract needs no Django
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_verifier_of_an_unknown_token_type_is_refused():
    from clients.tokens import TokenVerifier

    with pytest.raises(ValueError, match="token_type must be one of"):
        TokenVerifier(jwks_url="http://users/jwks.json", issuer="http://users", token_type="id")
