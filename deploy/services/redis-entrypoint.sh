#!/bin/sh
# The compose stack's Redis: the password of REDIS_PASSWORD_FILE goes into a configuration file on
# /tmp (a tmpfs, mode 0600), never onto the command line where ps would show it.
set -eu
: "${REDIS_PASSWORD_FILE:?REDIS_PASSWORD_FILE must name the file holding the Redis password}"
[ -r "$REDIS_PASSWORD_FILE" ] || { echo "redis: cannot read REDIS_PASSWORD_FILE ($REDIS_PASSWORD_FILE)" >&2; exit 1; }
umask 077
{
  echo "bind 0.0.0.0"
  echo "port 6379"
  echo "protected-mode yes"
  echo "save \"\""
  echo "appendonly no"
  echo "dir /tmp"
  echo "requirepass $(head -n 1 "$REDIS_PASSWORD_FILE")"
} >/tmp/redis.conf
exec redis-server /tmp/redis.conf "$@"
