"""django-oauth-toolkit's request validator, bound to this service's login sessions, keys and claims.

django-oauth-toolkit (with oauthlib) runs the protocol: client authentication, redirect URI matching, PKCE,
code and token storage, refresh token rotation. This validator adds what belongs to this service:

- every authorization code is issued inside a login session (``UserSession``) and remembers it
  (``OidcAuthorization``); tokens minted for the code carry that session's ``sid``;
- the access token is the service's own RS256 access JWT for that session (``users.tokens``), so
  ``validate-token/``, introspection, the siblings' local verifiers and ``principal_resolve`` treat it like any
  other; ending the session ends it;
- the refresh tokens of one code form one token family whose id is the authorization's id: a refresh is refused
  once the session has ended, and a used refresh token or code presented again ends the session (reuse);
- the id_token is signed with the key ring's current key and ``kid`` (the JWKS the service publishes), with
  ``sid``, ``auth_time``, ``amr`` and ``acr`` of the session;
- bearer tokens at the userinfo endpoint go through ``principal_resolve``, the one verifier.
"""

import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone
from oauth2_provider.bcp import bcp_compliant
from oauth2_provider.models import AccessToken, Application, Grant, IDToken, RefreshToken
from oauth2_provider.oauth2_validators import OAuth2Validator, is_valid_resource_uri
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request, urldecode
from oauthlib.oauth2.rfc6749 import errors, utils

from users import cache, metrics, tokens
from users.exceptions import ApplicationError
from users.models import OidcAuthorization, SessionEndReason, UserSession
from users.principal import principal_resolve
from users.selectors import oidc_client_get
from users.services.auth import session_end_for_reuse
from users.services.credentials import secret_hash
from users.services.oidc import claims as oidc_claims
from users.services.oidc.codes import checksum, code_keep, code_pending_get
from users.session_state import session_live_get

__all__ = ["OidcValidator", "access_token_generate", "checksum"]


def access_token_generate(request: Request) -> str:
    """The access token of a code or refresh grant: the service's access JWT for the grant's login session."""
    session: UserSession | None = getattr(request, "ums_session", None)
    if session is None:  # only grants this validator bound to a session reach the token generator
        raise errors.InvalidGrantError(request=request)
    token, _ = tokens.access_token_issue(
        user=request.user,
        session_id=str(session.pk),
        amr=session.amr,
        auth_time=session.auth_time or session.created_at,
        extra={"client_id": request.client.client_id},
    )
    return token


# A code kept in Redis (users.services.oidc.codes) is spent by inserting its authorization, exchanged: the row's unique
# checksum (and id) is the single-use lock. A concurrent exchange's insert waits for the first one's transaction and,
# once it commits, inserts nothing.
_SPEND_PENDING = f"""
INSERT INTO {OidcAuthorization._meta.db_table} (id, code_checksum, application_id, session_id, created_at, exchanged_at)
VALUES (%(authorization)s, %(checksum)s, %(application)s, %(session)s, %(created_at)s, %(now)s)
ON CONFLICT DO NOTHING
"""  # noqa: S608 - the table name is the model's; every value is a parameter

# A code kept in the database (Redis could not keep it): the grant's deletion is the lock (a concurrent exchange
# waits on its row, then deletes nothing); the authorization is marked exchanged only by the exchange that deleted it.
_SPEND = f"""
WITH spent AS (
    DELETE FROM {Grant._meta.db_table} WHERE code = %(code)s AND application_id = %(application)s RETURNING id
)
UPDATE {OidcAuthorization._meta.db_table} SET exchanged_at = %(now)s
WHERE id = %(authorization)s AND exchanged_at IS NULL AND EXISTS (SELECT 1 FROM spent)
"""  # noqa: S608 - the table names are the models'; every value is a parameter


class _CodeSpent(Exception):
    """Another exchange spent this code first (raised inside the exchange's transaction, to roll it back)."""


@dataclass(frozen=True)
class _Code:
    """A code as one token request looked it up: its grant and authorization, and whether Redis kept them (not yet in
    the database) or the database did."""

    code: str
    grant: Grant | None
    authorization: OidcAuthorization | None
    pending: bool


def _client_ip(request: Request) -> str | None:
    return request.headers.get("REMOTE_ADDR") if request.headers else None


class OidcValidator(OAuth2Validator):
    oidc_claim_scope = None  # the scopes' claims are users.services.oidc.claims'

    def _check_secret(self, provided_secret: str, stored_secret: str) -> bool:
        """Secrets stored by ``users.services.oidc.clients`` (SHA-256, as service accounts'); others as DOT does."""
        if stored_secret.startswith("sha256$"):
            return hmac.compare_digest(stored_secret, secret_hash(provided_secret))
        return super()._check_secret(provided_secret, stored_secret)

    # --- authorization request -------------------------------------------------------------------------------

    def validate_client_id(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> bool:
        """As django-oauth-toolkit's (which keeps its checks), with the client kept by this process for a few
        seconds (``users.cache.oidc_client_get``; the token endpoint reads it from the database every time)."""
        if not request.client:
            try:
                request.client = cache.oidc_client_get(client_id, load=oidc_client_get)
            except (ValueError, DataError):  # a client_id the database cannot hold names no client
                return False
        return super().validate_client_id(client_id, request, *args, **kwargs)

    def is_pkce_required(self, client_id: str, request: Request) -> bool:
        """Public clients must use PKCE; a confidential client may (its verifier is then checked too)."""
        client = request.client or Application.objects.filter(client_id=client_id).first()
        return client is None or client.client_type == Application.CLIENT_PUBLIC

    def validate_silent_login(self, request: Request) -> bool:
        return True  # prompt=none is answered by the authorization view, which knows the sign-in session

    def validate_silent_authorization(self, request: Request) -> bool:
        return True  # likewise, for consent

    def _create_authorization_code(self, request: Request, code: dict, expires: Any = None) -> Any:
        """The code's grant and its authorization (the login session), kept in Redis until the code is exchanged or
        expires (``users.services.oidc.codes``): nothing is written to the database. Where Redis cannot keep them,
        both rows are written, in one transaction.

        The grant is django-oauth-toolkit's, built as its ``_create_authorization_code`` builds it (``_grant_new``).
        """
        session_id = getattr(request, "ums_sid", None)
        if not session_id:
            raise errors.AccessDeniedError(request=request)
        grant = self._grant_new(request, code, expires)
        authorization = OidcAuthorization(
            code_checksum=checksum(code["code"]), application=request.client, session_id=session_id
        )
        if code_keep(grant, authorization):
            return grant
        with transaction.atomic(savepoint=False):
            grant.save(force_insert=True)
            authorization.save(force_insert=True)
        return grant

    def _grant_new(self, request: Request, code: dict, expires: Any = None) -> Grant:
        """The grant django-oauth-toolkit 3.4's ``_create_authorization_code`` creates (its fields, its refusal of
        "plain" PKCE), not yet written: its fields are what a code's record in Redis keeps.
        ``users/tests/test_oidc_exchange.py`` pins the library's version and the grant's fields."""
        if not expires:
            expires = timezone.now() + timedelta(seconds=oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS)
        if request.code_challenge_method == "plain" and bcp_compliant(
            "COMPLIANT_BCP_RFC9700_PKCE_METHOD", 'The PKCE "plain" code_challenge_method'
        ):
            raise errors.InvalidRequestError(
                description='Unsupported "plain" code_challenge_method; use "S256".', request=request
            )
        # RFC 8707 resource indicators: every ``resource`` parameter (oauthlib keeps the last), each an absolute URI,
        # as django-oauth-toolkit's authorization view takes them.
        resources = [value for name, value in urldecode(request.uri_query or "") if name == "resource"]
        for resource in resources:
            if not is_valid_resource_uri(resource):
                raise errors.CustomOAuth2Error(
                    error="invalid_target",
                    description=f"The resource '{resource}' is not a valid resource indicator: it must be an absolute "
                    "URI with a scheme and host.",
                    request=request,
                )
        return Grant(
            application=request.client,
            user=request.user,
            code=code["code"],
            expires=expires,
            redirect_uri=request.redirect_uri,
            scope=" ".join(request.scopes),
            code_challenge=request.code_challenge or "",
            code_challenge_method=request.code_challenge_method or "",
            nonce=request.nonce or "",
            claims=json.dumps(request.claims or {}),
            resource=resources,
        )

    # --- code exchange ---------------------------------------------------------------------------------------
    #
    # oauthlib asks for the code's grant in six hooks (the OpenID dispatcher's scopes, validate_code, the PKCE
    # challenge and method, the redirect URI, the nonce), and django-oauth-toolkit reads the row in each. Here the
    # code is looked up once per request (``_code``): its record in Redis, or else its rows in the database. Every
    # check DOT makes is still made on its grant: the client it was issued to, expiry (``Grant.is_expired``), the exact
    # redirect URI (``Grant.redirect_uri_allowed``), PKCE (oauthlib, from the challenge and method below).
    #
    # A successful exchange is one transaction (``save_bearer_token``): the id_token record, the access and refresh
    # tokens, and the code spent (``_code_spend``: its authorization inserted, exchanged; for a code kept in the
    # database, its grant deleted and its authorization marked exchanged). Spending the code is its single-use lock:
    # of two exchanges of one code the second waits for the first to commit and spends nothing. The loser's
    # transaction is rolled back and only then is the reuse answered (``_reused``: the code's tokens revoked, its
    # login session ended), in transactions of its own, so the revocation survives the failed exchange.

    def _code(self, code: str, request: Request) -> _Code:
        """The grant and authorization of ``code`` (any client's), looked up once per request: from its record in
        Redis (not yet exchanged, or being exchanged), else from the database (kept there, or already exchanged).
        The authorization comes with its login session, person and client."""
        memo: _Code | None = getattr(request, "ums_code", None)
        if memo is not None and memo.code == code:
            return memo
        pending = code_pending_get(code)
        if pending is None:
            grant = next(iter(Grant.objects.filter(code=code)[:1]), None)
            related = OidcAuthorization.objects.select_related("session__user", "application")
            authorization = next(iter(related.filter(code_checksum=checksum(code))[:1]), None)
        else:
            grant, authorization = pending.grant, pending.authorization
            session = UserSession.objects.select_related("user").filter(pk=authorization.session_id).first()
            client = Application.objects.filter(pk=authorization.application_id).first()
            if session is None or client is None:  # deleted since the code was issued
                grant = authorization = None
            else:
                authorization.session = session
                authorization.application = grant.application = client
        memo = _Code(code=code, grant=grant, authorization=authorization, pending=pending is not None)
        request.ums_code = memo
        return memo

    def _grant(self, code: str, request: Request) -> Grant | None:
        return self._code(code, request).grant

    def _authorization(self, code: str, request: Request) -> OidcAuthorization | None:
        return self._code(code, request).authorization

    def _client_grant(self, code: str, client: Application | None, request: Request) -> Grant | None:
        """The grant of ``code`` if it was issued to ``client``."""
        grant = self._grant(code, request)
        if grant is None or client is None or grant.application_id != client.pk:
            return None
        return grant

    def get_authorization_code_scopes(
        self, client_id: str, code: str, redirect_uri: str, request: Request
    ) -> list[str]:
        """The grant's scopes (the OpenID dispatcher's first question); the code's authorization is read with it, and
        its client offered to django-oauth-toolkit's client cache, which takes it only for the client_id the request
        authenticates as (``_load_application``), so client authentication reads no row of its own."""
        grant = self._grant(code, request)
        authorization = self._authorization(code, request)
        if authorization is not None and not request.client:
            request.client = authorization.application
        return utils.scope_to_list(grant.scope) if grant and grant.scope else []

    def get_authorization_code_nonce(
        self, client_id: str, code: str, redirect_uri: str, request: Request
    ) -> str | None:
        grant = self._grant(code, request)
        return (grant.nonce or None) if grant else None

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        # The person comes with the login session (the code's grant is theirs: checked below).
        authorization = self._authorization(code, request)
        if authorization is None or client is None or authorization.application_id != client.pk:
            return False
        if authorization.exchanged_at is not None:
            self._reused(authorization, request, grant="authorization_code")
            return False
        grant = self._client_grant(code, client, request)
        if grant is None or grant.is_expired() or grant.user_id != authorization.session.user_id:
            return False
        # What django-oauth-toolkit's validate_code puts on the request.
        request.scopes = grant.scope.split(" ")
        request.user = authorization.session.user
        if grant.nonce:
            request.nonce = grant.nonce
        if grant.claims:
            request.claims = json.loads(grant.claims)
        return self._bind_session(request, authorization)

    def get_code_challenge(self, code: str, request: Request) -> str | None:
        grant = self._client_grant(code, request.client, request)
        if grant is None:  # validate_code, which comes first, refused it already
            raise errors.InvalidGrantError(request=request)
        return grant.code_challenge or None

    def get_code_challenge_method(self, code: str, request: Request) -> str | None:
        grant = self._client_grant(code, request.client, request)
        if grant is None:
            raise errors.InvalidGrantError(request=request)
        return grant.code_challenge_method or None

    def confirm_redirect_uri(
        self, client_id: str, code: str, redirect_uri: str, client: Any, *args: Any, **kwargs: Any
    ) -> bool:
        request: Request | None = kwargs.get("request") or (args[0] if args else None)
        if request is None:
            return super().confirm_redirect_uri(client_id, code, redirect_uri, client, *args, **kwargs)
        grant = self._client_grant(code, client, request)
        return grant is not None and grant.redirect_uri_allowed(redirect_uri)

    def save_bearer_token(self, token: dict, request: Request, *args: Any, **kwargs: Any) -> Any:
        """The tokens, their id_token record and, for a code, its spending: one transaction; once committed, the
        tokens are counted as issued (``ums_tokens_issued_total``, as the API's login and refresh count theirs).

        A code another exchange spent first (a concurrent one) rolls all of it back, and is then answered as a reuse.
        """
        authorization: OidcAuthorization | None = (
            getattr(request, "ums_authorization", None) if request.grant_type == "authorization_code" else None
        )
        try:
            with transaction.atomic():
                self._id_token_save(request)
                saved = self._save_bearer_token(token, request, *args, **kwargs)
                if authorization is not None and not self._code_spend(request, authorization):
                    raise _CodeSpent
        except _CodeSpent:
            self._reused(request.ums_authorization, request, grant="authorization_code")
            raise errors.InvalidGrantError(request=request) from None
        except IntegrityError:  # the login session or the client was deleted during the exchange
            raise errors.InvalidGrantError(request=request) from None
        metrics.TOKENS_ISSUED.labels(type="access").inc()
        if token.get("refresh_token"):
            metrics.TOKENS_ISSUED.labels(type="refresh").inc()
        return saved

    def _check_and_set_request_resource(self, request: Request) -> None:
        """django-oauth-toolkit 3.4's RFC 8707 handling of the token request's ``resource`` (normalised, each an
        absolute URI); for a code, the narrowing to the grant's resources is made on the grant this request looked up,
        as DOT makes it on the grant's row, which a code kept in Redis does not have."""
        if request.grant_type != "authorization_code":
            super()._check_and_set_request_resource(request)
            return
        request.grant_type = None  # DOT's normalisation and checks of the request's own resources only
        try:
            super()._check_and_set_request_resource(request)
        finally:
            request.grant_type = "authorization_code"
        grant = self._grant(request.code, request)
        granted = list(grant.resource or []) if grant is not None else []
        if request.resource and granted:
            for resource in request.resource:
                if resource not in granted:
                    raise errors.CustomOAuth2Error(
                        error="invalid_target",
                        description=f"The requested resource '{resource}' is not allowed: the code was not granted it.",
                        request=request,
                    )
        elif granted:
            self._validate_resource_uris(request, granted)
            request.resource = granted

    def _code_spend(self, request: Request, authorization: OidcAuthorization) -> bool:
        """Spend the code (one statement): insert its authorization, exchanged, when Redis kept the code; delete its
        grant and mark its authorization exchanged when the database did. False if another exchange did first."""
        now = timezone.now()
        if connection.vendor != "postgresql":  # the embedded SQLite (no Redis, no data-modifying CTE): the ORM
            spent = Grant.objects.filter(code=request.code, application_id=request.client.pk).delete()[0] > 0
            pending = OidcAuthorization.objects.filter(pk=authorization.pk, exchanged_at__isnull=True)
            request.ums_code_spent = spent and pending.update(exchanged_at=now) == 1
            return request.ums_code_spent
        params: dict[str, Any]
        if self._code(request.code, request).pending:
            sql = _SPEND_PENDING
            params = {
                "authorization": authorization.pk,
                "checksum": authorization.code_checksum,
                "application": authorization.application_id,
                "session": authorization.session_id,
                "created_at": authorization.created_at,
                "now": now,
            }
        else:
            sql = _SPEND
            params = {
                "code": request.code,
                "application": request.client.pk,
                "authorization": authorization.pk,
                "now": now,
            }
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            request.ums_code_spent = cursor.rowcount == 1
        return request.ums_code_spent

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Request, *args: Any, **kwargs: Any
    ) -> None:
        """The code was spent by ``save_bearer_token``, in the transaction that stored its tokens."""
        if getattr(request, "ums_code_spent", False):
            return
        super().invalidate_authorization_code(client_id, code, request, *args, **kwargs)

    def _bind_session(self, request: Request, authorization: OidcAuthorization) -> bool:
        session = authorization.session
        if session_live_get(session_id=str(session.pk), user_id=session.user_id) is None:
            return False
        request.ums_authorization = authorization
        request.ums_session = session
        return True

    def _reused(self, authorization: OidcAuthorization, request: Request, *, grant: str) -> None:
        """A spent code or refresh token came back: revoke what the code led to and end its login session."""
        RefreshToken.revoke_family(authorization.pk)
        session_end_for_reuse(
            session_id=str(authorization.session_id),
            reason=SessionEndReason.CODE_REUSE if grant == "authorization_code" else SessionEndReason.REFRESH_REUSE,
            ip=_client_ip(request),
            data={"grant": grant, "client_id": request.client_id},
        )

    def _create_refresh_token(
        self, request: Request, refresh_token_code: str, access_token: Any, previous_refresh_token: Any
    ) -> RefreshToken:
        """As django-oauth-toolkit's, with the code's authorization as the token family."""
        family = previous_refresh_token.token_family if previous_refresh_token else request.ums_authorization.pk
        refresh_token = RefreshToken(
            user=request.user,
            application=request.client,
            access_token=access_token,
            token_family=family,
            resource=getattr(request, "resource", []),
        )
        self._set_token_value(refresh_token, refresh_token_code)
        refresh_token.save()
        return refresh_token

    # --- refresh ---------------------------------------------------------------------------------------------

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        row = (
            RefreshToken.objects.filter(token_checksum=checksum(refresh_token), application=client)
            .values_list("token_family", "revoked", "created")
            .first()
        )
        if row is None or row[0] is None:
            return False
        family, revoked, created = row
        authorization = OidcAuthorization.objects.select_related("session").filter(pk=family).first()
        if authorization is None:
            return False
        if revoked is not None:
            # Rotated away (a newer token of its family exists): presenting it again is a reuse. Merely revoked
            # (the revocation endpoint, consent withdrawn, logout): refused, nothing more.
            if RefreshToken.objects.filter(token_family=family, created__gt=created).exists():
                self._reused(authorization, request, grant="refresh_token")
            return False
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        return self._bind_session(request, authorization)

    # --- id_token and userinfo -------------------------------------------------------------------------------

    def get_oidc_issuer_endpoint(self, request: Request) -> str:
        return settings.JWT_ISSUER

    def get_oidc_claims(self, token: Any, token_handler: Any, request: Request) -> dict[str, Any]:
        return oidc_claims.person_claims(request.user, list(request.scopes or []))

    def get_discovery_claims(self, request: Request) -> list[str]:
        return oidc_claims.claims_supported()

    def get_id_token_dictionary(self, token: Any, token_handler: Any, request: Request) -> tuple[dict, Any]:
        session: UserSession = request.ums_session
        amr = list(session.amr or ["pwd"])
        auth_time = session.auth_time or session.created_at
        expires_at = timezone.now() + timedelta(seconds=oauth2_settings.ID_TOKEN_EXPIRE_SECONDS)
        claims = {
            **self.get_oidc_claims(token, token_handler, request),
            "iss": settings.JWT_ISSUER,
            "exp": int(expires_at.timestamp()),
            "auth_time": int(auth_time.timestamp()),
            "jti": str(uuid.uuid4()),
            "sid": str(session.pk),
            "amr": amr,
            "acr": oidc_claims.acr_for(amr),
        }
        return claims, expires_at

    def finalize_id_token(self, id_token: dict, token: Any, token_handler: Any, request: Request) -> str:
        """Sign the id_token with the key ring (RS256, the JWKS's ``kid``) and record it."""
        claims, expires_at = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(claims)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        signed = tokens.encode(id_token)
        # Recorded by save_bearer_token, which oauthlib calls next, in the transaction that stores the tokens.
        request.ums_id_token_pending = (id_token["jti"], expires_at, signed)
        return signed

    def _id_token_save(self, request: Request) -> None:
        """Record the id_token ``finalize_id_token`` signed for this request, if any."""
        pending = getattr(request, "ums_id_token_pending", None)
        if pending is None:
            return
        jti, expires_at, signed = pending
        record = self._save_id_token(jti, request, expires_at)
        request.ums_id_token_pending = None
        request.ums_id_token_saved = (signed, record)
        request.access_token = record  # as django-oauth-toolkit's finalize_id_token leaves them
        request.id_token = record

    def _create_access_token(
        self, expires: Any, request: Request, token: dict, source_refresh_token: Any = None
    ) -> AccessToken:
        """As django-oauth-toolkit 3.4's, linked to the id_token record just written (DOT decodes the token and reads
        the record back). ``users/tests/test_oidc_exchange.py`` pins the library's version and the row's fields."""
        saved: tuple[str, IDToken] | None = getattr(request, "ums_id_token_saved", None)
        if not token.get("id_token") or saved is None or saved[0] != token["id_token"]:
            return super()._create_access_token(expires, request, token, source_refresh_token)
        access_token = AccessToken(
            user=request.user,
            scope=token["scope"],
            expires=expires,
            id_token=saved[1],
            application=request.client,
            source_refresh_token=source_refresh_token,
            resource=getattr(request, "resource", []),
        )
        self._set_token_value(access_token, token["access_token"])
        access_token.save()
        return access_token

    def _load_id_token(self, token: str) -> IDToken | None:
        """The record of an id_token this service signed (expired ones too: a logout hint may be old)."""
        payload = tokens.id_token_hint_decode(token)
        if payload is None:
            return None
        return IDToken.objects.filter(jti=payload.get("jti")).select_related("application", "user").first()

    def get_userinfo_claims(self, request: Request) -> dict[str, Any]:
        return oidc_claims.person_claims(request.user, list(request.scopes or []))

    def validate_bearer_token(self, token: str, scopes: list[str], request: Request) -> bool:
        """The one verifier first (signature, claims, live session), then the token's record and scopes."""
        if not token:
            return False
        try:
            principal_resolve(token)
        except ApplicationError as exc:
            request.oauth2_error = {"error": "invalid_token", "error_description": exc.message}
            return False
        return super().validate_bearer_token(token, scopes, request)
