"""System checks of the ground floor's settings: the site address that every email's links use."""

from __future__ import annotations

from django.core import checks

from core.emails import DEVELOPMENT_SITE_URL, SITE_URL_PATTERN, site_url_setting


@checks.register(checks.Tags.security)
def site_url_check(app_configs, **kwargs):
    """Refuse a malformed ``ACCOUNTS_SITE_URL`` (core.E001): links in emails would be broken."""
    value = site_url_setting()
    if value and not SITE_URL_PATTERN.fullmatch(value):
        return [
            checks.Error(
                f"ACCOUNTS_SITE_URL must be scheme://host[:port] with nothing after it; it is {value!r}.",
                hint="For example https://console.example.org (the base of every link in emails).",
                id="core.E001",
            )
        ]
    return []


@checks.register(checks.Tags.security, deploy=True)
def site_url_deploy_check(app_configs, **kwargs):
    """Warn in production (``check --deploy``) when ``ACCOUNTS_SITE_URL`` is not set (core.W001)."""
    if site_url_setting():
        return []
    return [
        checks.Warning(
            "ACCOUNTS_SITE_URL is not set: emails sent by Celery tasks (security alerts, lockout notices) "
            f"link to {DEVELOPMENT_SITE_URL}, which their readers cannot open; emails caused by a request "
            "link to whatever host that request named.",
            hint="Set ACCOUNTS_SITE_URL to the console's public address, e.g. https://console.example.org.",
            id="core.W001",
        )
    ]
