#!/usr/bin/env bash
# The security gate (docs/security-gate.md): bandit, semgrep with the repository's rules, zizmor,
# detect-secrets against .secrets.baseline, a CycloneDX SBOM of the runtime requirements,
# `manage.py check --deploy` on production settings, hadolint and trivy config on deploy/.
# Offline: nothing here needs more than the package index, and that only to install the tools.
#
#   scripts/security-checks.sh                      every check, one line each; exit 1 if one fails
#   scripts/security-checks.sh --only bandit,semgrep
#   scripts/security-checks.sh --update-secrets-baseline
#
# The tools (requirements-security.txt) live in their own venv, .venv-security (or
# SECURITY_TOOLS_VENV), installed here when missing or when the requirements change; the project's
# .venv (or PROJECT_PYTHON) is used for the SBOM and `manage.py check`.
set -uo pipefail
cd "$(dirname "$0")/.."

tools=${SECURITY_TOOLS_VENV:-.venv-security}
stamp="$tools/.requirements-security.sha256"
wanted=$(sha256sum requirements-security.txt | cut -d' ' -f1)
if [ ! -x "$tools/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Installing the security tools into $tools (requirements-security.txt)"
  log=$(mktemp)
  started=$SECONDS
  if { [ -x "$tools/bin/python" ] || ${PYTHON:-python3} -m venv "$tools"; } >"$log" 2>&1 \
     && "$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-security.txt >>"$log" 2>&1; then
    echo "$wanted" > "$stamp"
    echo "Installed in $((SECONDS - started)) s"
    rm -f "$log"
  else
    grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n 20 >&2
    rm -f "$log"
    echo "security gate: FAILED (the tools could not be installed)"
    exit 1
  fi
fi
exec "$tools/bin/python" scripts/security_gate.py "$@"
