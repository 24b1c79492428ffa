"""Response headers of the sign-in pages: no framing, a strict Content-Security-Policy, nothing cached."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

# Only this service's own stylesheet, images and scripts (the passkey button's static file; no inline script, so
# nothing injected into a page can run), fetches to itself only (the passkey options); no plugin, no framing, no
# <base>. ``form-action`` is left out on purpose: browsers apply it to the redirects that follow a form post, and
# the consent form's answer is a redirect to the client.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def page_headers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response["X-Frame-Options"] = "DENY"
        response["Referrer-Policy"] = "same-origin"  # "no-referrer" makes browsers post forms with Origin: null
        add_never_cache_headers(response)
        return response

    return wrapped
