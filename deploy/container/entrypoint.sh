#!/bin/sh
# The image's command, started by tini (PID 1, which forwards signals to it). One image, five jobs,
# chosen by the first argument; each replaces this shell (exec), so SIGTERM and SIGHUP reach the
# process itself. Further arguments go to that process.
#
#   web       gunicorn with deploy/gunicorn.conf.py (the default)
#   worker    the Celery worker
#   beat      Celery beat (the schedule lives in the database: django-celery-beat)
#   sealer    the audit sealer process (manage.py audit_sealer): chains committed audit events, so
#             that web and worker processes, run with AUDIT_SEAL_MODE=periodic, never do
#   migrate   the one-shot migration job: manage.py migrate --noinput, then exit. With
#             DATABASE_ADMIN_URL_FILE (a PostgreSQL superuser's URL, the compose stack), first wait
#             for the database, then manage.py db_roles --apply before and after the migration:
#             the owner and runtime roles (passwords from DATABASE_OWNER_PASSWORD_FILE and
#             DATABASE_APP_PASSWORD_FILE), then the grants on the tables the migration made.
#   manage    any other management command: manage ARGS...  (e.g. manage ensure_admin)
set -eu

usage() {
  echo "usage: web | worker | beat | sealer | migrate | manage COMMAND [ARGS...] (got: ${1:-nothing})" >&2
  exit 64
}

var_dir=${VAR_DIR:-/var/lib/ninaivalaigal}

# The embedded default keeps its broker, task results and mail under VAR_DIR, which must then be a
# writable volume shared by web, worker and beat. Nothing is written when Redis is the broker.
prepare_var_dir() {
  # A broker URL in a mounted file (the compose stack) is Redis's: nothing to prepare.
  [ -z "${CELERY_BROKER_URL_FILE:-}" ] || return 0
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

# Wait until the database named by DATABASE_URL_FILE (or DATABASE_URL) accepts TCP connections,
# at most DATABASE_WAIT_SECONDS (default 60): the one-shot jobs may start with the database.
wait_for_database() {
  python3 - <<'PYTHON'
import os, socket, sys, time, urllib.parse
path = os.environ.get("DATABASE_URL_FILE")
url = open(path).read().strip() if path else os.environ.get("DATABASE_URL", "")
address = urllib.parse.urlsplit(url)
if not address.scheme.startswith("postgres"):
    sys.exit(0)
deadline = time.monotonic() + float(os.environ.get("DATABASE_WAIT_SECONDS", "60"))
while True:
    try:
        socket.create_connection((address.hostname, address.port or 5432), timeout=2).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"the database at {address.hostname}:{address.port or 5432} did not accept connections in time")
        time.sleep(1)
PYTHON
}

# manage.py db_roles --apply, its superuser URL and the roles' passwords read from the mounted files
# into this one process's environment (db_roles takes them from the environment only).
db_roles_apply() {
  DATABASE_ADMIN_URL=$(cat "$DATABASE_ADMIN_URL_FILE") \
  DATABASE_OWNER_PASSWORD=$(cat "${DATABASE_OWNER_PASSWORD_FILE:-/dev/null}") \
  DATABASE_APP_PASSWORD=$(cat "${DATABASE_APP_PASSWORD_FILE:-/dev/null}") \
    python3 /app/manage.py db_roles --apply
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
  sealer)
    exec python3 /app/manage.py audit_sealer "$@"
    ;;
  migrate)
    if [ -n "${DATABASE_ADMIN_URL_FILE:-}" ]; then
      wait_for_database
      db_roles_apply
      python3 /app/manage.py migrate --noinput "$@"
      db_roles_apply
      exit 0
    fi
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
