#!/usr/bin/env bash
# Serve the console with a Celery worker and beat on the embedded default. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.local}

mkdir -p var/celery/broker var/celery/processed var/celery/control var/celery/results var/mail var/audit
chmod 0700 var
$py manage.py migrate --noinput
$py manage.py ensure_admin
# The generated first-administrator password once more, after the services' start-up output.
$py manage.py ensure_admin --remind --after 15 &

pids=()
stop() {
  trap - INT TERM EXIT
  echo "Stopping worker, beat and web server..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/celery -A config worker --loglevel=INFO --concurrency=2 --hostname=worker@%h &
pids+=($!)
.venv/bin/celery -A config beat --loglevel=INFO --schedule=var/celery/beat-schedule &
pids+=($!)
echo "Console: http://127.0.0.1:8000/admin/   Health: http://127.0.0.1:8000/healthz"
# --insecure: the development server serves the admin's static files with DEBUG off.
$py manage.py runserver 127.0.0.1:8000 --insecure --noreload &
pids+=($!)
wait -n "${pids[@]}"
