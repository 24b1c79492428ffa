# syntax=docker/dockerfile:1.7
# User service image: wheels built in a throw-away stage, a slim runtime without compilers, a non-root user.
#   docker build -t user-service .
#   docker run --env-file .env user-service            # web (gunicorn); also: worker | beat | migrate
ARG PYTHON_IMAGE=python:3.12-slim

# ---- builder: compile every requirement into a wheel ------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Unpinned on purpose: the compiler exists only in this throw-away stage, never in the image that runs.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY requirements.txt .
RUN pip wheel --wheel-dir /wheels -r requirements.txt

# ---- runtime: wheels only, no build tools -----------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="user-service" \
      org.opencontainers.image.description="Identity service for HODs, Staff and Students"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=user_service.settings \
    STATIC_ROOT=/app/staticfiles \
    PORT=8000

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin app

# The wheels are bind-mounted from the builder for this step only, so they never land in a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv "$VIRTUAL_ENV" \
    && pip install --no-index --find-links=/wheels /wheels/*.whl

WORKDIR /app
# Code stays owned by root: the app user can read it, not change it. The only places uid 10001 may write:
# /var/lib/user-service (VAR_DIR on Compose's shared volume) and /srv/static (static files exported to nginx).
COPY . .
RUN chmod 0755 deploy/docker-entrypoint.sh \
    && mkdir -p /var/lib/user-service /srv/static \
    && chown 10001:10001 /var/lib/user-service /srv/static

# collectstatic needs settings to import; with DEBUG=False they demand a SECRET_KEY and a signing key.
# Both are generated inside this one step, used once and thrown away: nothing secret is kept in the image.
RUN SECRET_KEY="build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    JWT_PRIVATE_KEY="$(python -c 'from cryptography.hazmat.primitives import serialization as s; from cryptography.hazmat.primitives.asymmetric import rsa; print(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode())')" \
    DEBUG=False VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --noinput --verbosity 1 \
    && rm -rf /tmp/build-var

USER 10001:10001

EXPOSE 8000

# The web process's liveness; Compose overrides it for worker and beat (Kubernetes uses its own probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py", "/api/v1/users/health/live/"]

ENTRYPOINT ["/app/deploy/docker-entrypoint.sh"]
CMD ["web"]
