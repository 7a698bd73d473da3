#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server, then stop the server and delete it.
#
#   scripts/with-postgres.sh COMMAND [ARGS...]
#
# The server runs as the 'postgres' user (initdb refuses root) in a temporary folder, listens on
# a free loopback port only, and is reached through DATABASE_URL, which the command inherits.
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ]; then
  echo "PostgreSQL server binaries not found (Debian package 'postgresql')." >&2
  exit 1
fi
run_as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

workdir=$(mktemp -d /tmp/ninaivalaigal-pg.XXXXXX)
chmod 0755 "$workdir"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$workdir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

cleanup() {
  run_as_postgres "$bindir/pg_ctl" -D "$workdir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

printf '%s\n' "$password" > "$workdir/pwfile"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$workdir/pwfile"
run_as_postgres "$bindir/initdb" -D "$workdir/data" -U postgres --pwfile="$workdir/pwfile" \
  --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$workdir/initdb.log" 2>&1 \
  || { cat "$workdir/initdb.log" >&2; exit 1; }
rm -f "$workdir/pwfile"
run_as_postgres "$bindir/pg_ctl" -D "$workdir/data" -l "$workdir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$workdir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null || { cat "$workdir/server.log" >&2; exit 1; }

export DATABASE_URL="postgres://postgres:$password@127.0.0.1:$port/ninaivalaigal"
export PG_BINDIR="$bindir"
echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') listening on 127.0.0.1:$port"
"$@"
