"""Facts about the HTTP client: its IP address (proxy-aware), whether it is in a configured network, user agent."""

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def address_in_networks(address: str | None, networks: Iterable[Network]) -> bool:
    """Whether ``address`` (a client IP as ``client_ip`` answers it) lies in one of ``networks`` (parsed in settings).

    An absent or unparsable address is in no network. An IPv4-mapped IPv6 address (``::ffff:10.0.0.5``, what a
    dual-stack socket reports) is compared as the IPv4 address it carries.
    """
    if not address:
        return False
    return _address_in(address, tuple(networks))


@lru_cache(maxsize=4096)
def _address_in(address: str, networks: tuple[Network, ...]) -> bool:
    """Remembered per process: parsing the address and testing each network costs more than a login's lookups."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def client_throttle_exempt(request: HttpRequest | Request) -> bool:
    """Whether the caller is a trusted one (``THROTTLE_EXEMPT_NETWORKS``): no per-IP throttle or lockout for it."""
    return address_in_networks(client_ip(request), settings.THROTTLE_EXEMPT_NETWORKS)


def user_agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:512]
