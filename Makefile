# The two commands: `make run` (start the service) and `make test` (lint + the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

# `make test` talks to the real PostgreSQL and Redis (override on the command line or in the environment),
# with production settings (DEBUG=False), a throw-away secret and a signing key generated under var/.
TEST_KEY := var/test_jwt_signing_key.pem
TEST_ENV := DB_HOST=$${DB_HOST:-127.0.0.1} DB_PORT=$${DB_PORT:-5432} DB_NAME=$${DB_NAME:-user_service_run$$$$} \
	DB_USER=$${DB_USER:-postgres} DB_PASSWORD=$${DB_PASSWORD:-} REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/15} \
	DEBUG=False SECURE_SSL_REDIRECT=False JWT_PRIVATE_KEY_FILE=$(TEST_KEY) CACHE_KEY_PREFIX=ums-test-$$$$ CELERY_BROKER_KEY_PREFIX=ums-test-$$$$: \
	EMAIL_BACKEND=django.core.mail.backends.locmem.EmailBackend \
	SECRET_KEY=test-only-secret-key-not-for-production-0123456789abcdefghijklmnop \
	MFA_ENCRYPTION_KEYS=dGVzdC1vbmx5LW1mYS1rZXktbm90LWZvci1wcm9kISE=

.PHONY: help venv install install-dev system-deps run migrate superuser lint typecheck test test-only bench fuzz clean

help:
	@echo "make run     set up, migrate and start the service on :$(PORT) (embedded default, no .env needed)"
	@echo "make test    set up, lint and run the whole test suite against PostgreSQL and Redis"
	@echo "make bench   run the benchmarks in bench/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

venv: $(BIN)/python
install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: install migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo ""
	@echo "  API          http://127.0.0.1:$(PORT)/api/v1/users/"
	@echo "  Swagger UI   http://127.0.0.1:$(PORT)/api/docs/"
	@echo "  ReDoc        http://127.0.0.1:$(PORT)/api/redoc/"
	@echo "  Admin        http://127.0.0.1:$(PORT)/admin/   (first HOD: .venv/bin/python manage.py createsuperuser)"
	@echo "  Health       http://127.0.0.1:$(PORT)/api/v1/users/health/"
	@echo ""
	$(BIN)/gunicorn user_service.wsgi:application --bind 127.0.0.1:$(PORT) \
		--workers $${WEB_CONCURRENCY:-1} --threads $${GUNICORN_THREADS:-8} --access-logfile -

superuser: install migrate
	$(BIN)/python manage.py createsuperuser

$(TEST_KEY): | $(VENV)/.installed-dev
	mkdir -p var
	$(BIN)/python -c "from cryptography.hazmat.primitives import serialization as s; \
	from cryptography.hazmat.primitives.asymmetric import rsa; \
	k = rsa.generate_private_key(public_exponent=65537, key_size=2048); \
	open('$@', 'wb').write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))"

lint: install-dev $(TEST_KEY) typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -q -r users clients user_service -x '*/tests/*,*/migrations/*' --severity-level high
	$(TEST_ENV) $(BIN)/python manage.py makemigrations --check --dry-run

# Types (mypy with django-stubs and drf-stubs) and the import direction of DESIGN.md (import-linter). Both run
# even if the first fails; part of `lint`.
typecheck: install-dev $(TEST_KEY)
	$(TEST_ENV) $(BIN)/mypy; mypy_status=$$?; $(BIN)/lint-imports; imports_status=$$?; \
	test $$mypy_status -eq 0 && test $$imports_status -eq 0

test: lint test-only

# Debian packages the tests run for real (nginx: deploy/tests/test_nginx_live.py; chromium: the admin's sign-in and
# the SSO pages in a real browser, users/tests/test_admin_browser.py and test_oidc_browser.py, driven by Playwright
# without a browser download), installed with apt if missing.
system-deps:
	@test -x /usr/sbin/nginx || command -v nginx >/dev/null || (apt-get install -y nginx >/dev/null 2>&1 || \
		(apt-get update >/dev/null && apt-get install -y nginx >/dev/null))
	@test -x /usr/bin/chromium || (apt-get install -y chromium >/dev/null 2>&1 || \
		(apt-get update >/dev/null && apt-get install -y chromium >/dev/null))

test-only: install-dev $(TEST_KEY) system-deps
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

bench: install-dev $(TEST_KEY)
	@which wrk >/dev/null || (apt-get install -y wrk >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y wrk >/dev/null))
	$(TEST_ENV) $(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

# Schemathesis with every check against a live gunicorn (throw-away database, this run's Redis keys), as
# anonymous, Student, Staff, service account and HOD; FUZZ_EXAMPLES (100), FUZZ_SEED, FUZZ_ROLES. See README.
fuzz: install-dev $(TEST_KEY)
	$(TEST_ENV) $(BIN)/python -m fuzz
