"""gunicorn configuration: ``gunicorn -c deploy/gunicorn.conf.py`` (docs/operations.md, "Serving").

Read again on SIGHUP, gunicorn's graceful reload: new workers start with the new code and
configuration, the old ones finish their requests. Every variable is in ``.env.example``.
"""

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _cpu_count() -> int:
    # The CPUs this process may run on (a container's cpuset), not every CPU of the host.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


wsgi_app = "config.wsgi:application"
chdir = str(PROJECT_DIR)
proc_name = "ninaivalaigal"
# Managed by signals (HUP reloads, TERM stops): no gunicornc control socket for others to reach.
control_socket_disable = True

# Loopback unless told otherwise: a deployment puts a reverse proxy (TLS) in front.
bind = [address.strip() for address in os.environ.get("WEB_BIND", "127.0.0.1:8000").split(",") if address.strip()]
# Threaded workers: gunicorn's advice of 2 x CPUs + 1 processes, each answering WEB_THREADS
# requests at once. Not the synchronous worker: its heartbeat to the master stops while it
# answers, so a response that streams longer than the timeout (the audit explorer's export of a
# million events takes about a minute) is killed halfway. A threaded worker's main loop keeps
# beating while its threads stream (tests/deploy/test_gunicorn.py proves both). What bounds a
# request now is the database's statement timeout and the reverse proxy's, not the worker's.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * _cpu_count() + 1)
threads = int(os.environ.get("WEB_THREADS", "4"))
# A worker process silent this long (its main loop stuck, not one slow request) is killed and
# replaced; on SIGTERM or SIGHUP workers get this long to finish their requests (seconds).
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "30"))
# gunicorn does not count what sendfile() sends: the access log would say 0 bytes for every
# static file. Files go through ordinary writes instead (small files, a few more copies).
sendfile = False
# Worker heartbeats in memory: works on a read-only root file system.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# gunicorn trusts no forwarded header: the app alone decides what a proxy may tell it
# (SECURE_PROXY_SSL for the scheme, AUDIT_TRUSTED_PROXY_COUNT for the client IP). By default
# gunicorn would let any loopback peer set the scheme, SCRIPT_NAME and PATH_INFO by header.
forwarded_allow_ips = ""
secure_scheme_headers = {}
forwarder_headers = ""

# Logs: one JSON object per line, through the project's own formatter and sanitiser. The access
# log (stdout) has named fields only (core/access_log.py): never a query string, cookie or
# Authorization header. gunicorn's own messages go to stderr, like the app's.
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = "core.access_log.JsonAccessLogger"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"sanitise": {"()": "core.logging.SanitisingFilter"}},
    "formatters": {
        "json": {"()": "core.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "access": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["sanitise"],
            "formatter": "json",
        },
        "error": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "filters": ["sanitise"],
            "formatter": "plain" if os.environ.get("LOG_FORMAT") == "plain" else "json",
        },
    },
    "loggers": {
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error"], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": ["error"]},
}
