"""The site-wide middleware: the request context, and the security headers of every response.

``RequestContextMiddleware`` gives each request an id (a well-formed incoming ``X-Request-ID``
is kept), resolves its client IP once and binds both, with the request as the source of the
acting user, for everything the request causes; the id is echoed in the response.
``SecurityHeadersMiddleware`` adds what Django's ``SecurityMiddleware`` and
``XFrameOptionsMiddleware`` do not: ``Permissions-Policy``, ``Cache-Control: no-store`` on every
API and every authenticated response, and a locked-down CSP for JSON. ``ContentSecurityPolicyMiddleware``
is django-csp's, with per-request nonces for every other page.
"""

from __future__ import annotations

from csp.middleware import CSPMiddleware
from django.conf import settings

from core import conf
from core import context as request_context
from core.requests import client_ip_from_meta, request_user, user_agent

REQUEST_ID_HEADER = "X-Request-ID"
# Every API endpoint lives under this prefix (the URL contract in docs/architecture.md).
API_PATH_PREFIX = "/api/"
CSP_HEADER = "Content-Security-Policy"
JSON_CONTENT_SECURITY_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def is_api_request(request) -> bool:
    """Whether ``request`` is for the API (everything under ``/api/``)."""
    return request.path_info.startswith(API_PATH_PREFIX)


class RequestContextMiddleware:
    """Assign each request an id, resolve its client IP once, echo the id in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        bound = request_context.RequestContext(
            request_id=request_context.accept_request_id(request.META.get("HTTP_X_REQUEST_ID")),
            client_ip=client_ip_from_meta(request.META),
            user_agent=user_agent(request),
            user_source=request,
        )
        request.request_id = bound.request_id
        request.client_ip = bound.client_ip
        token = request_context.bind(bound)
        try:
            response = self.get_response(request)
        finally:
            request_context.reset(token)
        response[REQUEST_ID_HEADER] = bound.request_id
        return response


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware (nonces, ``CONTENT_SECURITY_POLICY``), skipping responses whose
    policy is set already: it would build the site policy only to throw it away, on every API
    response."""

    def process_response(self, request, response):
        if CSP_HEADER in response:
            return response
        return super().process_response(request, response)


class SecurityHeadersMiddleware:
    """Permissions-Policy everywhere; no-store on API and authenticated responses; strict CSP for JSON."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + (settings.STATIC_URL or "static/").lstrip("/")

    def __call__(self, request):
        response = self.get_response(request)
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = conf.get("PERMISSIONS_POLICY")
        path = request.path_info
        if path.startswith(self.static_prefix):
            return response
        if is_api_request(request):
            response["Cache-Control"] = "no-store"
            if response.get("Content-Type", "").startswith("application/json"):
                # A JSON document loads nothing and may not be framed (OWASP REST Security
                # Cheat Sheet). A constant: ContentSecurityPolicyMiddleware keeps it as it is.
                response[CSP_HEADER] = JSON_CONTENT_SECURITY_POLICY
        elif self._authenticated(request, response):
            response["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def _authenticated(request, response) -> bool:
        # Responses that set a session or CSRF cookie carry a secret; responses to a request
        # with a session cookie are checked for an authenticated user (the session is loaded
        # by then on any page that used it).
        cookies = response.cookies
        if settings.SESSION_COOKIE_NAME in cookies or settings.CSRF_COOKIE_NAME in cookies:
            return True
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return False
        return request_user(request) is not None
