"""OpenAPI: what the API security layer adds to every operation of the drf-spectacular schema.

The ``apiKey`` security scheme (``Authorization: Bearer nvk_...``) beside the session cookie; the
signature headers, required, with ``x-signature-required: true`` where a signed request is
needed; ``x-required-scope`` and ``x-max-body-bytes``; the error envelope on every answer an
operation can give (``COMMON_ERRORS``, ``BODY_ERRORS`` or ``QUERY_ERRORS``, 410 past a sunset),
with ``Retry-After`` on 429; ``deprecated: true`` and the sunset date from the deprecation
registry; operation ids unique per version (v2's are prefixed ``v2_``).
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from api import conf, signing, versioning
from api.permissions import needs_signature, required_scope
from api.serializers import ErrorEnvelopeSerializer

COMMON_ERRORS = {
    "401": "Not authenticated: no credentials, an invalid API key, or a missing or invalid signature.",
    "403": "Permission denied, or the API key lacks the scope in `x-required-scope`.",
    "404": "Not found, or you may not see it (indistinguishable); on lists, a page number out of range.",
    "405": "Method not allowed.",
    "406": "Only application/json responses are available.",
    "429": "Too many requests: wait `Retry-After` seconds.",
    "500": "Unexpected error (logged with the request id).",
}
BODY_ERRORS = {
    "400": "Invalid input: `error.fields` names each bad field; malformed JSON or JSON beyond the depth/size limits.",
    "411": "A body was sent without Content-Length.",
    "413": "The body is larger than `x-max-body-bytes`.",
    "415": "The body is not application/json.",
}
QUERY_ERRORS = {
    "400": "Invalid query parameters, or credentials in the URL (`credentials_in_url`).",
}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "nvk_<prefix>_<secret>",
            "description": (
                "An API key in the Authorization header (never in the URL: that is refused). "
                "Critical operations (`x-signature-required`) also need the X-Signature headers: "
                "HMAC-SHA256 with the key's signing secret, see docs/API_CHANGES.md."
            ),
        }


class SecureAutoSchema(AutoSchema):
    """drf-spectacular's ``AutoSchema`` plus the API security layer's documentation."""

    def is_deprecated(self) -> bool:
        return versioning.deprecation_for(self.path, self.method) is not None or super().is_deprecated()

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        if path.startswith("/api/v2/") and not operation["operationId"].startswith("v2_"):
            operation["operationId"] = f"v2_{operation['operationId']}"
        view = self.view
        scope = required_scope(view, self.method)
        if scope:
            operation["x-required-scope"] = scope
        has_body = self.method in {"POST", "PUT", "PATCH"}
        if has_body or self.method == "DELETE":
            operation["x-max-body-bytes"] = self._body_limit()
        if needs_signature(view, self.method):
            operation["x-signature-required"] = True
            operation.setdefault("parameters", []).extend(self._signature_parameters())
        deprecation = versioning.deprecation_for(path, self.method)
        if deprecation is not None:
            sunset = deprecation.sunset_at.date().isoformat() if deprecation.sunset_at else "not set"
            note = (
                f"**Deprecated** since {deprecation.deprecated_at.date().isoformat()}, sunset {sunset}: "
                f"use `{deprecation.successor}` (see {deprecation.notes_url()}). After the sunset: 410."
            )
            operation["description"] = f"{note}\n\n{operation.get('description', '')}".strip()
            operation["responses"].setdefault("410", self._error_response("Gone: past the sunset date.", registry))
        errors = dict(COMMON_ERRORS)
        if has_body:
            errors.update(BODY_ERRORS)
        else:
            errors.update(QUERY_ERRORS)
        if self.method == "DELETE":
            errors.update({key: BODY_ERRORS[key] for key in ("411", "413", "415")})
        for status, description in errors.items():
            if status not in operation["responses"]:
                operation["responses"][status] = self._error_response(description, registry)
        operation["responses"]["429"].setdefault(
            "headers", {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
        )
        return operation

    def _body_limit(self) -> int:
        limit = getattr(type(self.view), "max_body_bytes", None)
        return int(limit) if limit is not None else conf.get("API_MAX_BODY_BYTES")

    def _error_response(self, description: str, registry) -> dict:
        component = self.resolve_serializer(ErrorEnvelopeSerializer, "response")
        return {"description": description, "content": {"application/json": {"schema": component.ref}}}

    @staticmethod
    def _signature_parameters() -> list[dict]:
        window = conf.get("API_SIGNATURE_MAX_SKEW_SECONDS")
        return [
            {
                "in": "header",
                "name": signing.HEADER_TIMESTAMP,
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
                "description": f"Unix time in seconds; refused more than {window} s from the server clock.",
            },
            {
                "in": "header",
                "name": signing.HEADER_NONCE,
                "required": True,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
                "description": "Random, never reused with this key (a replay inside the window is refused).",
            },
            {
                "in": "header",
                "name": signing.HEADER_SIGNATURE,
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "description": "Hex HMAC-SHA256 of the canonical request with the key's signing secret.",
            },
        ]
