#!/usr/bin/env bash
# Build the base of the container image without a container registry: Debian bookworm
# (--variant=minbase) plus the packages in deploy/base-image.packages, made by mmdebstrap from
# Debian's own packages and imported into podman as localhost/ninaivalaigal-base:TAG.
#
#   deploy/base-image.sh                 build the base, or reuse it; print its reference last
#   deploy/base-image.sh --locked        the same, but refuse a base whose versions differ from the lock
#   deploy/base-image.sh --update-lock   the same, then write the versions it holds to the lock
#
# TAG is the first 12 hex digits of the SHA-256 of the package list and this script, so a change
# to either makes a new base. Reuse, cheapest first: the image podman already has; the root file
# system tarball cached in var/cache/images/ (git-ignored); else mmdebstrap (about 70 s). Root is
# needed (mmdebstrap's root mode); scripts/install-system-deps.sh image installs the tools.
# BASE_IMAGE_LOCK names another lock file (the image test plants a difference in a copy).
#
# What "pinned" means here. Debian's mirrors serve only the current version of each package of a
# suite (a point release or security update replaces the old one), and Debian's archive of past
# versions is out of reach on the project's machines, so no build can be forced to fetch old
# versions again. What is pinned is the artifact: a base, once built, is kept (tarball and image)
# and reused under its tag, and every version it holds is written into it
# (/usr/share/ninaivalaigal/base-packages.txt) and beside the tarball. deploy/base-image.lock is
# the record of the last reviewed base: a new base reports each version that differs from it,
# --locked refuses such a base, --update-lock records it. With SOURCE_DATE_EPOCH fixed, the same
# package versions give the same tarball. A fresh machine therefore gets the same packages at the
# versions Debian serves that day, security fixes included.
set -euo pipefail
script=deploy/base-image.sh
cd "$(dirname "$0")/.."

mode=build
case "${1:-}" in
  "") ;;
  --locked) mode=locked ;;
  --update-lock) mode=update-lock ;;
  *) echo "usage: deploy/base-image.sh [--locked|--update-lock]" >&2; exit 2 ;;
esac

suite=bookworm
packages_file=deploy/base-image.packages
lock_file=${BASE_IMAGE_LOCK:-deploy/base-image.lock}
cache_dir=var/cache/images
manifest_in_image=/usr/share/ninaivalaigal/base-packages.txt

tag=$(cat "$packages_file" "$script" | sha256sum | cut -c1-12)
name=ninaivalaigal-base
reference="localhost/$name:$tag"
tarball="$cache_dir/$name-$tag.tar"
manifest="$cache_dir/$name-$tag.packages.txt"
packages=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$packages_file" | tr -d '[:blank:]' | paste -sd, -)
podman=scripts/podman.sh

log() { echo "base-image: $*" >&2; }

# Whether the manifest equals the lock; prints the differences.
matches_lock() {
  if [ ! -f "$lock_file" ]; then
    log "no $lock_file: deploy/base-image.sh --update-lock writes it"
    return 1
  fi
  local differences
  if differences=$(diff <(grep -v '^#' "$lock_file") "$manifest"); then
    log "package versions match $lock_file"
    return 0
  fi
  log "package versions differ from $lock_file (< lock, > this base):"
  printf '%s\n' "$differences" | grep -E '^[<>]' >&2 || true
  return 1
}

image_exists=no
"$podman" image exists "$reference" && image_exists=yes
if [ "$mode" = build ] && [ "$image_exists" = yes ]; then
  log "reusing $reference"
  echo "$reference"
  exit 0
fi

built=no
if [ -f "$tarball" ] && [ -f "$manifest" ]; then
  log "reusing the cached root file system $tarball"
elif [ "$image_exists" = yes ]; then
  # The image is there but not the cache (a fresh clone): its own manifest says what it holds.
  mkdir -p "$cache_dir"
  "$podman" run --rm --network none --entrypoint cat "$reference" "$manifest_in_image" >"$manifest.tmp"
  mv "$manifest.tmp" "$manifest"
else
  command -v mmdebstrap >/dev/null || { log "mmdebstrap is missing: scripts/install-system-deps.sh image"; exit 1; }
  mkdir -p "$cache_dir"
  log "building Debian $suite minbase with $packages (mmdebstrap)"
  started=$(date +%s)
  # Reproducible output for the same package versions: timestamps from the last commit of the
  # inputs, and no copy of this machine's resolv.conf or hostname (podman supplies both).
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct -- "$packages_file" "$script" 2>/dev/null || true)
  export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
  # Merged /usr as debootstrap and Debian's own images make it (directory symlinks and the
  # usr-is-merged package), not through the usrmerge package, which would bring all of Perl.
  # Documentation, manual pages and translations are left out (the copyright files stay).
  # mmdebstrap removes apt's package lists and caches at the end. The hooks' "$1" (the new root)
  # is mmdebstrap's to expand, hence the single quotes.
  # shellcheck disable=SC2016
  mmdebstrap --quiet --format=tar --variant=minbase --include="$packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"' \
    --customize-hook="mkdir -p \"\$1$(dirname "$manifest_in_image")\"" \
    --customize-hook="chroot \"\$1\" dpkg-query --show --showformat='\${Package}=\${Version}\\n' | LC_ALL=C sort > \"\$1$manifest_in_image\"" \
    --customize-hook="cp \"\$1$manifest_in_image\" \"$manifest.tmp\"" \
    "$suite" "$tarball.partial" >&2
  mv "$manifest.tmp" "$manifest"
  mv "$tarball.partial" "$tarball"
  built=yes
  log "built $tarball ($(du -h "$tarball" | cut -f1), $(wc -l <"$manifest") packages) in $(($(date +%s) - started)) s"
fi

case "$mode" in
  locked) matches_lock || { log "--locked: refusing this base"; exit 1; } ;;
  update-lock)
    { echo "# Every package of the base image and its version, from the last reviewed base (deploy/base-image.sh)."
      cat "$manifest"; } >"$lock_file"
    log "wrote $lock_file" ;;
  build) [ "$built" = no ] || matches_lock || true ;;
esac

if [ "$image_exists" = no ]; then
  # The versions of the packages the list names, for `podman image inspect`; the manifest file
  # inside the image has all of them.
  included=$(grep -E "^($(echo "$packages" | tr , '|'))=" "$manifest" | paste -sd' ' -)
  "$podman" import --quiet \
    --change "LABEL org.opencontainers.image.title=$name" \
    --change "LABEL org.opencontainers.image.description=\"Debian $suite minbase with $packages\"" \
    --change "LABEL org.ninaivalaigal.base.packages=\"$included\"" \
    --change "LABEL org.ninaivalaigal.base.manifest=$manifest_in_image" \
    --change "ENV LANG=C.UTF-8" \
    "$tarball" "$reference" >/dev/null
  log "imported $reference"
fi
echo "$reference"
