"""One error envelope for every API error.

``{"error": {"code": ..., "message": ..., "request_id": ..., "fields": {...}}}`` — never an
exception's text, SQL, a path or a stack trace. ``fields`` appears only for validation errors.

Three producers, one shape: DRF views (``exception_handler``), the API middleware before a view
runs (``error_response``), and Django's error handlers (``api.views``). Every refusal the
handler sees is recorded in the audit trail unless its producer recorded it already; an
unexpected exception becomes a 500 and one full server-side log line with the request id.
"""

from __future__ import annotations

import logging
import sqlite3

import redis
from django import db
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

import audit
from core import context as request_context

logger = logging.getLogger("api.errors")

CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}
MESSAGES = {
    400: "The request is invalid.",
    401: "Authentication credentials were not provided or are not valid.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "This method is not allowed here.",
    406: "The requested representation is not available.",
    409: "The request conflicts with the current state.",
    410: "This endpoint is gone.",
    411: "A request body must be sent with a Content-Length header.",
    413: "The request body is too large.",
    415: "Unsupported content type.",
    429: "Too many requests.",
    500: "An unexpected error occurred.",
    503: "The service is unavailable right now (its database or cache refused the request). Try again later.",
}

# What a client is told to wait when the database refuses work (a full disk, a restart).
UNAVAILABLE_RETRY_AFTER_SECONDS = 30


# SQLite's result codes of a database that cannot take work now (a full or read-only disk, a lock).
_SQLITE_UNAVAILABLE = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR",
                       "SQLITE_CANTOPEN", "SQLITE_NOMEM")


def backend_unavailable(exc) -> bool:
    """Whether ``exc`` is the database or Redis refusing work now (disk full, connection lost, restarting).

    Redis holds the API's throttle counters and signature nonces (and the login rate limits) when
    configured: without it those checks cannot be made, so the request is refused (fail closed),
    with the same 503 rather than a 500.

    A 503 with ``Retry-After`` says "try again", where a 500 would suggest a bug. The request's
    open transaction is rolled back; one that had already committed stays (the connection can die
    just after a ``COMMIT``), so a client that must not write twice checks before it retries.
    """
    if isinstance(exc, (db.InterfaceError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return True
    if not isinstance(exc, db.OperationalError):
        return False
    cause = exc.__cause__
    if isinstance(cause, sqlite3.Error):  # SQLite's OperationalError also covers bad SQL (SQLITE_ERROR)
        return getattr(cause, "sqlite_errorname", "").startswith(_SQLITE_UNAVAILABLE)
    return True  # psycopg: connection lost, server shutting down, disk full, timeouts


def log_backend_unavailable(request, exc) -> None:
    """One server-side line with the request id and the traceback; the client sees only the envelope."""
    current = request_context.current()
    request_id = current.request_id if current else getattr(request, "request_id", None)
    logger.error(
        "Database or Redis unavailable in %s %s (request_id=%s): %s",
        getattr(request, "method", "?"), getattr(request, "path", "?"), request_id, type(exc).__name__,
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"request_id": request_id},
    )


def error_body(
    status_code: int, *, message: str | None = None, fields: dict | None = None, code: str | None = None
) -> dict:
    """Return the error envelope for ``status_code``."""
    current = request_context.current()
    body = {
        "code": code or CODES.get(status_code, "error"),
        "message": message or MESSAGES.get(status_code, "The request failed."),
        "request_id": current.request_id if current else None,
    }
    if fields:
        body["fields"] = fields
    return {"error": body}


def error_response(
    status_code: int, *, message: str | None = None, code: str | None = None, headers: dict | None = None
) -> JsonResponse:
    """The envelope as a plain Django response (middleware and Django's error handlers)."""
    response = JsonResponse(error_body(status_code, message=message, code=code), status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def refusal_response(exc) -> JsonResponse:
    """The envelope for one of ``api.exceptions``' refusals, outside DRF."""
    return error_response(
        exc.status_code,
        message=str(exc.detail),
        code=getattr(exc, "envelope_code", None),
        headers=getattr(exc, "headers", None),
    )


def _field_messages(detail) -> dict | list | str:
    """Flatten DRF's ``ErrorDetail`` tree into plain strings (no internals, only messages)."""
    if isinstance(detail, dict):
        return {str(key): _field_messages(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_field_messages(item) for item in detail]
    return str(detail)


# Refusals the handler records when their producer did not (ASVS V7.1.3/V7.2.2). 404s are
# recorded by the domain (memories.auditing) where hiding an object is a decision; a plain
# unknown URL is not a security decision.
_AUDITED_STATUSES = {400, 401, 403, 405, 406, 410, 411, 413, 415, 429}


def _reason(exc) -> str:
    reason = getattr(exc, "reason", None)
    if reason:
        return reason
    if isinstance(exc, exceptions.ValidationError):
        return "invalid"
    if isinstance(exc, exceptions.ParseError):
        return "malformed_body"
    if isinstance(exc, exceptions.NotAuthenticated):
        return "not_authenticated"
    if isinstance(exc, exceptions.Throttled):
        return "throttled"
    return CODES.get(exc.status_code, "refused")


def _record(exc, request, status_code: int, fields: dict | None) -> None:
    if request is None or getattr(exc, "audited", False) or status_code not in _AUDITED_STATUSES:
        return
    from api.refusals import record_refusal

    if isinstance(exc, exceptions.Throttled):
        action = audit.Action.RATE_LIMITED
    elif status_code == 401:
        action = audit.Action.API_KEY_REFUSED if _sent_api_key(request) else audit.Action.REQUEST_REJECTED
    elif status_code == 403:
        action = audit.Action.PERMISSION_DENIED
    else:
        action = audit.Action.REQUEST_REJECTED
    context = {}
    if fields:
        context["fields"] = sorted(fields)[:50]  # names only, never the values sent
    scope = getattr(getattr(request, "_request", request), "throttle_scope", None)
    if scope:
        context["scope"] = scope
    record_refusal(request=request, action=action, reason=_reason(exc), status=status_code, context=context)
    exc.audited = True


def _sent_api_key(request) -> bool:
    return request.META.get("HTTP_AUTHORIZATION", "").lower().startswith("bearer ")


def exception_handler(exc, context):
    """DRF exception handler producing the envelope; unexpected errors become a logged 500."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    request = context.get("request")

    if isinstance(exc, exceptions.APIException):
        set_rollback()
        status_code = exc.status_code
        headers = dict(getattr(exc, "headers", None) or {})
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        fields = None
        if isinstance(exc, exceptions.ValidationError):
            detail = _field_messages(exc.detail)
            fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
            body = error_body(400, fields=fields)
            status_code = 400
        elif isinstance(exc, exceptions.ParseError):
            message = str(exc.detail) if getattr(exc, "envelope_code", None) else "Malformed request body."
            body = error_body(400, message=message, code=getattr(exc, "envelope_code", None))
        elif isinstance(exc, exceptions.UnsupportedMediaType):
            body = error_body(415)
        elif getattr(exc, "envelope_code", None):
            body = error_body(status_code, message=str(exc.detail), code=exc.envelope_code)
        else:
            body = error_body(status_code)
        _record(exc, request, status_code, fields)
        return Response(body, status=status_code, headers=headers)

    if backend_unavailable(exc):
        log_backend_unavailable(request, exc)
        set_rollback()
        return Response(
            error_body(503), status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )
    view = context.get("view")
    current = request_context.current()
    logger.error(
        "Unhandled API exception in %s %s (view %s, request_id=%s)",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        view.__class__.__name__ if view is not None else "?",
        current.request_id if current else None,
        exc_info=(type(exc), exc, exc.__traceback__),
        # Also as a field: the log sanitiser keeps identifiers under *_id keys intact.
        extra={"request_id": current.request_id if current else None},
    )
    set_rollback()
    return Response(error_body(500), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
