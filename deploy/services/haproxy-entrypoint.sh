#!/bin/sh
# HAProxy in the foreground (master-worker, so a reload never drops a connection). The active slot
# starts as ACTIVE_SLOT (default blue), written into the map on /tmp (a tmpfs); deploy/bluegreen.py
# changes it at run time with "set map" on the runtime API socket, /tmp/haproxy.sock.
set -eu
: "${SITE_HOST:?SITE_HOST must name the site (the Host the web replicas accept)}"
[ -r /run/secrets/proxy_certificate ] || { echo "haproxy: cannot read /run/secrets/proxy_certificate" >&2; exit 1; }
case "${ACTIVE_SLOT:=blue}" in blue|green) ;; *) echo "haproxy: ACTIVE_SLOT must be blue or green" >&2; exit 1 ;; esac
echo "active $ACTIVE_SLOT" >/tmp/slot.map
export SITE_HOST
exec haproxy -W -db -f /etc/haproxy/haproxy.cfg "$@"
