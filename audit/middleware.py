"""django-auditlog's middleware, with the client IP from the project's one trusted-proxy function."""

from __future__ import annotations

from auditlog.middleware import AuditlogMiddleware


class AuditlogContextMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, with the client IP ``core.middleware`` resolved.

    The stock middleware believes the first ``X-Forwarded-For`` entry, which any client can
    forge; we hand it the address ``RequestContextMiddleware`` resolved instead.
    """

    @staticmethod
    def _get_remote_addr(request):
        return getattr(request, "client_ip", None)

    @staticmethod
    def _get_remote_port(request):
        return None
