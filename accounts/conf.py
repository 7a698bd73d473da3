"""The settings of the accounts app and their defaults, read when used (so tests can override them).

A settings module (or, for the ones ``config/settings/base.py`` reads, the environment variable
of the same name, see ``.env.example``) overrides a default; ``accounts/checks.py`` refuses unsafe
values. Django's ``PASSWORD_RESET_TIMEOUT`` and ``SESSION_COOKIE_AGE`` are set in base.py.
"""

from __future__ import annotations

from core.settings import AppSettings

DEFAULTS = {
    # --- Lockout (NIST SP 800-63B §5.2.2; accounts/services/lockout.py explains the model) ---
    # Failed passwords per (account, client IP) before that IP is locked out of the account (failures).
    "ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT": 5,
    # Failed passwords per account, from any IP, before the account is locked everywhere (failures; max 100).
    "ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT": 20,
    # Growing cool-offs of successive locks; the last repeats (seconds).
    "ACCOUNTS_LOCKOUT_COOLOFFS": [60, 300, 1800, 7200, 43200],
    # A counter untouched this long starts afresh, lock history included (seconds).
    "ACCOUNTS_LOCKOUT_RESET_AFTER": 24 * 60 * 60,
    # --- MFA (RFC 6238, RFC 4226 §7.3) ---
    # Require MFA of every user, not only staff (switch).
    "ACCOUNTS_MFA_REQUIRED_FOR_ALL": False,
    # Grace period of a user who must enroll MFA, from their first login (days).
    "ACCOUNTS_MFA_GRACE_DAYS": 7,
    # Time allowed between the password step and the code step of a login (seconds).
    "ACCOUNTS_MFA_LOGIN_TIMEOUT": 5 * 60,
    # An authenticator not confirmed within this is discarded (seconds).
    "ACCOUNTS_MFA_UNCONFIRMED_DEVICE_TTL": 15 * 60,
    # Wait after the first wrong code, doubling per failure (seconds).
    "ACCOUNTS_MFA_THROTTLE_BASE": 1,
    # The bound of that growing wait (seconds).
    "ACCOUNTS_MFA_THROTTLE_MAX": 5 * 60,
    # Consecutive wrong codes that lock the code step with the lockout cool-offs (failures).
    "ACCOUNTS_MFA_FAILURE_LIMIT": 10,
    # Backup codes per set (codes, 60 bits each).
    "ACCOUNTS_BACKUP_CODE_COUNT": 10,
    # Issuer shown by authenticator apps next to the account (text).
    "OTP_TOTP_ISSUER": "Ninaivalaigal",
    # --- Sessions and step-up (OWASP ASVS 4.0.3 V3.3, V3.7.1) ---
    # A session unused this long ends (seconds).
    "ACCOUNTS_SESSION_IDLE_TIMEOUT": 30 * 60,
    # A session ends this long after login whatever happens (seconds).
    "ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT": 12 * 60 * 60,
    # At most one last-seen write per session per interval: idle time is exact to within it (seconds).
    "ACCOUNTS_SESSION_LAST_SEEN_INTERVAL": 60,
    # Sensitive changes need a (re-)authentication at most this old (seconds).
    "ACCOUNTS_STEP_UP_MAX_AGE": 10 * 60,
    # --- Lifecycle and notifications ---
    # Self-service sign-up with email verification (switch).
    "ACCOUNTS_SIGNUP_ENABLED": True,
    # Email verification links expire after this (seconds).
    "ACCOUNTS_EMAIL_VERIFICATION_MAX_AGE": 24 * 60 * 60,
    # At most one new verification email per account per interval (seconds).
    "ACCOUNTS_EMAIL_VERIFICATION_RESEND_INTERVAL": 5 * 60,
    # Email-change confirmation links expire after this (seconds).
    "ACCOUNTS_EMAIL_CHANGE_MAX_AGE": 24 * 60 * 60,
    # First retry of a security email that could not be sent, doubling per failure (seconds).
    "ACCOUNTS_EMAIL_RETRY_BASE_SECONDS": 30,
    # The bound of that growing wait (seconds).
    "ACCOUNTS_EMAIL_RETRY_MAX_SECONDS": 60 * 60,
    # Sent security emails are kept this long in the outbox, then deleted (days).
    "ACCOUNTS_EMAIL_KEEP_SENT_DAYS": 7,
    # Every password-reset request takes this long at least: timing shows no registered address (seconds).
    "ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR": 0.4,
    # Sign-ups per client IP, and per address, before more are ignored (count/period: s, m, h, d; empty: no limit).
    "ACCOUNTS_SIGNUP_RATE_PER_IP": "20/h",
    "ACCOUNTS_SIGNUP_RATE_PER_ADDRESS": "3/h",
    # Password-reset requests per client IP, and per address, before more are ignored (count/period; empty: no limit).
    "ACCOUNTS_PASSWORD_RESET_RATE_PER_IP": "20/h",
    "ACCOUNTS_PASSWORD_RESET_RATE_PER_ADDRESS": "3/h",
    # The shared cache those counters live in (an alias in CACHES; "api" is Redis when API_CACHE_URL names one).
    "ACCOUNTS_RATE_LIMIT_CACHE_ALIAS": "api",
    # Email the user when they sign in from a device and IP they never used before (switch).
    "ACCOUNTS_NOTIFY_NEW_LOGIN": True,
    # Audit events shown on /accounts/security/ (events).
    "ACCOUNTS_SECURITY_EVENTS_SHOWN": 20,
    # Events in each of the two lists (as actor, as subject) of a user's page in the console (events).
    "ACCOUNTS_CONSOLE_USER_EVENTS_SHOWN": 25,
    # Where a login goes when it has no safe ``next`` (URL name).
    "ACCOUNTS_LOGIN_REDIRECT_URL_NAME": "accounts:security",
}
_settings = AppSettings(DEFAULTS)
get = _settings.get
seconds = _settings.seconds
