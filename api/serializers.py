"""Serializers the API security layer documents: the error envelope every endpoint answers with."""

from __future__ import annotations

from rest_framework import serializers


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text=(
            "Stable machine-readable code: invalid, not_authenticated, invalid_api_key, signature_required, "
            "signature_invalid, credentials_in_url, permission_denied, insufficient_scope, not_found, "
            "method_not_allowed, not_acceptable, gone, length_required, payload_too_large, "
            "unsupported_media_type, throttled, server_error."
        )
    )
    message = serializers.CharField(help_text="Human-readable summary.")
    request_id = serializers.CharField(allow_null=True, help_text="Echo of the X-Request-ID response header.")
    fields = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="Validation errors only: field name → list of messages (nested for list items).",
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorBodySerializer()
