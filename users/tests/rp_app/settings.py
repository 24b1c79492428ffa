"""Settings of the relying-party site; the provider's endpoints and the client come from the environment."""

import os
from pathlib import Path

BASE = Path(os.environ["RP_VAR_DIR"])
ISSUER = os.environ["RP_ISSUER"]
SECRET_KEY = "relying-party-test-site-secret-key-not-for-production-0123456789"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "users.tests.rp_app.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "mozilla_django_oidc",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE / "rp.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
AUTHENTICATION_BACKENDS = ["mozilla_django_oidc.auth.OIDCAuthenticationBackend"]
LOGIN_REDIRECT_URL = "/whoami/"
LOGIN_REDIRECT_URL_FAILURE = "/failed/"

OIDC_RP_CLIENT_ID = os.environ["RP_CLIENT_ID"]
OIDC_RP_CLIENT_SECRET = os.environ["RP_CLIENT_SECRET"]
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile"
OIDC_USE_PKCE = True
OIDC_OP_AUTHORIZATION_ENDPOINT = f"{ISSUER}/oidc/authorize/"
OIDC_OP_TOKEN_ENDPOINT = f"{ISSUER}/oidc/token/"
OIDC_OP_USER_ENDPOINT = f"{ISSUER}/oidc/userinfo/"
OIDC_OP_JWKS_ENDPOINT = f"{ISSUER}/api/v1/users/.well-known/jwks.json"
OIDC_TIMEOUT = 10
