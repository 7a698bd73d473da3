"""The refusals of the API security layer, each with its status and stable envelope code.

``envelope_code`` is the ``error.code`` clients see (documented in docs/API_CHANGES.md and the
OpenAPI schema); ``reason`` is what the audit event records. An exception whose refusal has been
recorded already carries ``audited = True`` so the exception handler does not record it twice.
"""

from __future__ import annotations

from rest_framework import exceptions, status


class ApiRefusal(exceptions.APIException):
    """Base of the layer's refusals."""

    envelope_code = "invalid"
    reason = "invalid"
    audited = False

    def __init__(self, detail=None, *, reason: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        if reason:
            self.reason = reason
        self.headers = headers or {}


class CredentialsInUrl(ApiRefusal):
    """An API key (or anything credential-like) in the query string (OWASP ASVS 4.0.3 V13.1.3)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Credentials must not be sent in the URL. Send the API key in the Authorization header."
    envelope_code = "credentials_in_url"
    reason = "credentials_in_url"


class LengthRequired(ApiRefusal):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = "A request body must be sent with a Content-Length header."
    envelope_code = "length_required"
    reason = "length_required"


class PayloadTooLarge(ApiRefusal):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    envelope_code = "payload_too_large"
    reason = "body_too_large"


class UnsupportedContentType(ApiRefusal):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_detail = "Send the request body as application/json."
    envelope_code = "unsupported_media_type"
    reason = "content_type"


class JSONLimitExceeded(exceptions.ParseError):
    """A JSON body nested too deeply, or with an array or object too long (→ 400 ``invalid``)."""

    envelope_code = "invalid"
    reason = "json_limits"
    audited = False


class JSONDuplicateKey(JSONLimitExceeded):
    """A JSON object with the same key twice (→ 400 ``invalid``): which value counts is ambiguous."""

    reason = "json_duplicate_key"


class KeyRefused(exceptions.AuthenticationFailed):
    """The API key is unknown, wrong, expired, revoked, or used from a network it may not use."""

    default_detail = "The API key is not valid."
    envelope_code = "invalid_api_key"
    audited = False


class SignatureRequired(ApiRefusal):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "This operation needs a signed request (X-Signature-Timestamp, X-Signature-Nonce, X-Signature)."
    envelope_code = "signature_required"
    reason = "signature_missing"


class SignatureInvalid(ApiRefusal):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "The request signature is not valid."
    envelope_code = "signature_invalid"
    reason = "signature_invalid"


class InsufficientScope(ApiRefusal):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "The API key does not have the scope this operation needs."
    envelope_code = "insufficient_scope"
    reason = "insufficient_scope"


class Gone(ApiRefusal):
    status_code = status.HTTP_410_GONE
    default_detail = "This endpoint is gone."
    envelope_code = "gone"
    reason = "sunset"
