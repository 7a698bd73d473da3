"""Production: every secret from the environment (or a mounted file), no defaults, HTTPS only.

A missing secret stops the start with a message naming the variable.
"""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import env
from core.settings import secret_from_environment

DEBUG = False
SECRET_KEY = secret_from_environment("SECRET_KEY", required=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Set the ALLOWED_HOSTS environment variable (comma-separated host names).")
if not env.str("DATABASE_URL", default=""):
    raise ImproperlyConfigured("Set the DATABASE_URL environment variable (postgres://user:password@host:5432/name).")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Encryption keys have no default here: encryption/checks.py refuses a missing, malformed,
# duplicated or development key of every purpose, the audit chain's HMAC keys (audit_chain) and
# the audit archives' keys (audit_archive) included. The public development keys are never accepted.
ENCRYPTION_DEVELOPMENT_KEYS_ALLOWED = False
# The legacy audit chain key: optional, verify-only (docs/decisions/audit-chain-keys.md).
AUDIT_CHAIN_KEY = secret_from_environment("AUDIT_CHAIN_KEY")

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# The probes stay on plain HTTP: an orchestrator or the image's HEALTHCHECK asks the process
# directly, not through the TLS proxy, and would only ever see the redirect. They need no
# authentication and show no secrets (monitoring/views.py).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("SECURE_PROXY_SSL", default=False) else None
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"

EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url_config(EMAIL_URL))

# As in base: every handler passes records through the audit sanitiser: no secret, token, OTP, key or
# memory content reaches a log line, and control characters cannot forge one (ASVS V7.1.1, V7.3.1).


# API keys: the HMAC key of their stored hashes may come from a mounted file (API_KEY_HASH_KEY_FILE) as well
# as from API_KEY_HASH_KEY (base.py); without either it is derived from SECRET_KEY (api/keys.py), so
# rotating SECRET_KEY would invalidate every key.
if env.str("API_KEY_HASH_KEY_FILE", default=""):
    API_KEY_HASH_KEY = secret_from_environment("API_KEY_HASH_KEY", required=True)
