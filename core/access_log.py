"""gunicorn's access log as one sanitised JSON object per line (``logger_class`` in deploy/gunicorn.conf.py).

Each line names its fields from an allow-list: the request id the app echoed in ``X-Request-ID``,
method, path without the query string, status, bytes sent, duration and the client IP from the
project's one client-IP function. Query strings, cookies, ``Authorization`` and every other
header are never read: they carry tokens and session ids (ASVS 4.0.3 V7.1.1; OWASP Logging Cheat
Sheet). ``core.logging.JsonFormatter`` renders the line like every other log line of the project.
"""

from __future__ import annotations

import traceback

from django.core.exceptions import ImproperlyConfigured
from gunicorn.glogging import Logger

from core.requests import client_ip_from_meta, valid_ip

# The header RequestContextMiddleware sets on every response (core.middleware.REQUEST_ID_HEADER;
# not imported: the gunicorn master loads this module before Django is set up).
REQUEST_ID_HEADER = "x-request-id"


def access_fields(response, request, environ: dict, request_time) -> dict:
    """The fields of one access log line; nothing outside this allow-list is ever logged."""
    request_id = next(
        (value for name, value in response.headers if name.lower() == REQUEST_ID_HEADER), None
    )
    status = response.status_code
    if status is None and isinstance(response.status, str):
        status = int(response.status.split(None, 1)[0])
    # gunicorn's parsed request path: the request target without "?query" (RAW_URI keeps it).
    path = getattr(request, "path", None)
    if path is None:
        path = environ.get("PATH_INFO", "")
    return {
        "request_id": request_id,
        "method": environ.get("REQUEST_METHOD"),
        "path": path,
        "status": status,
        "bytes": getattr(response, "sent", None),
        "duration_ms": round(request_time.total_seconds() * 1000, 3),
        "client_ip": _client_ip(environ),
    }


def _client_ip(environ: dict) -> str | None:
    # The WSGI environ is the request's META: the same function gives the app's answer
    # (AUDIT_TRUSTED_PROXY_COUNT), also for responses made before RequestContextMiddleware ran.
    try:
        return client_ip_from_meta(environ)
    except ImproperlyConfigured:  # the app failed to load: only the peer address is known
        return valid_ip(environ.get("REMOTE_ADDR"))


class JsonAccessLogger(Logger):
    """gunicorn's logger with an access line of named fields instead of a format string."""

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info("request", extra=access_fields(resp, req, environ, request_time))
        except Exception:
            self.error(traceback.format_exc())
