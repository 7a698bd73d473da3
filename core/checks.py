"""System checks that no single app owns: the deployment policy, and the site address of emails.

Production's policy holds everywhere; a settings module may relax a named item of it through
``SECURITY_RELAXATIONS`` (only ``config.settings.staging`` does, ``core/conf.py`` lists the
names). An unknown name is refused, so a typo cannot pass for a relaxation.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from core import conf
from core.emails import DEVELOPMENT_SITE_URL, SITE_URL_PATTERN, site_url_setting

# One year: the HSTS max-age that browsers' preload lists require (hstspreload.org; RFC 6797 §6.1.1).
HSTS_MIN_SECONDS = 31536000


@checks.register(checks.Tags.security)
def check_deployment_policy(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Refuse an unknown relaxation, and an HSTS max-age below a year unless ``short-hsts`` is relaxed."""
    relaxations = conf.get("SECURITY_RELAXATIONS")
    if not isinstance(relaxations, list | tuple | set | frozenset):
        unknown = [repr(relaxations)]
    else:
        unknown = sorted(str(name) for name in set(relaxations) - conf.RELAXATIONS)
    if unknown:
        return [
            checks.Error(
                f"SECURITY_RELAXATIONS names unknown items: {', '.join(unknown)}.",
                hint=f"A tuple of: {', '.join(sorted(conf.RELAXATIONS))}.",
                id="core.E001",
            )
        ]
    errors: list[checks.CheckMessage] = []
    # HSTS off (0) is Django's own security.W004 under --deploy; outside a deployment it is off.
    hsts_seconds = getattr(settings, "SECURE_HSTS_SECONDS", 0) or 0
    if 0 < hsts_seconds < HSTS_MIN_SECONDS and not conf.relaxed("short-hsts"):
        errors.append(
            checks.Error(
                f"SECURE_HSTS_SECONDS is {hsts_seconds}: production needs at least {HSTS_MIN_SECONDS} (one year).",
                hint="A shorter max-age lets a downgrade attack through once it lapses; only staging relaxes it.",
                id="core.E002",
            )
        )
    return errors


@checks.register(checks.Tags.security)
def site_url_check(app_configs, **kwargs):
    """Refuse a malformed ``ACCOUNTS_SITE_URL`` (core.E003): links in emails would be broken."""
    value = site_url_setting()
    if value and not SITE_URL_PATTERN.fullmatch(value):
        return [
            checks.Error(
                f"ACCOUNTS_SITE_URL must be scheme://host[:port] with nothing after it; it is {value!r}.",
                hint="For example https://console.example.org (the base of every link in emails).",
                id="core.E003",
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
