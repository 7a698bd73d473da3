"""System checks that refuse an unsafe accounts configuration."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from accounts import conf

NIST_MAX_CONSECUTIVE_FAILURES = 100  # NIST SP 800-63B §5.2.2


@checks.register(checks.Tags.security)
def accounts_settings_check(app_configs, **kwargs):
    errors = []

    def error(message: str, code: str, hint: str | None = None):
        errors.append(checks.Error(message, hint=hint, id=f"accounts.{code}"))

    for name in (
        "ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT",
        "ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT",
        "ACCOUNTS_MFA_FAILURE_LIMIT",
    ):
        value = conf.get(name)
        if not isinstance(value, int) or not 1 <= value <= NIST_MAX_CONSECUTIVE_FAILURES:
            error(f"{name} must be between 1 and 100 (NIST SP 800-63B §5.2.2); it is {value!r}.", "E001")
    cooloffs = conf.get("ACCOUNTS_LOCKOUT_COOLOFFS")
    if not cooloffs or any(not isinstance(value, int) or value <= 0 for value in cooloffs):
        error("ACCOUNTS_LOCKOUT_COOLOFFS must be a non-empty list of positive seconds.", "E002")
    elif list(cooloffs) != sorted(cooloffs):
        error("ACCOUNTS_LOCKOUT_COOLOFFS must grow (each cool-off at least as long as the one before).", "E002")
    elif conf.get("ACCOUNTS_LOCKOUT_RESET_AFTER") <= max(cooloffs):
        error(
            "ACCOUNTS_LOCKOUT_RESET_AFTER must be longer than the longest cool-off, "
            "or a lock would reset its own count.",
            "E003",
        )
    if (
        conf.get("ACCOUNTS_MFA_THROTTLE_MAX") < conf.get("ACCOUNTS_MFA_THROTTLE_BASE")
        or conf.get("ACCOUNTS_MFA_THROTTLE_BASE") < 0
    ):
        error("ACCOUNTS_MFA_THROTTLE_MAX must be at least ACCOUNTS_MFA_THROTTLE_BASE (both seconds, >= 0).", "E004")
    idle, absolute = conf.get("ACCOUNTS_SESSION_IDLE_TIMEOUT"), conf.get("ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT")
    if not 0 < idle <= absolute:
        error("ACCOUNTS_SESSION_IDLE_TIMEOUT must be positive and at most ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT.", "E005")
    if getattr(settings, "SESSION_COOKIE_AGE", 0) > absolute + 3600:
        error("SESSION_COOKIE_AGE must not exceed ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT by more than an hour.", "E006")
    if conf.get("ACCOUNTS_SESSION_LAST_SEEN_INTERVAL") >= idle:
        error("ACCOUNTS_SESSION_LAST_SEEN_INTERVAL must be shorter than the idle timeout.", "E007")
    if not 0 < conf.get("ACCOUNTS_STEP_UP_MAX_AGE") <= 3600:
        error("ACCOUNTS_STEP_UP_MAX_AGE must be between 1 and 3600 seconds.", "E008")
    if not 0 < getattr(settings, "PASSWORD_RESET_TIMEOUT", 0) <= 3600:
        error("PASSWORD_RESET_TIMEOUT must be at most 3600 seconds (a reset link expires within an hour).", "E009")
    middleware = list(settings.MIDDLEWARE)
    required = "accounts.middleware.SessionSecurityMiddleware"
    if required not in middleware:
        error(f"{required} must be in MIDDLEWARE: without it sessions never expire nor end when revoked.", "E010")
    else:
        for earlier in (
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django_otp.middleware.OTPMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ):
            if earlier not in middleware or middleware.index(earlier) > middleware.index(required):
                error(f"{earlier} must come before {required} in MIDDLEWARE.", "E011")
    if "django_otp.plugins.otp_totp" in settings.INSTALLED_APPS:
        error(
            "django_otp.plugins.otp_totp stores TOTP secrets in plain text; accounts.TOTPDevice replaces it.",
            "E012",
            hint="Remove it from INSTALLED_APPS.",
        )
    from accounts.services.rate_limits import PURPOSES, parse_rate

    for name in [setting for pair in PURPOSES.values() for setting in pair]:
        try:
            parse_rate(conf.get(name))
        except (TypeError, ValueError):
            error(
                f"{name} must be a rate like 3/h (count/period: s, m, h or d) or empty; it is {conf.get(name)!r}.",
                "E013",
            )
    if conf.get("ACCOUNTS_RATE_LIMIT_CACHE_ALIAS") not in settings.CACHES:
        error("ACCOUNTS_RATE_LIMIT_CACHE_ALIAS must name a cache in CACHES.", "E014")
    return errors
