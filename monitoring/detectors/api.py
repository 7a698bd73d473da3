"""Detectors over the API security layer's events: error bursts, signature failures, deprecated calls.

They key on the API actions of ``audit/actions.py`` and work as soon as the API app records
them: a refused key (401) is ``api.key_refused``, a rate limit (429) ``api.rate_limited``, a
denial while authenticated by a key (403) ``authz.permission_denied`` with ``api_key_id`` set.
The request-rate detector is in ``monitoring.detectors.rates``.
"""

from __future__ import annotations

from django.db.models import Q

from audit.actions import Action
from audit.models import AuditEvent
from monitoring.detectors.base import WindowCountDetector
from monitoring.models import Severity

API_PRINCIPALS = ("api_key_id", "actor_id", "client_ip")


class ApiErrorBurstDetector(WindowCountDetector):
    """A burst of 401/403/429 answers to one API key, user or IP."""

    name = "api_error_burst"
    title = "Burst of API 401/403/429 errors"
    severity = Severity.MEDIUM
    actions = frozenset({Action.API_KEY_REFUSED.value, Action.RATE_LIMITED.value, Action.PERMISSION_DENIED.value})
    principals = API_PRINCIPALS
    threshold_setting = "MONITORING_API_ERROR_THRESHOLD"
    window_setting = "MONITORING_API_ERROR_WINDOW_SECONDS"
    summary_template = "{count} API requests refused (401/403/429) for {subject} within {window} s"

    def extra_condition(self) -> Q:
        # A permission denial is an API error only when an API key authenticated the request.
        return ~Q(action=Action.PERMISSION_DENIED.value) | Q(api_key_id__isnull=False)

    def matches(self, event: AuditEvent) -> bool:
        return event.action != Action.PERMISSION_DENIED.value or bool(event.api_key_id)


class SignatureFailureDetector(WindowCountDetector):
    """Request signatures that fail to verify (OWASP ASVS V13.2.6): a forged or replayed call."""

    name = "signature_failures"
    title = "API request signature failures"
    severity = Severity.HIGH
    actions = frozenset({Action.REQUEST_SIGNATURE_FAILED.value})
    principals = API_PRINCIPALS
    threshold_setting = "MONITORING_SIGNATURE_FAILURE_THRESHOLD"
    window_setting = "MONITORING_SIGNATURE_FAILURE_WINDOW_SECONDS"
    summary_template = "{count} request signature failures for {subject} within {window} s"


class DeprecatedEndpointDetector(WindowCountDetector):
    """Calls to deprecated endpoints, one low alert per caller per window, to chase migrations."""

    name = "deprecated_endpoint"
    title = "Deprecated API endpoint called"
    severity = Severity.LOW
    actions = frozenset({Action.DEPRECATED_ENDPOINT_CALLED.value})
    principals = API_PRINCIPALS
    threshold_setting = "MONITORING_DEPRECATED_ENDPOINT_THRESHOLD"
    window_setting = "MONITORING_DEPRECATED_ENDPOINT_WINDOW_SECONDS"
    summary_template = "{count} call(s) to deprecated endpoints by {subject} within {window} s"
