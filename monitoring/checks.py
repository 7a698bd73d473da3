"""System checks that refuse unsafe or broken monitoring settings (``manage.py check``)."""

from __future__ import annotations

import ipaddress
import urllib.parse

from django.core.checks import Error, Tags, register

from core.posture import CAPABILITY_NAMES
from monitoring import conf
from monitoring.models import NotificationChannel, Severity
from monitoring.posture import CHECK_NAMES

SECRET_MIN_LENGTH = 32
POSITIVE_SETTINGS = (
    "MONITORING_BRUTE_FORCE_THRESHOLD",
    "MONITORING_BRUTE_FORCE_WINDOW_SECONDS",
    "MONITORING_SPRAYING_ACCOUNT_THRESHOLD",
    "MONITORING_SPRAYING_WINDOW_SECONDS",
    "MONITORING_LOCKOUT_THRESHOLD",
    "MONITORING_LOCKOUT_WINDOW_SECONDS",
    "MONITORING_UNUSUAL_HOUR_BASELINE_DAYS",
    "MONITORING_UNUSUAL_HOUR_MIN_LOGINS",
    "MONITORING_NEW_DEVICE_LOOKBACK_DAYS",
    "MONITORING_PROBING_THRESHOLD",
    "MONITORING_PROBING_WINDOW_SECONDS",
    "MONITORING_API_RATE_WINDOW_SECONDS",
    "MONITORING_API_RATE_MIN_REQUESTS",
    "MONITORING_API_RATE_BASELINE_DAYS",
    "MONITORING_API_ERROR_THRESHOLD",
    "MONITORING_API_ERROR_WINDOW_SECONDS",
    "MONITORING_SIGNATURE_FAILURE_THRESHOLD",
    "MONITORING_SIGNATURE_FAILURE_WINDOW_SECONDS",
    "MONITORING_DEPRECATED_ENDPOINT_THRESHOLD",
    "MONITORING_DEPRECATED_ENDPOINT_WINDOW_SECONDS",
    "MONITORING_BULK_READ_WINDOW_SECONDS",
    "MONITORING_BULK_READ_MIN_EVENTS",
    "MONITORING_BULK_READ_BASELINE_DAYS",
    "MONITORING_AUDIT_SILENCE_SECONDS",
    "MONITORING_AUDIT_SILENCE_MIN_REQUESTS",
    "MONITORING_SWEEP_LOOKBACK_SECONDS",
    "MONITORING_ALERT_DEDUPE_WINDOW_SECONDS",
    "MONITORING_ALERT_EVIDENCE_LIMIT",
    "MONITORING_NOTIFICATION_RETRY_BASE_SECONDS",
    "MONITORING_NOTIFICATION_RETRY_MAX_SECONDS",
    "MONITORING_NOTIFICATION_RATE_LIMIT",
    "MONITORING_NOTIFICATION_RATE_WINDOW_SECONDS",
    "MONITORING_POSTURE_DEDUPE_WINDOW_SECONDS",
    "MONITORING_DEPLOYMENTS_SHOWN",
    "MONITORING_SECURITY_GATE_STALE_DAYS",
    "MONITORING_DETECTION_BATCH_SECONDS",
)


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


@register(Tags.security)
def check_monitoring_settings(app_configs=None, **kwargs):
    errors = []
    for name in POSITIVE_SETTINGS:
        value = conf.get(name)
        if not isinstance(value, int | float) or value <= 0:
            errors.append(Error(f"{name} must be a positive number.", id="monitoring.E001"))

    url = conf.get("MONITORING_WEBHOOK_URL")
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors.append(Error("MONITORING_WEBHOOK_URL must be an http(s) URL.", id="monitoring.E002"))
        elif parts.scheme == "http" and not _loopback(parts.hostname):
            errors.append(
                Error(
                    "MONITORING_WEBHOOK_URL must use https (plain http is allowed only to a loopback receiver).",
                    id="monitoring.E003",
                )
            )
        if len(conf.get("MONITORING_WEBHOOK_SECRET")) < SECRET_MIN_LENGTH:
            errors.append(
                Error(
                    f"MONITORING_WEBHOOK_SECRET must have at least {SECRET_MIN_LENGTH} characters "
                    "when a webhook is set.",
                    id="monitoring.E004",
                )
            )

    token = conf.get("MONITORING_METRICS_TOKEN")
    if token and len(token) < SECRET_MIN_LENGTH:
        errors.append(
            Error(f"MONITORING_METRICS_TOKEN must have at least {SECRET_MIN_LENGTH} characters.", id="monitoring.E005")
        )
    for network in conf.get("MONITORING_METRICS_ALLOWED_NETWORKS"):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            errors.append(
                Error(f"MONITORING_METRICS_ALLOWED_NETWORKS: {network!r} is not a network.", id="monitoring.E006")
            )

    routes = conf.get("MONITORING_NOTIFICATION_ROUTES")
    severities = {severity.label for severity in Severity}
    channels = set(NotificationChannel.values)
    if (
        not isinstance(routes, dict)
        or not set(routes) <= severities
        or any(not isinstance(value, list) or not set(value) <= channels for value in routes.values())
    ):
        errors.append(
            Error(
                "MONITORING_NOTIFICATION_ROUTES must map severities (low, medium, high, critical) to lists of "
                "channels (email, webhook).",
                id="monitoring.E007",
            )
        )

    from monitoring.health import CHECKS

    unknown = set(conf.get("MONITORING_READINESS_CHECKS")) - set(CHECKS)
    if unknown:
        errors.append(
            Error(
                f"MONITORING_READINESS_CHECKS names unknown checks: {', '.join(sorted(unknown))}.",
                id="monitoring.E008",
            )
        )
    from monitoring.services.deployments import NAME

    if not isinstance(conf.get("MONITORING_DEPLOYMENT_ENVIRONMENT"), str) or not NAME.fullmatch(
        conf.get("MONITORING_DEPLOYMENT_ENVIRONMENT")
    ):
        errors.append(
            Error(
                "MONITORING_DEPLOYMENT_ENVIRONMENT must be 1 to 32 lower-case letters, digits, dots, dashes or "
                "underscores, starting with a letter or digit.",
                id="monitoring.E012",
            )
        )
    errors.extend(_posture_errors())
    errors.extend(_batching_errors())
    return errors


def _batching_errors() -> list[Error]:
    from audit.actions import Action

    errors = []
    actions = conf.get("MONITORING_BATCHED_ACTIONS")
    known = {action.value for action in Action}
    if not isinstance(actions, list | tuple) or not set(actions) <= known:
        unknown = sorted(set(actions) - known) if isinstance(actions, list | tuple) else [type(actions).__name__]
        errors.append(
            Error(
                f"MONITORING_BATCHED_ACTIONS must list audit actions by name: {', '.join(map(str, unknown))}.",
                id="monitoring.E013",
            )
        )
    settle = conf.get("MONITORING_VOLUME_BUCKET_SETTLE_SECONDS")
    if not isinstance(settle, int | float) or isinstance(settle, bool) or settle < 0:
        errors.append(Error("MONITORING_VOLUME_BUCKET_SETTLE_SECONDS must be 0 or more.", id="monitoring.E014"))
    if not isinstance(conf.get("MONITORING_DETECTION_BATCHING"), bool):
        errors.append(Error("MONITORING_DETECTION_BATCHING must be True or False.", id="monitoring.E015"))
    return errors


def _posture_errors() -> list[Error]:
    errors = []
    baseline = conf.get("MONITORING_POSTURE_CAPABILITY_BASELINE")
    if not isinstance(baseline, list | tuple):
        problem = f"not a list ({type(baseline).__name__})"
    else:
        problem = ", ".join(repr(name) for name in baseline if name not in CAPABILITY_NAMES)
    if problem:
        errors.append(
            Error(
                "MONITORING_POSTURE_CAPABILITY_BASELINE must list Linux capabilities by name, such as "
                f"cap_net_bind_service: {problem}.",
                id="monitoring.E009",
            )
        )
    checks = conf.get("MONITORING_POSTURE_CHECKS")
    if not isinstance(checks, list | tuple) or not set(checks) <= set(CHECK_NAMES):
        errors.append(
            Error(f"MONITORING_POSTURE_CHECKS must list some of: {', '.join(CHECK_NAMES)}.", id="monitoring.E010")
        )
    if conf.get("MONITORING_POSTURE_SEVERITY") not in {severity.label for severity in Severity}:
        errors.append(Error("MONITORING_POSTURE_SEVERITY must be low, medium, high or critical.", id="monitoring.E011"))
    return errors
