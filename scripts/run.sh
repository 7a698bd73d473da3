#!/usr/bin/env bash
# Serve the console with a Celery worker and beat on the embedded default. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.local}
# The settings keep everything under VAR_DIR (default ./var); so does this script.
var=${VAR_DIR:-var}

mkdir -p "$var"/celery/broker "$var"/celery/processed "$var"/celery/control "$var"/celery/results "$var"/mail "$var"/audit
chmod 0700 "$var"
$py manage.py migrate --noinput
$py manage.py ensure_admin
# Hashed names, a manifest and gzip copies under VAR_DIR/static, served by the app (WhiteNoise).
$py manage.py collectstatic --noinput --verbosity 0

pids=()
reminder=""
stop() {
  trap - INT TERM EXIT
  echo "Stopping worker, beat and web server..."
  for pid in "${pids[@]}" $reminder; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
# The generated first-administrator password once more, after the services' start-up output
# (not in pids: its end must not stop the others).
$py manage.py ensure_admin --remind --after 15 &
reminder=$!

.venv/bin/celery -A config worker --loglevel=INFO --concurrency=2 --hostname=worker@%h &
pids+=($!)
.venv/bin/celery -A config beat --loglevel=INFO --schedule="$var"/celery/beat-schedule &
pids+=($!)
echo "Console: http://127.0.0.1:8000/admin/   Health: http://127.0.0.1:8000/healthz"
# The production server and its configuration (docs/operations.md, "Serving"); WEB_BIND moves it.
$py -m gunicorn -c deploy/gunicorn.conf.py &
pids+=($!)
wait -n "${pids[@]}"
