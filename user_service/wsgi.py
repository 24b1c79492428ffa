"""WSGI entry point (gunicorn user_service.wsgi:application).

Requests to the bearer-token API (``/api/v1/``) go through Django's handler with ``API_MIDDLEWARE``: the same
middleware as every other request, less the admin's cookie machinery (sessions, auth, messages, CSRF) and the
static-file server, which do nothing for the API but cost every call a few frames. The authorization endpoint
(``/oidc/authorize/``) gets ``AUTHORIZE_MIDDLEWARE``: the same less sessions, auth, messages and the static files
(it keeps CSRF for its consent form). ``user_service.middleware`` skips the same layers for both in any case, so the
test client, which runs the full list, answers the same. Everything else (the admin, the API docs, the other pages,
static files) goes through the full ``MIDDLEWARE``.
"""

import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "user_service.settings")

_full = get_wsgi_application()  # sets Django up


class _LeanHandler(WSGIHandler):
    """Django's WSGI handler built from another middleware list of the settings instead of ``settings.MIDDLEWARE``."""

    def __init__(self, middleware_setting: str) -> None:
        self.middleware_setting = middleware_setting
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        from django.conf import settings

        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = getattr(settings, self.middleware_setting)  # read once, here, at start-up (one thread)
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


_api = _LeanHandler("API_MIDDLEWARE")
_authorize = _LeanHandler("AUTHORIZE_MIDDLEWARE")
from user_service.middleware import API_PREFIX, AUTHORIZE_PATH  # noqa: E402 - needs Django set up


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith(API_PREFIX):
        handler = _api
    elif path == AUTHORIZE_PATH:
        handler = _authorize
    else:
        handler = _full
    return handler(environ, start_response)
