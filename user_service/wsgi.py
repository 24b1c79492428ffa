"""WSGI entry point (gunicorn user_service.wsgi:application).

Requests to the bearer-token API (``/api/v1/``) go through Django's handler with ``API_MIDDLEWARE``: the same
middleware as every other request, less the admin's cookie machinery (sessions, auth, messages, CSRF) and the
static-file server, which do nothing for the API but cost every call a few frames (``user_service.middleware``
skips them for the API in any case, so the test client, which runs the full list, answers the same).
Everything else (the admin, the API docs, static files) goes through the full ``MIDDLEWARE``.
"""

import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "user_service.settings")

_full = get_wsgi_application()  # sets Django up


class _APIHandler(WSGIHandler):
    """Django's WSGI handler built from ``settings.API_MIDDLEWARE`` instead of ``settings.MIDDLEWARE``."""

    def load_middleware(self, is_async: bool = False) -> None:
        from django.conf import settings

        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE  # read once, here, at start-up (one thread)
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


_api = _APIHandler()
from user_service.middleware import API_PREFIX  # noqa: E402 - needs Django set up


def application(environ, start_response):
    handler = _api if environ.get("PATH_INFO", "").startswith(API_PREFIX) else _full
    return handler(environ, start_response)
