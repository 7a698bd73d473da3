"""One error envelope for every API error.

``{"error": {"code": ..., "message": ..., "request_id": ..., "fields": {...}}}`` — never an
exception's text, SQL, a path or a stack trace. ``fields`` appears only for validation errors.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from audit import context as request_context

logger = logging.getLogger(__name__)

CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
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
    413: "The request body is too large.",
    415: "Unsupported content type.",
    429: "Too many requests.",
    500: "An unexpected error occurred.",
}


def error_body(status_code: int, *, message: str | None = None, fields: dict | None = None) -> dict:
    """Return the error envelope for ``status_code``."""
    current = request_context.current()
    body = {
        "code": CODES.get(status_code, "error"),
        "message": message or MESSAGES.get(status_code, "The request failed."),
        "request_id": current.request_id if current else None,
    }
    if fields:
        body["fields"] = fields
    return {"error": body}


def _field_messages(detail) -> dict | list | str:
    """Flatten DRF's ``ErrorDetail`` tree into plain strings (no internals, only messages)."""
    if isinstance(detail, dict):
        return {str(key): _field_messages(value) for key, value in detail.items()}
    if isinstance(detail, list):
        flat = [_field_messages(item) for item in detail]
        return flat
    return str(detail)


def exception_handler(exc, context):
    """DRF exception handler producing the envelope; unexpected errors become a logged 500."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.APIException):
        status_code = exc.status_code
        headers = {}
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, exceptions.ValidationError):
            detail = _field_messages(exc.detail)
            fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
            return Response(error_body(400, fields=fields), status=400, headers=headers)
        if isinstance(exc, exceptions.ParseError):
            return Response(error_body(400, message="Malformed request body."), status=400)
        if isinstance(exc, exceptions.UnsupportedMediaType):
            return Response(error_body(415), status=415)
        return Response(error_body(status_code), status=status_code, headers=headers)

    logger.exception("Unhandled API exception", extra={"view": context.get("view").__class__.__name__})
    return Response(error_body(500), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
