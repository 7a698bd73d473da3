#!/usr/bin/env bash
# The whole suite: lint, the security gate (docs/security-gate.md), then pytest on SQLite, then
# pytest on a throwaway PostgreSQL server.
# Exits non-zero if any part fails or if the PostgreSQL part ran no tests.
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python

status=0
echo "== ruff"
$py -m ruff check .
ruff_rc=$?

echo "== security gate"
scripts/security-checks.sh
gate_rc=$?

echo "== pytest on SQLite"
$py -m pytest "$@"
sqlite_rc=$?

echo "== pytest on PostgreSQL"
scripts/with-postgres.sh $py -m pytest "$@"
postgres_rc=$?

summary() {
  case "$2" in
    0) echo "$1: passed" ;;
    5) echo "$1: ran no tests (counts as a failure)" ;;
    *) echo "$1: FAILED (pytest exit $2)" ;;
  esac
}
echo "== summary"
if [ "$ruff_rc" -eq 0 ]; then echo "ruff: passed"; else echo "ruff: FAILED"; status=1; fi
if [ "$gate_rc" -eq 0 ]; then echo "security gate: passed"; else echo "security gate: FAILED (scripts/security-checks.sh)"; status=1; fi
summary "SQLite suite" "$sqlite_rc"
summary "PostgreSQL suite" "$postgres_rc"
[ "$sqlite_rc" -eq 0 ] && [ "$postgres_rc" -eq 0 ] || status=1
exit $status
