"""Request plumbing: a request id on every request and response, and one structured log line per request."""

import logging
import re
import secrets
import time
from collections.abc import Callable

from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponse, JsonResponse

from user_service.exceptions import ApplicationError, error_status
from users import metrics
from users.api.parsers import text_error, urlencoded_text_error

logger = logging.getLogger("user_service.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def _request_id(request) -> str:
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    return incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(16)


class RequestIdMiddleware:
    """Accept a sane ``X-Request-ID`` or make one; return it; log the request once it is answered.

    The log line carries method, path (never the query string, which may hold secrets), view, status,
    duration and the user id; never headers or bodies, so no token or password reaches the logs.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = _request_id(request)
        started = time.perf_counter()
        response = self.get_response(request)
        duration = time.perf_counter() - started
        response["X-Request-ID"] = request.request_id
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match else "unmatched"
        metrics.request_observe(view=view, method=request.method, status=response.status_code, seconds=duration)
        if not logger.isEnabledFor(logging.INFO):
            return response
        user = getattr(request, "user", None)
        logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "request_id": request.request_id,
                "method": request.method,
                "path": request.path,
                "view": view,
                "status": response.status_code,
                "duration_ms": round(duration * 1000, 2),
                "user_id": getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None,
            },
        )
        return response


class BodySizeLimitMiddleware:
    """Refuse bodies over ``REQUEST_MAX_BYTES`` (``UPLOAD_MAX_BYTES`` for multipart uploads) with 413.

    DRF reads the request stream itself, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, so the limit is
    enforced here, before any parsing. A body without a valid Content-Length is refused (411).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.conf import settings
        from django.http import JsonResponse

        if request.method in ("POST", "PUT", "PATCH"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "Invalid Content-Length.", "code": "bad_request"}, status=400)
            multipart = request.content_type == "multipart/form-data"
            limit = settings.UPLOAD_MAX_BYTES if multipart else settings.REQUEST_MAX_BYTES
            if length > limit:
                return JsonResponse(
                    {"detail": f"Request body too large; the limit is {limit} bytes.", "code": "payload_too_large"},
                    status=413,
                )
        return self.get_response(request)


class URLTextMiddleware:
    """Refuse (400) a query string that does not decode to valid UTF-8 text without NUL.

    Django decodes it leniently (bad bytes become U+FFFD), so such a request would otherwise be answered
    as if it had asked for something else; a NUL would reach PostgreSQL, which cannot store or compare it.
    The rule lives in ``users.api.parsers`` (form bodies pass the same). Every view is behind it: the admin
    and the fast validate-token/ path too. A path comes decoded and with any bytes that are not UTF-8
    percent-encoded again by Django, so it names no route; a path holding a NUL names none either, and is
    answered 404 here before a converter that accepts any text could hand it on.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        error = urlencoded_text_error(request.META.get("QUERY_STRING", ""))
        if error:
            return JsonResponse({"detail": error, "code": "invalid_encoding"}, status=400)
        if text_error(request.path_info):
            return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
        return self.get_response(request)


# --- The admin's cookie machinery, skipped for the bearer-token API and the authorization endpoint ---------

API_PREFIX = "/api/v1/"
AUTHORIZE_PATH = "/oidc/authorize/"  # users.web.urls, "web:authorize"


def admin_cookies_unused(path: str) -> bool:
    """Whether Django's session, user and messages serve nothing on ``path``: the bearer-token API and the
    authorization endpoint (whose sign-in is the SSO pages' own signed cookie, ``users.web.signin``)."""
    return path.startswith(API_PREFIX) or path == AUTHORIZE_PATH


class _SkippedWhereUnused:
    """Mixin for Django's cookie-based middleware: requests to the API and the authorization endpoint pass
    straight through (``admin_cookies_unused``).

    The API authenticates bearer tokens only (no session authentication), so a session store, a lazy
    ``request.user`` and a message store would be built and thrown away on every call, a visible share of a
    token validation (README, "Benchmarks"); the authorization endpoint reads the SSO sign-in cookie. The admin, the
    API docs and the other pages keep all of it. These are subclasses, so Django's admin checks still recognise
    them. CSRF keeps Django's own middleware (the deploy checks look for it by name); every API view is
    CSRF-exempt, so it costs almost nothing there, and the consent form is checked by it.
    """

    def __call__(self, request):
        if admin_cookies_unused(request.path_info):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_SkippedWhereUnused, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(_SkippedWhereUnused, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(_SkippedWhereUnused, messages.MessageMiddleware):
    pass


class DomainErrorPageMiddleware:
    """A domain error raised outside DRF (the admin's pages) gets its mapped status and message, not a 500 page.

    The API maps these in its exception handler; this is the same table (``error_status``) for plain Django views,
    so a rule refused in a service reads the same through every way in. The view's transaction has rolled back.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ApplicationError):
            return None
        status = error_status(exception)
        response = HttpResponse(f"{exception.message}\n", status=status, content_type="text/plain; charset=utf-8")
        if retry_after := exception.extra.get("retry_after"):
            response["Retry-After"] = str(retry_after)
        logger.warning("%s refused with %s: %s", request.path, status, exception.code)
        return response
