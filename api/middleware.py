"""The API security middleware: ``ApiRequestMiddleware`` guards everything under ``/api/``.

Before a view, in this order, each refusal an error envelope and an audit event: credentials in
the query string → 400 (OWASP ASVS 4.0.3 V13.1.3); past the sunset → 410; no ``Content-Length``
→ 411, over the endpoint's limit → 413 (checked before a byte is read); not ``application/json``
→ 415 (V13.1.5, V13.2.5). After it: the deprecation headers and count, and for an exception no
view handled, a 500 envelope and one log line with the request id. The site-wide security
headers are ``core.middleware``'s. Every code: docs/API_CHANGES.md.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.utils import timezone

import audit
from api import conf, keys, services, versioning
from api.errors import (
    UNAVAILABLE_RETRY_AFTER_SECONDS,
    backend_unavailable,
    error_response,
    log_backend_unavailable,
    refusal_response,
)
from api.exceptions import CredentialsInUrl, Gone, LengthRequired, PayloadTooLarge, UnsupportedContentType
from api.refusals import record_refusal
from core.middleware import is_api_request
from core.requests import request_api_key, request_user

logger = logging.getLogger("api.errors")

# Query parameter names that only ever carry credentials; values that look like our keys are
# refused whatever the parameter is called.
CREDENTIAL_PARAMETERS = frozenset(
    {"api_key", "apikey", "api-key", "key", "access_token", "token", "auth", "authorization", "signature"}
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_MEDIA_TYPES = frozenset({"application/json"})


def body_limit(request, view_func=None) -> int:
    """The body limit of the endpoint: ``API_BODY_LIMITS[url name]``, the view's, or the global one."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.view_name:
        override = conf.get("API_BODY_LIMITS").get(match.view_name)
        if override is not None:
            return int(override)
    view_class = getattr(view_func, "view_class", None) or getattr(view_func, "cls", None)
    limit = getattr(view_class, "max_body_bytes", None)
    return int(limit) if limit is not None else conf.get("API_MAX_BODY_BYTES")


def _endpoint_label(request) -> str:
    """``GET /api/v1/memories/<int:memory_id>/``: the route, not the ids, so counts aggregate."""
    try:
        match = request.resolver_match or resolve(request.path_info)
        route = "/" + match.route
    except Resolver404:
        route = request.path_info
    return f"{request.method} {route}"


class ApiRequestMiddleware:
    """Refuse bad API requests before a view runs; announce deprecations; envelope every 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_request(request):
            return self.get_response(request)
        refusal = self._refuse_credentials_in_url(request) or self._refuse_sunset(request)
        if refusal is not None:
            return refusal
        response = self.get_response(request)
        self._announce_deprecation(request, response)
        return response

    # --- before the view ------------------------------------------------------------------
    def _refuse_credentials_in_url(self, request):
        query = request.META.get("QUERY_STRING", "")
        if not query:
            return None
        offending = None
        for name, values in request.GET.lists():
            if name.lower() in CREDENTIAL_PARAMETERS or any(keys.KEY_PREFIX in value for value in values):
                offending = name
                break
        if offending is None and keys.KEY_PREFIX in query:
            offending = "?"
        if offending is None:
            return None
        # The key may have leaked into proxy and access logs already: the event names the
        # parameter and the key's public prefix, never the secret; a whole valid key is revoked
        # and its owner told (services.api_key_revoke_leaked).
        refusal = self._refuse(
            request,
            CredentialsInUrl(),
            action=audit.Action.API_KEY_REFUSED,
            context={"parameter": offending[:40], "key_prefix": keys.prefix_in(query) or ""},
        )
        services.api_key_revoke_leaked(text=unquote_plus(query))
        return refusal

    def _refuse_sunset(self, request):
        deprecation = versioning.deprecation_for(request.path_info, request.method)
        if deprecation is None or not deprecation.is_sunset(timezone.now()):
            return None
        error = Gone(
            f"This endpoint was retired on {deprecation.sunset_at.date().isoformat()}. "
            f"Use {deprecation.successor} (migration notes: {deprecation.notes_url()}).",
            headers=deprecation.headers(),
        )
        return self._refuse(
            request,
            error,
            action=audit.Action.DEPRECATED_ENDPOINT_CALLED,
            context={"endpoint": _endpoint_label(request)},
        )

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not is_api_request(request):
            return None
        meta = request.META
        length_header = meta.get("CONTENT_LENGTH") or ""
        chunked = "HTTP_TRANSFER_ENCODING" in meta
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            length = -1
        if chunked and not length_header:
            return self._refuse(request, LengthRequired())
        if length < 0:
            return self._refuse(request, LengthRequired(reason="content_length_malformed"))
        if length == 0:
            return None
        limit = body_limit(request, view_func)
        if length > limit:
            return self._refuse(
                request,
                PayloadTooLarge(f"The request body is too large: at most {limit} bytes here."),
                context={"content_length": length, "limit": limit},
            )
        media_type = (meta.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
        if media_type not in JSON_MEDIA_TYPES:
            return self._refuse(
                request, UnsupportedContentType(), context={"content_type": media_type[:60] or "(none)"}
            )
        return None

    @staticmethod
    def _refuse(request, error, *, action=audit.Action.REQUEST_REJECTED, context=None):
        record_refusal(request=request, action=action, reason=error.reason, status=error.status_code, context=context)
        return refusal_response(error)

    # --- after the view -------------------------------------------------------------------
    def _announce_deprecation(self, request, response) -> None:
        deprecation = versioning.deprecation_for(request.path_info, request.method)
        if deprecation is None:
            return
        for name, value in deprecation.headers().items():
            response[name] = value
        if not deprecation.is_deprecated(timezone.now()) or response.status_code >= 500:
            return
        services.deprecated_call_record(
            endpoint=_endpoint_label(request),
            api_key=request_api_key(request),
            user=request_user(request),
            client_ip=getattr(request, "client_ip", None),
        )

    def process_exception(self, request, exception):
        """An exception no view turned into a response: the 500 envelope, one full log line.

        The database refusing work (``api.errors.backend_unavailable``) is a 503 with
        ``Retry-After`` everywhere, the envelope under ``/api/`` and a plain page elsewhere.
        """
        if backend_unavailable(exception):
            log_backend_unavailable(request, exception)
            headers = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)}
            if is_api_request(request):
                return error_response(503, headers=headers)
            response = render(
                request, "errors/503.html", {"request_id": getattr(request, "request_id", None)}, status=503
            )
            response["Retry-After"] = headers["Retry-After"]
            return response
        if not is_api_request(request):
            return None
        request_id = getattr(request, "request_id", None)
        logger.error(
            "Unhandled exception in %s %s (request_id=%s)",
            request.method,
            request.path,
            request_id,
            exc_info=(type(exception), exception, exception.__traceback__),
            extra={"request_id": request_id},
        )
        return error_response(500)
