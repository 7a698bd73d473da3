#!/bin/sh
# The compose stack's PostgreSQL: on the first start, a cluster in $PGDATA (the volume) whose
# superuser "postgres" has the password of POSTGRES_PASSWORD_FILE, SCRAM-SHA-256 for every network
# connection, and the empty database $POSTGRES_DB; the migration job creates the owner and
# runtime roles in it (manage.py db_roles --apply). Then the server, in the foreground (tini is
# PID 1). The socket lives in /tmp (a tmpfs): the root file system is read-only.
set -eu
: "${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE must name the file holding the superuser password}"
[ -r "$POSTGRES_PASSWORD_FILE" ] || { echo "postgres: cannot read POSTGRES_PASSWORD_FILE ($POSTGRES_PASSWORD_FILE)" >&2; exit 1; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres: first start, creating the cluster in $PGDATA" >&2
  initdb --pgdata="$PGDATA" --username=postgres --pwfile="$POSTGRES_PASSWORD_FILE" \
    --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  # Any address may connect, always with a password (SCRAM): the stack's network is private.
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses='' -c unix_socket_directories=/tmp" start
  psql --quiet --host=/tmp --username=postgres --dbname=postgres -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE \"$POSTGRES_DB\""
  pg_ctl --pgdata="$PGDATA" --wait --silent stop
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp \
  -c password_encryption=scram-sha-256 -c log_connections=off "$@"
