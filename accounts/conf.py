"""The settings of the accounts app, read when used (so tests can override them), with defaults.

Every setting is documented in ``config/settings/base.py`` and ``.env.example``; the defaults
here are the same and only apply when a settings module leaves one out.
"""

from __future__ import annotations

import datetime

from django.conf import settings

DEFAULTS = {
    # Sessions (OWASP ASVS 4.0.3 V3.3.1/V3.3.2).
    "ACCOUNTS_SESSION_IDLE_TIMEOUT": 30 * 60,  # seconds
    "ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT": 12 * 60 * 60,  # seconds
    "ACCOUNTS_SESSION_LAST_SEEN_INTERVAL": 60,  # seconds between two last-seen writes of one session
    # Step-up re-authentication (ASVS V3.7.1).
    "ACCOUNTS_STEP_UP_MAX_AGE": 10 * 60,  # seconds
    # MFA policy.
    "ACCOUNTS_MFA_REQUIRED_FOR_ALL": False,
    "ACCOUNTS_MFA_GRACE_DAYS": 7,  # days
    "ACCOUNTS_MFA_LOGIN_TIMEOUT": 5 * 60,  # seconds between the password step and the code step
    "ACCOUNTS_MFA_UNCONFIRMED_DEVICE_TTL": 15 * 60,  # seconds
    "ACCOUNTS_MFA_THROTTLE_BASE": 1,  # seconds after the first failed code; doubles per failure
    "ACCOUNTS_MFA_THROTTLE_MAX": 5 * 60,  # seconds: the bound of the growing delay
    "ACCOUNTS_MFA_FAILURE_LIMIT": 10,  # consecutive failed codes that lock the account
    "ACCOUNTS_BACKUP_CODE_COUNT": 10,
    # Lockout (NIST SP 800-63B §5.2.2).
    "ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT": 5,  # failures per (account, client IP)
    "ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT": 20,  # failures per account, from any IP
    "ACCOUNTS_LOCKOUT_COOLOFFS": [60, 300, 1800, 7200, 43200],  # seconds; the last one repeats
    "ACCOUNTS_LOCKOUT_RESET_AFTER": 24 * 60 * 60,  # seconds without a failure that clear a counter
    # Account lifecycle.
    "ACCOUNTS_SIGNUP_ENABLED": True,
    "ACCOUNTS_EMAIL_VERIFICATION_MAX_AGE": 24 * 60 * 60,  # seconds
    "ACCOUNTS_EMAIL_VERIFICATION_RESEND_INTERVAL": 5 * 60,  # seconds
    "ACCOUNTS_EMAIL_CHANGE_MAX_AGE": 24 * 60 * 60,  # seconds
    "ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR": 0.4,  # seconds: every reset request takes at least this long
    "ACCOUNTS_NOTIFY_NEW_LOGIN": True,
    "ACCOUNTS_SECURITY_EVENTS_SHOWN": 20,  # events on the security page
    "ACCOUNTS_SITE_URL": "",  # scheme://host of links in emails; empty: the host of the request
    "OTP_TOTP_ISSUER": "Ninaivalaigal",
}


def get(name: str):
    """Return the setting ``name`` or its default."""
    return getattr(settings, name, DEFAULTS[name])


def seconds(name: str) -> datetime.timedelta:
    """Return a setting given in seconds as a ``timedelta``."""
    return datetime.timedelta(seconds=get(name))
