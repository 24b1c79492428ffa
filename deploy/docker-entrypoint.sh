#!/bin/sh
# Container entrypoint: optionally apply migrations (MIGRATE_ON_START), then run one process.
#   web (default)  gunicorn with deploy/gunicorn.conf.py
#   worker         Celery worker on the default, email and events queues
#   beat           Celery beat (run exactly one), schedule kept in /tmp (writable on a read-only root)
#   migrate        apply migrations and exit (the Compose one-shot and the Kubernetes Job)
#   anything else  executed as given, e.g. `python manage.py createsuperuser`
set -eu

# Run from the project root (/app in the image) so manage.py and deploy/ resolve wherever this lives.
cd "$(dirname "$0")/.."

is_true() {
    case "$(printf '%s' "${1:-}" | tr '[:upper:]' '[:lower:]')" in
        1 | true | yes | on) return 0 ;;
        *) return 1 ;;
    esac
}

if [ "$#" -eq 0 ]; then
    set -- web
fi

if is_true "${MIGRATE_ON_START:-false}" && [ "$1" != "migrate" ]; then
    echo "entrypoint: MIGRATE_ON_START is set, applying migrations" >&2
    python manage.py migrate --noinput
fi

command="$1"
shift

# Prometheus multi-process mode: each process writes its samples here; emptied at every start.
if [ "$command" = "web" ] || [ "$command" = "worker" ]; then
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus-$command}"
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

case "$command" in
    web)
        exec gunicorn --config deploy/gunicorn.conf.py user_service.wsgi:application "$@"
        ;;
    worker)
        exec celery -A user_service worker \
            -Q "${CELERY_WORKER_QUEUES:-default,email,events}" \
            --concurrency "${CELERY_WORKER_CONCURRENCY:-2}" \
            -l info "$@"
        ;;
    beat)
        exec celery -A user_service beat -l info --schedule /tmp/celerybeat-schedule "$@"
        ;;
    migrate)
        exec python manage.py migrate --noinput "$@"
        ;;
    *)
        exec "$command" "$@"
        ;;
esac
