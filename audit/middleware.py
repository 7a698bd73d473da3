"""Request context middleware: request id, client IP and user agent bound for the request."""

from __future__ import annotations

from auditlog.middleware import AuditlogMiddleware

from audit import context as request_context

REQUEST_ID_HEADER = "X-Request-ID"


class RequestContextMiddleware:
    """Assign each request an id, resolve its client IP once, echo the id in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        bound = request_context.RequestContext(
            request_id=request_context.accept_request_id(request.META.get("HTTP_X_REQUEST_ID")),
            client_ip=request_context.client_ip_from_meta(request.META),
            user_agent=(request.META.get("HTTP_USER_AGENT", "") or "")[: request_context.USER_AGENT_MAX_LENGTH],
        )
        request.request_id = bound.request_id
        request.client_ip = bound.client_ip
        token = request_context.bind(bound)
        user_token = request_context.bind_user(request)
        try:
            response = self.get_response(request)
        finally:
            request_context.reset_user(user_token)
            request_context.reset(token)
        response[REQUEST_ID_HEADER] = bound.request_id
        return response


class AuditlogContextMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, with the client IP from our one trusted-proxy function.

    The stock middleware believes the first ``X-Forwarded-For`` entry, which any client can
    forge; we hand it the address ``RequestContextMiddleware`` resolved instead.
    """

    @staticmethod
    def _get_remote_addr(request):
        return getattr(request, "client_ip", None)

    @staticmethod
    def _get_remote_port(request):
        return None
