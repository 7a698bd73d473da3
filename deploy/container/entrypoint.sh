#!/bin/sh
# The image's command, started by tini (PID 1, which forwards signals to it). One image, four jobs,
# chosen by the first argument; each replaces this shell (exec), so SIGTERM and SIGHUP reach the
# process itself. Further arguments go to that process.
#
#   web       gunicorn with deploy/gunicorn.conf.py (the default)
#   worker    the Celery worker
#   beat      Celery beat (the schedule lives in the database: django-celery-beat)
#   migrate   the one-shot migration job: manage.py migrate --noinput, then exit
#   manage    any other management command: manage ARGS...  (e.g. manage ensure_admin)
set -eu

usage() {
  echo "usage: web | worker | beat | migrate | manage COMMAND [ARGS...] (got: ${1:-nothing})" >&2
  exit 64
}

var_dir=${VAR_DIR:-/var/lib/ninaivalaigal}

# The embedded default keeps its broker, task results and mail under VAR_DIR, which must then be a
# writable volume shared by web, worker and beat. Nothing is written when Redis is the broker.
prepare_var_dir() {
  case "${CELERY_BROKER_URL:-filesystem://}" in
    filesystem://*)
      mkdir -p "$var_dir/celery/broker" "$var_dir/celery/processed" "$var_dir/celery/control" \
        "$var_dir/celery/results" "$var_dir/mail" 2>/dev/null || {
        echo "VAR_DIR ($var_dir) is not writable: mount a volume there for the embedded default," \
          "or set CELERY_BROKER_URL and DATABASE_URL to Redis and PostgreSQL." >&2
        exit 1
      }
      ;;
  esac
}

command=${1:-web}
[ $# -gt 0 ] && shift
case "$command" in
  web)
    prepare_var_dir
    exec gunicorn --config /app/deploy/gunicorn.conf.py "$@"
    ;;
  worker)
    prepare_var_dir
    exec celery -A config worker --loglevel="${LOG_LEVEL:-INFO}" --hostname="worker@%h" "$@"
    ;;
  beat)
    prepare_var_dir
    # The schedule is read from the database; this file only holds beat's own bookkeeping.
    exec celery -A config beat --loglevel="${LOG_LEVEL:-INFO}" --schedule="$var_dir/celery/beat-schedule" "$@"
    ;;
  migrate)
    exec python3 /app/manage.py migrate --noinput "$@"
    ;;
  manage)
    [ $# -gt 0 ] || usage "manage without a command"
    exec python3 /app/manage.py "$@"
    ;;
  *)
    usage "$command"
    ;;
esac
