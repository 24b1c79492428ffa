"""Facts about the HTTP client: its IP address (proxy-aware) and user agent."""

from django.conf import settings


def client_ip(request) -> str | None:
    """The caller's IP: REMOTE_ADDR, or the X-Forwarded-For entry added by the nearest trusted proxy.

    ``X-Forwarded-For`` is read only when ``TRUSTED_PROXY_COUNT`` proxies sit in front of the service,
    and then from the right, so a client cannot choose its own address by sending the header.
    """
    remote = request.META.get("REMOTE_ADDR")
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < trusted:
        return remote
    return forwarded[-trusted]


def user_agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:512]
