"""Facts about the HTTP client: its IP address (proxy-aware), whether it is in a configured network, user agent,
and the client credentials it sent (HTTP Basic or form fields)."""

import base64
import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

from users.exceptions import InvalidClient

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


def client_credentials(request: HttpRequest | Request, body: Mapping[str, Any]) -> tuple[str, str]:
    """The client id and secret of a client-credentials grant: HTTP Basic if the request has it, else ``body``'s
    ``client_id`` and ``client_secret`` (RFC 6749 2.3.1); ``InvalidClient`` if either is missing or Basic is malformed.

    In Basic both are form-urlencoded before base64 (RFC 6749 2.3.1), so they are decoded here ("%3A" is ":", "+" a
    space), as every OAuth client library encodes them.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, colon, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError, or a header that is not ASCII at all
            raise InvalidClient("Malformed HTTP Basic credentials.") from exc
        if not colon:
            raise InvalidClient("Malformed HTTP Basic credentials.")
        client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    else:
        client_id, secret = body.get("client_id") or "", body.get("client_secret") or ""
    if not (client_id and secret):
        raise InvalidClient("client_id and client_secret are required (body or HTTP Basic).")
    return client_id, secret
