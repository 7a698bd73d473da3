"""Production: every secret from the environment, a mounted file or AWS Secrets Manager, no defaults, HTTPS only.

Each deployment secret is read once, here, by ``core.settings.secret_from_environment``: the
variable ``NAME``, the file ``NAME_FILE`` names, or with ``SECRETS_PROVIDER=aws`` the field
``NAME`` of the secret ``SECRETS_AWS_SECRET_ID`` (docs/operations.md, "Secrets"). A missing
secret stops the start with a message naming it and where it was looked for.
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
# base.py built DATABASES from the same secret; here it is required (postgres://user:password@host:5432/name).
DATABASE_URL = secret_from_environment("DATABASE_URL", required=True)
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

# EMAIL_URL (the SMTP password inside) is a deployment secret too; base.py configured email from it.

# As in base: every handler passes records through the audit sanitiser: no secret, token, OTP, key or
# memory content reaches a log line, and control characters cannot forge one (ASVS V7.1.1, V7.3.1).


# The other deployment secrets, each left to its app's default when nothing gives it: the HMAC key of
# stored API-key hashes (without it, derived from SECRET_KEY, so rotating SECRET_KEY would invalidate
# every key: api/keys.py), the monitoring webhook's HMAC secret and the /metrics bearer token.
_optional_secrets = {
    "API_KEY_HASH_KEY": secret_from_environment("API_KEY_HASH_KEY"),
    "MONITORING_WEBHOOK_SECRET": secret_from_environment("MONITORING_WEBHOOK_SECRET"),
    "MONITORING_METRICS_TOKEN": secret_from_environment("MONITORING_METRICS_TOKEN"),
}
vars().update({name: value for name, value in _optional_secrets.items() if value})
