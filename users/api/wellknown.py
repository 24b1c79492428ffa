"""Public key discovery: the JWKS and the OpenID Connect discovery document."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.reverse import reverse

from users.api.views import PublicAPIView
from users.services.oidc import claims as oidc_claims
from users.tokens import ALGORITHM, key_ring


class JWKSView(PublicAPIView):
    @extend_schema(
        tags=["services"],
        summary="Public signing keys (current and previous) as a JSON Web Key Set",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        return Response(key_ring().jwks, headers={"Cache-Control": "public, max-age=300"})


class OpenIDConfigurationView(PublicAPIView):
    @extend_schema(
        tags=["services"],
        summary="Discovery document: issuer, JWKS, OpenID Connect and token endpoints, scopes, claims, algorithms",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        def url(name: str) -> str:
            return reverse(name, request=request)

        return Response(
            {
                "issuer": settings.JWT_ISSUER,
                "jwks_uri": url("users:jwks"),
                # OpenID Connect: the sign-in pages and the protocol endpoints (users/web/)
                "authorization_endpoint": url("web:authorize"),
                "token_endpoint": url("web:token"),
                "userinfo_endpoint": url("web:userinfo"),
                "revocation_endpoint": url("web:revoke"),
                "end_session_endpoint": url("web:end-session"),
                "scopes_supported": oidc_claims.scopes_supported(),
                "claims_supported": oidc_claims.claims_supported(),
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "code_challenge_methods_supported": ["S256"],
                "acr_values_supported": [oidc_claims.ACR_SINGLE_FACTOR, oidc_claims.ACR_MULTI_FACTOR],
                "prompt_values_supported": ["none", "login", "consent"],
                "authorization_response_iss_parameter_supported": True,
                "backchannel_logout_supported": True,
                "backchannel_logout_session_supported": True,
                "frontchannel_logout_supported": False,
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "id_token_signing_alg_values_supported": [ALGORITHM],
                "subject_types_supported": ["public"],
                # This service's own API: service tokens (also served by token_endpoint), introspection, login
                "service_token_endpoint": url("users:service-token"),
                "introspection_endpoint": url("users:token-introspect"),
                "login_endpoint": url("users:login"),
                "refresh_endpoint": url("users:token-refresh"),
            },
            headers={"Cache-Control": "public, max-age=300"},
        )
