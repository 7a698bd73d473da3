#!/usr/bin/env bash
# Install the Debian packages the test suite needs, when missing: PostgreSQL, Redis, Chromium,
# and podman, runc and mmdebstrap for the container image test (and podman's DNS plugin and openssl
# for the compose stack). With the argument "image", only the container tools (make image); with
# "bench-e2e", only PostgreSQL, Redis and the wrk load generator (make bench-e2e). Runs
# apt-get only as root and only if something is missing; otherwise says what to install.
set -euo pipefail

missing=()
if [ "${1:-}" = bench-e2e ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
fi
if [ "${1:-}" != image ] && [ "${1:-}" != bench-e2e ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
# The container image (deploy/Containerfile): podman with the runc runtime, and mmdebstrap to make
# the base from Debian's packages (deploy/base-image.sh).
if [ "${1:-}" != bench-e2e ]; then
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
# The compose stack (deploy/compose.yaml): podman's DNS plugin for CNI networks, so containers find
# each other by service name; openssl for deploy/make-secrets.py's proxy certificate. podman-compose
# itself comes from requirements-dev.txt (Debian's 1.0.3 cannot start chosen services without
# their dependencies).
[ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Needed Debian packages: ${missing[*]}" >&2
  echo "Install them as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start their own services; the tests start private servers instead.
for service in postgresql redis-server; do
  if command -v service >/dev/null 2>&1; then service "$service" stop >/dev/null 2>&1 || true; fi
done
