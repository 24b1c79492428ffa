"""WSGI entry of the relying-party site."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "users.tests.rp_app.settings")
application = get_wsgi_application()
