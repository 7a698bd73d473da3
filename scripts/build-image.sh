#!/usr/bin/env bash
# Build the application image (deploy/Containerfile) with podman: `make image`.
#
#   scripts/build-image.sh [REFERENCE]    default localhost/ninaivalaigal:<revision> and :latest
#
# 1. the base: deploy/base-image.sh (Debian packages through mmdebstrap, cached);
# 2. the wheels of requirements.txt and pip's own wheel, built on the host into
#    var/cache/wheels/<hash>/ (git-ignored, reused while requirements.txt and pip are the same);
# 3. podman build without a network (the wheels are all it installs), labelled with the revision.
# Prints the image reference last on stdout; everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
log() { echo "build-image: $*" >&2; }
started=$(date +%s)
command -v "$py" >/dev/null || { log "no project interpreter $py: make image creates the venv first (or set PYTHON)"; exit 1; }

base=$(deploy/base-image.sh | tail -n 1)

# The wheels must be resolved by the image's interpreter version: a dependency can hang on it
# (redis needs async-timeout below Python 3.11.3). The base says which it is; pip runs from its own
# wheel under a host interpreter of that same version (Debian's /usr/bin/python3 on the project's
# machines, which are Debian 12 like the base, and in .github/workflows/security.yml's Debian 12
# job). Wheels resolved for another version could install and then fail at run time, so a machine
# without that version stops here, in one line, before anything is built.
base_python=$(scripts/podman.sh image inspect --format '{{ index .Labels "org.ninaivalaigal.base.packages" }}' "$base" \
  | tr ' ' '\n' | sed -n 's/^python3=\([0-9.]*\).*/\1/p')
if [ -z "$base_python" ]; then
  log "the base $base does not say its python3 version (label org.ninaivalaigal.base.packages); rebuild it with deploy/base-image.sh"
  exit 1
fi
wheel_python=""
seen=()
for candidate in /usr/bin/python3 "$py"; do
  command -v "$candidate" >/dev/null || continue
  candidate_version=$("$candidate" -c 'import platform; print(platform.python_version())')
  if [ "$candidate_version" = "$base_python" ]; then
    wheel_python=$candidate
    break
  fi
  seen+=("$candidate is $candidate_version")
done
if [ -z "$wheel_python" ]; then
  log "the image's Python is $base_python, and no Python $base_python here to resolve its wheels ($(IFS=,; echo "${seen[*]}" | sed 's/,/, /g')): build on Debian 12, or set PYTHON to a Python $base_python"
  exit 1
fi
pip_version=$("$py" -m pip --version | awk '{print $2}')
# Keyed by what decides them: requirements.txt, the Python version and pip's version.
wheels_key=$( { cat requirements.txt; echo "python $base_python pip $pip_version"; } | sha256sum | cut -c1-12)
wheels=var/cache/wheels/$wheels_key
if [ ! -d "$wheels" ]; then
  log "building the wheels of requirements.txt for Python $base_python into $wheels"
  rm -rf "$wheels.partial"
  mkdir -p "$wheels.partial/packages" "$wheels.partial/pip"
  "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$wheels.partial/pip" "pip==$pip_version"
  "$wheel_python" "$wheels.partial/pip/pip-$pip_version-py3-none-any.whl/pip" wheel --quiet \
    --disable-pip-version-check --wheel-dir "$wheels.partial/packages" -r requirements.txt
  mv "$wheels.partial" "$wheels"
else
  log "reusing the wheels in $wheels"
fi

revision=$(git rev-parse HEAD)
# A build of uncommitted changes says so, rather than claim a commit it does not match.
[ -z "$(git status --porcelain)" ] || revision="$revision-dirty"
version=$("$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
source_url=$(git config --get remote.origin.url || true)
case "$source_url" in https://*) ;; *) source_url="" ;; esac
tags=(--tag "${1:-localhost/ninaivalaigal:${revision:0:12}${revision#"${revision%-dirty}"}}")
[ $# -gt 0 ] || tags+=(--tag localhost/ninaivalaigal:latest)
reference=${tags[1]}

log "building $reference on $base"
# --format docker keeps the HEALTHCHECK (the OCI format has none); --network none: nothing is
# fetched during the build.
scripts/podman.sh build --quiet --format docker --network none \
  --file deploy/Containerfile \
  --build-context "wheels=$wheels" \
  --build-arg "WHEELS_KEY=$wheels_key" \
  --build-arg "BASE_IMAGE=$base" \
  --build-arg "REVISION=$revision" \
  --build-arg "VERSION=$version" \
  --build-arg "SOURCE=$source_url" \
  "${tags[@]}" \
  . >/dev/null
size=$(scripts/podman.sh image inspect --format '{{.Size}}' "$reference")
log "built $reference ($((size / 1000000)) MB) in $(($(date +%s) - started)) s"
echo "$reference"
