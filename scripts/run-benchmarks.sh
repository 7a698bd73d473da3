#!/usr/bin/env bash
# Run every benchmark in bench/ on SQLite, then on a throwaway PostgreSQL server.
# Each benchmark prints ratios measured side by side in one run. Pass a name to run one:
#   scripts/run-benchmarks.sh audit_bench
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
status=0
for bench in bench/*.py; do
  name=$(basename "$bench" .py)
  case "$name" in __init__|support|e2e_*|detection_*) continue ;; esac  # make bench-e2e, make bench-detection
  [ $# -gt 0 ] && [ "$name" != "$1" ] && continue
  echo "== $name on SQLite"
  $py "$bench" || status=1
  echo "== $name on PostgreSQL"
  scripts/with-postgres.sh $py "$bench" || status=1
done
exit $status
