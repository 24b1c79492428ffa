"""Public key discovery: the JWKS and the OpenID-style discovery document."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.reverse import reverse

from users.api.views import PublicAPIView
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
        summary="Discovery document: issuer, JWKS and token endpoints, algorithms",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        def url(name: str) -> str:
            return reverse(name, request=request)

        return Response(
            {
                "issuer": settings.JWT_ISSUER,
                "jwks_uri": url("users:jwks"),
                "token_endpoint": url("users:service-token"),
                "introspection_endpoint": url("users:token-introspect"),
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "id_token_signing_alg_values_supported": [ALGORITHM],
                "grant_types_supported": ["client_credentials"],
                "login_endpoint": url("users:login"),
                "refresh_endpoint": url("users:token-refresh"),
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "claims_supported": ["sub", "user_type", "role", "username", "sid", "jti", "iat", "exp", "iss"],
            },
            headers={"Cache-Control": "public, max-age=300"},
        )
