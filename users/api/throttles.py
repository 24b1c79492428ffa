"""Request throttles (DRF, on the shared cache): per client IP for public endpoints, per principal otherwise.

Deliberately not throttled: health checks (probes), the JWKS and discovery documents (cacheable, needed by
every verifier), and validate-token (a gateway calls it for all its users from one address; a per-IP limit
would throttle a whole school). Login and service-token also have lockouts (users/services/lockout.py).
"""

from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle


class PublicEndpointThrottle(ScopedRateThrottle):
    """Per client IP (X-Forwarded-For trusted only behind TRUSTED_PROXY_COUNT proxies), by the view's scope."""

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PrincipalThrottle(SimpleRateThrottle):
    """Per signed-in person or service account: a generous ceiling against runaway clients."""

    scope = "principal"

    def get_cache_key(self, request, view):
        user = request.user
        if getattr(user, "is_service", False):
            ident = f"service:{user.client_id}"
        elif getattr(user, "is_authenticated", False):
            ident = f"user:{user.pk}"
        else:
            return None  # anonymous: public endpoints carry their own scoped throttle
        return self.cache_format % {"scope": self.scope, "ident": ident}
