#!/usr/bin/env bash
# podman as the build and test scripts run it on the project's machines: the runc runtime (crun
# refuses their hybrid cgroup layout) and deploy/containers.conf (they do not permit setting
# RLIMIT_NOFILE). These are harness settings only: the image carries neither, and Docker or
# Kubernetes on an ordinary host need neither.
#
#   scripts/podman.sh ARGS...     e.g. scripts/podman.sh images
set -euo pipefail
project_dir=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF="$project_dir/deploy/containers.conf"
exec podman --runtime runc "$@"
