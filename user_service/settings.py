"""Settings for the user service, read from the environment in one place (python-decouple).

Two run modes: the embedded default (no ``DB_HOST``: SQLite, local-memory cache, eager Celery,
file e-mail under ``var/``) and the full mode (PostgreSQL, Redis, a real Celery worker, SMTP).
With ``DEBUG=False`` start-up refuses the default secret key, a missing signing key and a missing MFA key.
"""

import base64
import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from decouple import Csv, config
from django.core.exceptions import ImproperlyConfigured

from clients.conf import DEFAULTS as CLIENT_DEFAULTS

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(config("VAR_DIR", default=str(BASE_DIR / "var")))

DB_HOST = config("DB_HOST", default="")
EMBEDDED = not DB_HOST

INSECURE_SECRET_KEY = "django-insecure-embedded-default-do-not-use-in-production"  # noqa: S105
SECRET_KEY = config("SECRET_KEY", default=INSECURE_SECRET_KEY)
DEBUG = config("DEBUG", default=EMBEDDED, cast=bool)
ALLOWED_HOSTS = config("ALLOWED_HOSTS", default="localhost,127.0.0.1,[::1]", cast=Csv())

INSTALLED_APPS = [
    "users.apps.HODAdminConfig",
    "users",  # before django.contrib.auth: its createsuperuser command (an HOD through the service) wins
    "clients.django.ClientsConfig",  # the clients read their settings (SERVICE_HTTP_*, *_SERVICE_URL) from these
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",  # the OpenID Connect provider's protocol (users/services/oidc/, users/web/)
]

MIDDLEWARE = [
    "user_service.middleware.RequestIdMiddleware",
    "user_service.middleware.BodySizeLimitMiddleware",
    "user_service.middleware.URLTextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # Django's session, auth and messages middleware, skipped for the bearer-token API (/api/v1/).
    "user_service.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "user_service.middleware.AuthenticationMiddleware",
    "user_service.middleware.MessageMiddleware",
    "user_service.middleware.DomainErrorPageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The bearer-token API's middleware (user_service/wsgi.py): the same, less what only the admin, its cookies and
# static files use. Every API view is CSRF-exempt and authenticates bearer tokens only.
_ADMIN_ONLY_MIDDLEWARE = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "user_service.middleware.SessionMiddleware",
    "user_service.middleware.AuthenticationMiddleware",
    "user_service.middleware.MessageMiddleware",
}
API_MIDDLEWARE = [
    name for name in MIDDLEWARE if name not in {*_ADMIN_ONLY_MIDDLEWARE, "django.middleware.csrf.CsrfViewMiddleware"}
]
# The OpenID Connect authorization endpoint's (user_service/wsgi.py): the same less the admin's session, user and
# messages and the static-file server; it keeps CSRF (its consent form posts) and the security headers. Its sign-in
# is the SSO pages' own signed cookie (users.web.signin).
AUTHORIZE_MIDDLEWARE = [name for name in MIDDLEWARE if name not in _ADMIN_ONLY_MIDDLEWARE]

ROOT_URLCONF = "user_service.urls"
TEST_RUNNER = "user_service.test_runner.PytestTestRunner"
WSGI_APPLICATION = "user_service.wsgi.application"
ASGI_APPLICATION = "user_service.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
if EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": config("DB_NAME", default="user_service"),
            "USER": config("DB_USER", default="postgres"),
            "PASSWORD": config("DB_PASSWORD", default=""),
            "HOST": DB_HOST,
            "PORT": config("DB_PORT", default=5432, cast=int),
            "CONN_MAX_AGE": config("DB_CONN_MAX_AGE_SECONDS", default=60, cast=int),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                # Fail fast (503) while PostgreSQL is down instead of hanging a worker.
                "connect_timeout": config("DB_CONNECT_TIMEOUT_SECONDS", default=3, cast=int),
                # Django's queries are never prepared (it binds parameters client-side); the few statements that
                # ask for it are (user_service/db.py), unless turned off for a connection pooler in transaction
                # mode that does not keep protocol-level prepared statements (psycopg then prepares nothing).
                "prepare_threshold": 5 if config("DB_PREPARED_STATEMENTS", default=True, cast=bool) else None,
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "users.CustomUser"
AUTHENTICATION_BACKENDS = ["users.backends.UsernameOrEmailBackend"]

# --- Cache (session revocation state, throttles; users/cache/) ----------------------------------
REDIS_URL = config("REDIS_URL", default="")
# Every Redis call (cache, raw client, pub/sub, health) waits at most this long, then counts as an outage.
REDIS_CONNECT_TIMEOUT_SECONDS = config("REDIS_CONNECT_TIMEOUT_SECONDS", default=0.5, cast=float)
REDIS_TIMEOUT_SECONDS = config("REDIS_TIMEOUT_SECONDS", default=0.5, cast=float)
# After a Redis timeout or refusal, this process stops calling that Redis for this long (users/cache/breaker.py).
REDIS_BREAKER_SECONDS = config("REDIS_BREAKER_SECONDS", default=5.0, cast=float)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": config("CACHE_KEY_PREFIX", default="ums"),
            "OPTIONS": {
                # A Redis outage must not take logins and reads down: cache errors are treated as
                # misses (the circuit breaker logs each outage once); the database stays the source of
                # truth for revocation.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT_SECONDS,
                "SOCKET_TIMEOUT": REDIS_TIMEOUT_SECONDS,
                "CONNECTION_FACTORY": "users.cache.breaker.BreakerConnectionFactory",
            },
        }
    }
else:
    # Per process: the embedded mode runs one gunicorn process (threads), so it stays coherent.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ums"}}

# --- Passwords --------------------------------------------------------------------------------
# Argon2id with OWASP's parameters (users/hashers.py); hashes of other parameters are upgraded at the next login.
# Django's own Argon2PasswordHasher must not be listed as well: both are "argon2", and the later one would win.
PASSWORD_HASHERS = [
    "users.hashers.Argon2idPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": config("PASSWORD_MIN_LENGTH", default=12, cast=int)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "users.validators.SequenceOrRepetitionValidator"},
    {"NAME": "users.validators.MaximumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(config("STATIC_ROOT", default=str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_ROOT = Path(config("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
REQUEST_MAX_BYTES = config("REQUEST_MAX_BYTES", default=1_048_576, cast=int)
UPLOAD_MAX_BYTES = config("UPLOAD_MAX_BYTES", default=6_291_456, cast=int)  # roster CSVs (multipart)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES
# Deepest nesting of arrays and objects a JSON body may have (users/api/parsers.py); deeper is a 400.
JSON_MAX_DEPTH = config("JSON_MAX_DEPTH", default=32, cast=int)

# --- REST framework, schema -------------------------------------------------------------------
# Number of reverse proxies in front of the service whose X-Forwarded-For entries are trusted.
TRUSTED_PROXY_COUNT = config("TRUSTED_PROXY_COUNT", default=0, cast=int)


def _networks(name: str, default: str = "") -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A comma-separated list of CIDRs from the environment, parsed once; a malformed one stops start-up."""
    networks = []
    for cidr in config(name, default=default, cast=Csv()):
        try:
            networks.append(ipaddress.ip_network(cidr))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {cidr!r} is not a network in CIDR notation ({exc}).") from exc
    return tuple(networks)


_RATE = re.compile(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)")


def _rate(name: str, default: str) -> str:
    """A throttle rate from the environment ("60/min": a count per s, min, hour or day); a malformed one stops
    start-up (at request time every call of its scope would fail)."""
    value = config(name, default=default).strip()
    if not _RATE.fullmatch(value):
        raise ImproperlyConfigured(f"{name}: {value!r} is not a rate such as 60/min (per s, min, hour or day).")
    return value


def _origin_of(url: str, *, name: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    if not (parts.scheme and parts.netloc):
        raise ImproperlyConfigured(f"{name}: {url!r} is not an absolute URL.")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _webauthn_settings_check(rp_id: str, origins: tuple[str, ...]) -> None:
    """Refuse a relying-party id or origins that no browser would accept together (every passkey would fail)."""
    if not rp_id or rp_id != rp_id.lower() or any(c in rp_id for c in "/:@ ") or rp_id.strip(".") != rp_id:
        raise ImproperlyConfigured(
            f"WEBAUTHN_RP_ID: {rp_id!r} must be a lower-case domain name without scheme, port or path "
            "(e.g. school.example); by default it is the host of FRONTEND_URL."
        )
    try:
        ipaddress.ip_address(rp_id)
    except ValueError:
        pass
    else:
        raise ImproperlyConfigured(f"WEBAUTHN_RP_ID: {rp_id!r} is an IP address; passkeys need a domain name.")
    if not origins:
        raise ImproperlyConfigured("WEBAUTHN_ORIGINS: give at least one origin (https://host[:port]).")
    for origin in origins:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        if origin != _origin_of(origin, name="WEBAUTHN_ORIGINS") or parts.scheme not in ("https", "http"):
            raise ImproperlyConfigured(f"WEBAUTHN_ORIGINS: {origin!r} is not an origin (scheme://host[:port]).")
        if parts.scheme == "http" and host != "localhost":
            raise ImproperlyConfigured(f"WEBAUTHN_ORIGINS: {origin!r} must use https (http only for localhost).")
        if host != rp_id and not host.endswith("." + rp_id):
            raise ImproperlyConfigured(
                f"WEBAUTHN_ORIGINS: {origin!r} is not on WEBAUTHN_RP_ID {rp_id!r} or a subdomain of it."
            )


def _fernet_keys(name: str) -> tuple[str, ...]:
    """Comma-separated Fernet keys (32 bytes, URL-safe base64) from the environment; a malformed one stops start-up."""
    keys = tuple(config(name, default="", cast=Csv()))
    for key in keys:
        try:
            valid = len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
        except (ValueError, UnicodeEncodeError):
            valid = False
        if not valid:
            raise ImproperlyConfigured(
                f"{name}: every key must be a Fernet key, 32 bytes in URL-safe base64 "
                '(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())").'
            )
    return keys


# Trusted callers (a frontend posting every person's login from its own address): requests from these
# networks (the client address as users.http.client_ip sees it) skip the per-IP throttles and the per-IP
# lockout; the per-account lockout still applies.
THROTTLE_EXEMPT_NETWORKS = _networks("THROTTLE_EXEMPT_NETWORKS")
# Migration mode, to be emptied: anonymous calls from these networks to bulk_info/ and users/ are served
# as a service with users:read, each logged as deprecated and counted (ums_legacy_anonymous_calls_total).
LEGACY_INTERNAL_NETWORKS = _networks("LEGACY_INTERNAL_NETWORKS")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["users.authentication.SessionJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["users.api.permissions.IsPerson"],
    "DEFAULT_PARSER_CLASSES": ["users.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "users.api.negotiation.ContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "users.api.pagination.PageNumberPagination",
    "EXCEPTION_HANDLER": "user_service.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Throttles identify anonymous clients by IP: trust X-Forwarded-For only as deep as our proxies.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_CLASSES": ["users.api.throttles.PrincipalThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "principal": _rate("THROTTLE_PRINCIPAL_RATE", "3000/min"),
        "register": _rate("THROTTLE_REGISTER_RATE", "20/hour"),
        "login": _rate("THROTTLE_LOGIN_RATE", "60/min"),
        "refresh": _rate("THROTTLE_REFRESH_RATE", "120/min"),
        "service_token": _rate("THROTTLE_SERVICE_TOKEN_RATE", "30/min"),
    },
    "PAGE_SIZE": 20,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "User Management Service",
    "DESCRIPTION": "Identity for HODs, Staff and Students: authentication, sessions, profiles and lookups.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "ENUM_NAME_OVERRIDES": {
        "UserTypeEnum": "users.models.UserType",
        "PublicKeyCredentialTypeEnum": ["public-key"],  # WebAuthn credentials' "type"
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "users.api.schema.postprocess_http_limits",
    ],
}

# --- Tokens -----------------------------------------------------------------------------------
JWT_ACCESS_MINUTES = config("JWT_ACCESS_MINUTES", default=5, cast=int)
JWT_REFRESH_DAYS = config("JWT_REFRESH_DAYS", default=7, cast=int)
JWT_ACCESS_LIFETIME = timedelta(minutes=JWT_ACCESS_MINUTES)
JWT_REFRESH_LIFETIME = timedelta(days=JWT_REFRESH_DAYS)
JWT_ISSUER = config("JWT_ISSUER", default="http://127.0.0.1:8000")
JWT_LEEWAY_SECONDS = config("JWT_LEEWAY_SECONDS", default=10, cast=int)
JWT_PRIVATE_KEY = config("JWT_PRIVATE_KEY", default="").replace("\\n", "\n")
JWT_PRIVATE_KEY_FILE = config("JWT_PRIVATE_KEY_FILE", default="")
# Public keys of retired signing keys, still published in the JWKS while their tokens may live.
JWT_PREVIOUS_PUBLIC_KEY_FILES = config("JWT_PREVIOUS_PUBLIC_KEY_FILES", default="", cast=Csv())
JWT_GENERATED_KEY_FILE = VAR_DIR / "jwt_signing_key.pem"
# Tokens each process remembers as verified (users.tokens.VerifiedTokens); 0 verifies every time.
JWT_VERIFIED_CACHE_SIZE = config("JWT_VERIFIED_CACHE_SIZE", default=4096, cast=int)
SESSION_STATE_CACHE_SECONDS = config("SESSION_STATE_CACHE_SECONDS", default=300, cast=int)
# Redis pub/sub channel on which ended session ids are pushed to local token verifiers.
REVOCATION_CHANNEL = config("REVOCATION_CHANNEL", default="ums:revocations")
# Brute-force defence (users/services/lockout.py).
LOGIN_LOCKOUT_THRESHOLD = config("LOGIN_LOCKOUT_THRESHOLD", default=5, cast=int)
LOGIN_LOCKOUT_WINDOW_SECONDS = config("LOGIN_LOCKOUT_WINDOW_SECONDS", default=900, cast=int)
LOGIN_LOCKOUT_SECONDS = config("LOGIN_LOCKOUT_SECONDS", default=60, cast=int)
LOGIN_LOCKOUT_MAX_SECONDS = config("LOGIN_LOCKOUT_MAX_SECONDS", default=3600, cast=int)
LOGIN_IP_THRESHOLD = config("LOGIN_IP_THRESHOLD", default=50, cast=int)
LOGIN_IP_LOCKOUT_SECONDS = config("LOGIN_IP_LOCKOUT_SECONDS", default=900, cast=int)
AUDIT_RETENTION_DAYS = config("AUDIT_RETENTION_DAYS", default=365, cast=int)
SERVICE_TOKEN_MINUTES = config("SERVICE_TOKEN_MINUTES", default=5, cast=int)
SERVICE_ACCOUNT_STATE_CACHE_SECONDS = config("SERVICE_ACCOUNT_STATE_CACHE_SECONDS", default=60, cast=int)
# A service account's "last used" time is written at most this often (a gateway's grants would otherwise all
# queue on the one row).
SERVICE_ACCOUNT_LAST_USED_SECONDS = config("SERVICE_ACCOUNT_LAST_USED_SECONDS", default=60, cast=int)

# --- Multi-factor authentication (users/services/mfa/, users/services/login.py) ---------------------
# Roles whose people must have a second factor to log in (comma-separated role names; empty: nobody must).
MFA_REQUIRED_ROLES = frozenset(name.lower() for name in config("MFA_REQUIRED_ROLES", default="hod", cast=Csv()))
_ROLE_NAMES = frozenset({"hod", "staff", "student"})  # users.models.ROLE_NAMES (a test keeps the two equal)
if MFA_REQUIRED_ROLES - _ROLE_NAMES:
    raise ImproperlyConfigured(
        f"MFA_REQUIRED_ROLES: unknown role(s) {sorted(MFA_REQUIRED_ROLES - _ROLE_NAMES)}; "
        f"use {', '.join(sorted(_ROLE_NAMES))} or leave it empty."
    )
# Seconds an mfa_token (the answer to a correct password when a second step follows) stays usable.
MFA_TOKEN_SECONDS = config("MFA_TOKEN_SECONDS", default=300, cast=int)
# The issuer authenticator apps show next to the account name of a TOTP entry.
MFA_TOTP_ISSUER = config("MFA_TOTP_ISSUER", default="School account")
# Fernet keys that encrypt TOTP secrets at rest, comma-separated: the first encrypts, every one decrypts (rotation).
# Empty: with DEBUG a key derived from SECRET_KEY; without DEBUG start-up stops (see the refusals below).
MFA_ENCRYPTION_KEYS = _fernet_keys("MFA_ENCRYPTION_KEYS")
# Seconds after a login or a reauthenticate/ during which sensitive changes (e-mail, password, factors, new HODs)
# are allowed without authenticating again.
REAUTH_SECONDS = config("REAUTH_SECONDS", default=300, cast=int)

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = config("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = config("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL, cast=bool)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_SOFT_TIME_LIMIT = 45
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
    "max_retries": 1,
    # Prefix of every broker key: lets several deployments (or test runs) share one Redis.
    "global_keyprefix": config("CELERY_BROKER_KEY_PREFIX", default=""),
}

# --- E-mail -----------------------------------------------------------------------------------
EMAIL_HOST = config("EMAIL_HOST", default="")
EXPLICIT_EMAIL_BACKEND = config("EMAIL_BACKEND", default="")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
else:
    EMAIL_BACKEND = EXPLICIT_EMAIL_BACKEND or "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_PORT = config("EMAIL_PORT", default=587, cast=int)
EMAIL_HOST_USER = config("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = config("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = config("EMAIL_USE_TLS", default=True, cast=bool)
EMAIL_TIMEOUT = config("EMAIL_TIMEOUT_SECONDS", default=10, cast=int)
DEFAULT_FROM_EMAIL = config("DEFAULT_FROM_EMAIL", default="User Service <no-reply@localhost>")

# --- Outbox, e-mail links, events (users/services/outbox.py, account.py, events.py) ---------------
REQUIRE_EMAIL_VERIFICATION = config("REQUIRE_EMAIL_VERIFICATION", default=False, cast=bool)
EMAIL_VERIFICATION_TIMEOUT_SECONDS = config("EMAIL_VERIFICATION_TIMEOUT_SECONDS", default=259_200, cast=int)
INVITATION_TIMEOUT_SECONDS = config("INVITATION_TIMEOUT_SECONDS", default=604_800, cast=int)
PASSWORD_RESET_TIMEOUT = config("PASSWORD_RESET_TIMEOUT_SECONDS", default=3600, cast=int)
EVENT_WEBHOOK_URLS = config("EVENT_WEBHOOK_URLS", default="", cast=Csv())
EVENT_WEBHOOK_SECRET = config("EVENT_WEBHOOK_SECRET", default="")
EVENT_WEBHOOK_TIMEOUT_SECONDS = config("EVENT_WEBHOOK_TIMEOUT_SECONDS", default=5.0, cast=float)
OUTBOX_MAX_ATTEMPTS = config("OUTBOX_MAX_ATTEMPTS", default=8, cast=int)
OUTBOX_RETRY_BACKOFF_SECONDS = config("OUTBOX_RETRY_BACKOFF_SECONDS", default=10.0, cast=float)
OUTBOX_RETRY_BACKOFF_MAX_SECONDS = config("OUTBOX_RETRY_BACKOFF_MAX_SECONDS", default=600.0, cast=float)
OUTBOX_LEASE_SECONDS = config("OUTBOX_LEASE_SECONDS", default=90.0, cast=float)
OUTBOX_RELAY_GRACE_SECONDS = config("OUTBOX_RELAY_GRACE_SECONDS", default=10.0, cast=float)
OUTBOX_RELAY_BATCH_SIZE = config("OUTBOX_RELAY_BATCH_SIZE", default=500, cast=int)
OUTBOX_RELAY_TIME_BUDGET_SECONDS = config("OUTBOX_RELAY_TIME_BUDGET_SECONDS", default=25.0, cast=float)
OUTBOX_DISPATCH_TIMEOUT_SECONDS = config("OUTBOX_DISPATCH_TIMEOUT_SECONDS", default=0.25, cast=float)
OUTBOX_DISPATCH_PAUSE_SECONDS = config("OUTBOX_DISPATCH_PAUSE_SECONDS", default=5.0, cast=float)
OUTBOX_RETENTION_DAYS = config("OUTBOX_RETENTION_DAYS", default=14, cast=int)
CLEANUP_BATCH_SIZE = config("CLEANUP_BATCH_SIZE", default=5000, cast=int)
# E-mails per target address or account (not per client IP: no lock-out of a school behind one NAT).
THROTTLE_PASSWORD_RESET_RATE = _rate("THROTTLE_PASSWORD_RESET_RATE", "5/hour")
THROTTLE_VERIFICATION_EMAIL_RATE = _rate("THROTTLE_VERIFICATION_EMAIL_RATE", "5/hour")

# --- People management (users/services/people/) -------------------------------------------------
# Check course_id/session_year_id with the academic service: off, lenient (accept when it is down), strict.
ACADEMIC_VALIDATION = config("ACADEMIC_VALIDATION", default="off")
# Rows counted exactly in list pages; above this, `count` is PostgreSQL's estimate (`count_exact: false`).
PEOPLE_COUNT_EXACT_LIMIT = config("PEOPLE_COUNT_EXACT_LIMIT", default=1000, cast=int)
# Largest roster CSV (bytes) and most data rows per import.
ROSTER_MAX_BYTES = config("ROSTER_MAX_BYTES", default=5_242_880, cast=int)
ROSTER_MAX_ROWS = config("ROSTER_MAX_ROWS", default=20_000, cast=int)

# --- Single sign-on: the OpenID Connect provider (users/services/oidc/, users/web/) -------------------
# The name the sign-in, consent and account pages show.
SSO_SITE_NAME = config("SSO_SITE_NAME", default="School account")
# The sign-in session's cookie: signed, HttpOnly, SameSite=Lax; Secure unless DEBUG (or this says otherwise).
SSO_COOKIE_NAME = config("SSO_COOKIE_NAME", default="ums_sso")
SSO_COOKIE_SECURE = config("SSO_COOKIE_SECURE", default=not DEBUG, cast=bool)
# Seconds an authorization code may wait for its exchange (single use; OAuth 2.0 Security BCP: short).
OIDC_CODE_SECONDS = config("OIDC_CODE_SECONDS", default=60, cast=int)
# How long a process keeps an OpenID Connect client it read for authorization requests (users.cache): a change made
# in another process reaches this one within it (the process that makes it forgets at once). 0: read every time.
OIDC_CLIENT_CACHE_SECONDS = config("OIDC_CLIENT_CACHE_SECONDS", default=5, cast=int)
# Seconds a client's back-channel logout endpoint may take to answer (then the outbox retries).
OIDC_BACKCHANNEL_TIMEOUT_SECONDS = config("OIDC_BACKCHANNEL_TIMEOUT_SECONDS", default=5.0, cast=float)
# Schemes a client's redirect URI may use; plain http only for development.
OIDC_REDIRECT_URI_SCHEMES = config("OIDC_REDIRECT_URI_SCHEMES", default="https,http" if DEBUG else "https", cast=Csv())
# What each scope releases (users/services/oidc/claims.py); the protocol's own settings follow.
OIDC_SCOPES = {
    "openid": "Sign you in (your account id)",
    "profile": "Your name and username",
    "email": "Your e-mail address",
    "school": "Your role, department and school id",
}
# django-oauth-toolkit's own models, unswapped (its migrations name these settings).
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"  # noqa: S105 - a model name
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"  # noqa: S105 - a model name
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"  # noqa: S105 - a model name
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER_DEVICE_GRANT_MODEL = "oauth2_provider.DeviceGrant"
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_ISS_ENDPOINT": JWT_ISSUER,
    "OAUTH2_SERVER_CLASS": "users.services.oidc.server.OidcServer",
    "OAUTH2_VALIDATOR_CLASS": "users.services.oidc.validator.OidcValidator",
    "ACCESS_TOKEN_GENERATOR": "users.services.oidc.validator.access_token_generate",
    "REFRESH_TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
    "SCOPES": OIDC_SCOPES,
    "DEFAULT_SCOPES": ["openid"],
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token", "client_credentials"],
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": OIDC_CODE_SECONDS,
    # The access token is the service's own access JWT (users.tokens), so it lives as long as any other.
    "ACCESS_TOKEN_EXPIRE_SECONDS": JWT_ACCESS_MINUTES * 60,
    "ID_TOKEN_EXPIRE_SECONDS": JWT_ACCESS_MINUTES * 60,
    "REFRESH_TOKEN_EXPIRE_SECONDS": JWT_REFRESH_DAYS * 86_400,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": OIDC_REDIRECT_URI_SCHEMES,
    "REQUEST_APPROVAL_PROMPT": "auto",
    # OAuth 2.0 Security BCP (RFC 9700): no implicit or password grant, no "plain" PKCE, no token in a query
    # string, the iss parameter in every authorization response (RFC 9207), token values hashed at rest.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}

# --- Product behaviour ------------------------------------------------------------------------
FRONTEND_URL = config("FRONTEND_URL", default="http://localhost:3000").rstrip("/")

# Passkeys (WebAuthn, users/services/mfa/webauthn.py). The relying-party id is the domain passkeys are bound to:
# by default the host of FRONTEND_URL (the pages that run the ceremony); the origins (scheme://host[:port],
# comma-separated) default to FRONTEND_URL's origin, and JWT_ISSUER's when it is on the RP id. Each origin must be
# https (http only for localhost) on the RP id or a subdomain of it, or start-up stops: a mismatch would refuse every
# passkey.
WEBAUTHN_RP_ID = config("WEBAUTHN_RP_ID", default="") or (urlsplit(FRONTEND_URL).hostname or "")
WEBAUTHN_RP_NAME = config("WEBAUTHN_RP_NAME", default="") or MFA_TOTP_ISSUER


def _default_webauthn_origins(rp_id: str, frontend_url: str, issuer_url: str) -> list[str]:
    """The frontend's origin, and the service's own (``JWT_ISSUER``: the admin and sign-in pages run ceremonies
    too) when a browser would accept it for ``rp_id`` (on the RP id or a subdomain; https, or http on localhost)."""
    origins = [_origin_of(frontend_url, name="FRONTEND_URL")]
    issuer = _origin_of(issuer_url, name="JWT_ISSUER")
    host, scheme = urlsplit(issuer).hostname or "", urlsplit(issuer).scheme
    on_rp_id = host == rp_id or host.endswith("." + rp_id)
    if on_rp_id and (scheme == "https" or host == "localhost") and issuer not in origins:
        origins.append(issuer)
    return origins


WEBAUTHN_ORIGINS = tuple(
    config("WEBAUTHN_ORIGINS", default="", cast=Csv())
    or _default_webauthn_origins(WEBAUTHN_RP_ID, FRONTEND_URL, JWT_ISSUER)
)
_webauthn_settings_check(WEBAUTHN_RP_ID, WEBAUTHN_ORIGINS)
ALLOW_SELF_REGISTRATION = config("ALLOW_SELF_REGISTRATION", default=True, cast=bool)
CORS_ALLOWED_ORIGINS = config("CORS_ALLOWED_ORIGINS", default="", cast=Csv())
CORS_URLS_REGEX = r"^/(api|\.well-known)/.*$"

# --- HTTP security ----------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = config("SECURE_SSL_REDIRECT", default=True, cast=bool)
    # Probes and metrics scrapes reach the pods over plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/users/health/", r"^metrics$"]
    SECURE_HSTS_SECONDS = config("SECURE_HSTS_SECONDS", default=31_536_000, cast=int)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = config("SECURE_HSTS_PRELOAD", default=True, cast=bool)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = config("CSRF_TRUSTED_ORIGINS", default="", cast=Csv())

# JSON lines in production (one object per line, request id included), readable lines in development.
LOG_FORMAT = config("LOG_FORMAT", default="plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "user_service.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": config("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # django.request repeats every 4xx/5xx; the request line of RequestIdMiddleware already carries it.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
    },
}

# --- Metrics (/metrics): a bearer token or the networks allowed to scrape; neither means nobody -----
METRICS_TOKEN = config("METRICS_TOKEN", default="")
# Port on which each Celery worker serves its task metrics for Prometheus (0: not served).
CELERY_METRICS_PORT = config("CELERY_METRICS_PORT", default=0, cast=int)
METRICS_ALLOWED_NETWORKS = _networks("METRICS_ALLOWED_NETWORKS", default="127.0.0.1/32,::1/128")

# --- Sibling services (clients/) ----------------------------------------------------------------
# The clients package owns these defaults: it also runs in sibling services, without this file.
ACADEMIC_SERVICE_URL = config("ACADEMIC_SERVICE_URL", default=CLIENT_DEFAULTS["ACADEMIC_SERVICE_URL"])
NOTIFICATION_SERVICE_URL = config("NOTIFICATION_SERVICE_URL", default=CLIENT_DEFAULTS["NOTIFICATION_SERVICE_URL"])
ATTENDANCE_SERVICE_URL = config("ATTENDANCE_SERVICE_URL", default=CLIENT_DEFAULTS["ATTENDANCE_SERVICE_URL"])
SERVICE_CLIENT_ID = config("SERVICE_CLIENT_ID", default="user-service")
SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS = config(
    "SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS", default=CLIENT_DEFAULTS["SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS"], cast=float
)
SERVICE_HTTP_READ_TIMEOUT_SECONDS = config(
    "SERVICE_HTTP_READ_TIMEOUT_SECONDS", default=CLIENT_DEFAULTS["SERVICE_HTTP_READ_TIMEOUT_SECONDS"], cast=float
)
SERVICE_HTTP_MAX_RETRIES = config(
    "SERVICE_HTTP_MAX_RETRIES", default=CLIENT_DEFAULTS["SERVICE_HTTP_MAX_RETRIES"], cast=int
)
SERVICE_HTTP_BACKOFF_SECONDS = config(
    "SERVICE_HTTP_BACKOFF_SECONDS", default=CLIENT_DEFAULTS["SERVICE_HTTP_BACKOFF_SECONDS"], cast=float
)
SERVICE_HTTP_BACKOFF_MAX_SECONDS = config(
    "SERVICE_HTTP_BACKOFF_MAX_SECONDS", default=CLIENT_DEFAULTS["SERVICE_HTTP_BACKOFF_MAX_SECONDS"], cast=float
)
SERVICE_HTTP_POOL_MAXSIZE = config(
    "SERVICE_HTTP_POOL_MAXSIZE", default=CLIENT_DEFAULTS["SERVICE_HTTP_POOL_MAXSIZE"], cast=int
)
SERVICE_CIRCUIT_FAILURE_THRESHOLD = config(
    "SERVICE_CIRCUIT_FAILURE_THRESHOLD", default=CLIENT_DEFAULTS["SERVICE_CIRCUIT_FAILURE_THRESHOLD"], cast=int
)
SERVICE_CIRCUIT_RESET_SECONDS = config(
    "SERVICE_CIRCUIT_RESET_SECONDS", default=CLIENT_DEFAULTS["SERVICE_CIRCUIT_RESET_SECONDS"], cast=float
)

# --- Production refuses insecure defaults -----------------------------------------------------
if not DEBUG:
    if SECRET_KEY == INSECURE_SECRET_KEY or len(SECRET_KEY) < 50:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a long random value when DEBUG=False "
            '(python -c "import secrets; print(secrets.token_urlsafe(64))").'
        )
    if not (JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE):
        raise ImproperlyConfigured(
            "JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE must be set when DEBUG=False "
            "(an RS256 private key in PEM; see README, 'Signing keys')."
        )
    if not (EMAIL_HOST or EXPLICIT_EMAIL_BACKEND):
        raise ImproperlyConfigured(
            "EMAIL_HOST must be set when DEBUG=False (or EMAIL_BACKEND to an explicit backend): "
            "e-mails are never silently written to the container's filesystem in production."
        )
    if not MFA_ENCRYPTION_KEYS:
        raise ImproperlyConfigured(
            "MFA_ENCRYPTION_KEYS must be set when DEBUG=False: the key that encrypts TOTP secrets at rest "
            '(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())").'
        )
