#!/usr/bin/env bash
# Build the images of the compose stack (deploy/compose.yaml) with podman: the application image
# (scripts/build-image.sh) and PostgreSQL, Redis and the HAProxy proxy, each FROM the project's
# Debian base (deploy/base-image.sh) plus Debian packages (deploy/services/*.Containerfile). No
# registry is used: apt-get is the only thing fetched, so those builds run with --network=host; their
# context is deploy/services alone.
#
#   scripts/build-stack-images.sh          prints NAME=REFERENCE lines (app, postgres, redis, proxy)
#   scripts/build-stack-images.sh --env    the same as the variables deploy/compose.yaml reads
#
# A service image's tag is the first 12 hex digits of the SHA-256 of its Containerfile, the files it
# copies and the base's tag, so a change to any of them builds a new one. Reuse, cheapest first: the
# image podman already has; the archive cached in var/cache/images/ (git-ignored; podman load);
# else podman build, whose result is saved there.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
log() { echo "build-stack-images: $*" >&2; }
podman=scripts/podman.sh
cache_dir=var/cache/images
mkdir -p "$cache_dir"

app=$(PYTHON=${PYTHON:-.venv/bin/python} scripts/build-image.sh | tail -n 1)
base=$(deploy/base-image.sh | tail -n 1)

build_service() {
  local name=$1
  local containerfile=deploy/services/$name.Containerfile
  local tag
  # What the Containerfile copies: deploy/services/NAME-* (proxy: haproxy*).
  local prefix=$name-
  [ "$name" != proxy ] || prefix=haproxy
  tag=$( { echo "$base"; cat "$containerfile" deploy/services/"$prefix"*; } | sha256sum | cut -c1-12)
  local reference=localhost/ninaivalaigal-$name:$tag
  local archive=$cache_dir/ninaivalaigal-$name-$tag.tar
  if "$podman" image exists "$reference"; then
    log "reusing $reference"
  elif [ -f "$archive" ]; then
    log "loading $reference from $archive"
    "$podman" load --quiet --input "$archive" >/dev/null
  else
    local started
    started=$(date +%s)
    log "building $reference"
    "$podman" build --quiet --format docker --network host --file "$containerfile" \
      --build-arg "BASE_IMAGE=$base" --tag "$reference" deploy/services >/dev/null
    "$podman" save --quiet --output "$archive.partial" "$reference"
    mv "$archive.partial" "$archive"
    log "built $reference ($(( $("$podman" image inspect --format '{{.Size}}' "$reference") / 1000000 )) MB) in $(($(date +%s) - started)) s"
  fi
  echo "$reference"
}

postgres=$(build_service postgres)
redis=$(build_service redis)
proxy=$(build_service proxy)
if [ "${1:-}" = --env ]; then
  printf 'APP_IMAGE=%s\nPOSTGRES_IMAGE=%s\nREDIS_IMAGE=%s\nPROXY_IMAGE=%s\n' "$app" "$postgres" "$redis" "$proxy"
else
  printf 'app=%s\npostgres=%s\nredis=%s\nproxy=%s\n' "$app" "$postgres" "$redis" "$proxy"
fi
