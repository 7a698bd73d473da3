"""Settings shared by every environment.

One ``environ.Env`` reader. Environment-specific modules (``local``, ``test``, ``production``)
import everything from here and override what differs. Settings of our own apps carry the app's
prefix and a one-line comment with the default and the unit.
"""

from __future__ import annotations

from pathlib import Path

import environ
from csp import constants as csp_constants

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Everything the embedded default writes (database, broker, mail, secrets, audit files) lives here.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

# ---------------------------------------------------------------------------------------------
# Applications
# ---------------------------------------------------------------------------------------------
DJANGO_APPS = [
    # django.contrib.admin with accounts' MFA-only site as the default admin.site.
    "accounts.admin_apps.AccountsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    # django-otp's framework only: accounts.TOTPDevice replaces its otp_totp plugin (plain-text
    # secrets), and accounts' own lockout counters replace django-axes (see accounts/services/lockout.py).
    "django_otp",
    "auditlog",
]
# Order follows the import direction in ARCHITECTURE.md: lower layers first.
LOCAL_APPS = [
    "core",
    "encryption",
    "audit",
    "accounts",
    "api",
    "memories",
    "monitoring",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy with per-request nonces (django-csp 4; CONTENT_SECURITY_POLICY below).
    "core.middleware.ContentSecurityPolicyMiddleware",
    # Permissions-Policy, Cache-Control: no-store on API and authenticated responses (core/middleware.py).
    "core.middleware.SecurityHeadersMiddleware",
    "core.middleware.RequestContextMiddleware",
    # Static files from STATIC_ROOT, with the request id and the headers above but not counted as
    # traffic. It only serves the .gz/.br files collectstatic made: no dynamic response is
    # compressed (BREACH, api.E003).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Counts served requests per status class for /metrics and the audit-silence detector.
    "monitoring.middleware.RequestCountMiddleware",
    # /api/ only: credentials in URLs, sunset endpoints, body size and content type, deprecation headers.
    "api.middleware.ApiRequestMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # django-auditlog's actor and client IP for field-level diffs (client IP from core's one function).
    "audit.middleware.AuditlogContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Tracked sessions: revocation, idle/absolute timeouts, key rotation on privilege change, MFA policy.
    "accounts.middleware.SessionSecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------------------------
# Database: SQLite under var/ by default; DATABASE_URL=postgres://... for the scaled-out path.
# ---------------------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Django's backends plus the audit trail's commit: the events a transaction records are written
# with its COMMIT, in the same round trip on PostgreSQL (audit/backends, audit/pending.py).
AUDIT_DATABASE_ENGINES = {
    "django.db.backends.postgresql": "audit.backends.postgresql",
    "django.db.backends.sqlite3": "audit.backends.sqlite3",
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = AUDIT_DATABASE_ENGINES["django.db.backends.postgresql"]
    # Server-side limits, applied to every connection (ms; 0 disables).
    _pg_options = " ".join(
        [
            f"-c statement_timeout={env.int('DATABASE_STATEMENT_TIMEOUT_MS', default=30000)}",
            f"-c lock_timeout={env.int('DATABASE_LOCK_TIMEOUT_MS', default=10000)}",
            "-c idle_in_transaction_session_timeout="
            f"{env.int('DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS', default=60000)}",
        ]
    )
    DATABASES["default"]["OPTIONS"] = {
        "sslmode": env.str("DATABASE_SSLMODE", default="prefer"),
        "options": _pg_options,
        # Django's psycopg 3 connection pool: bounded, with a wait timeout (seconds).
        "pool": {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        },
    }
    if env.str("DATABASE_SSLROOTCERT", default=""):
        DATABASES["default"]["OPTIONS"]["sslrootcert"] = env.str("DATABASE_SSLROOTCERT")
    if not env.bool("DATABASE_POOL", default=True):
        DATABASES["default"]["OPTIONS"].pop("pool")
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = AUDIT_DATABASE_ENGINES["django.db.backends.sqlite3"]
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web process, the worker and beat read while one writes.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# Normalised usernames; with a request, behind the lockout counters and audited (accounts/backends.py).
AUTHENTICATION_BACKENDS = [
    "accounts.backends.NormalisedUsernameBackend",
]
# Argon2id first (OWASP Password Storage Cheat Sheet); the others only verify old hashes.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:security"
LOGOUT_REDIRECT_URL = "accounts:login"
# Password reset links expire after this (default 3600 seconds; accounts/checks.py refuses more).
PASSWORD_RESET_TIMEOUT = env.int("ACCOUNTS_PASSWORD_RESET_TIMEOUT", default=3600)

# --- Accounts: lockout (NIST SP 800-63B §5.2.2; accounts/services/lockout.py explains the model) ---
# Failed passwords per (account, client IP) before that IP is locked out of the account (default 5 failures).
ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT = env.int("ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT", default=5)
# Failed passwords per account, from any IP, before the account is locked everywhere (default 20 failures; max 100).
ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT = env.int("ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT", default=20)
# Growing cool-offs of successive locks; the last repeats (default 60,300,1800,7200,43200 seconds).
ACCOUNTS_LOCKOUT_COOLOFFS = [
    int(value) for value in env.list("ACCOUNTS_LOCKOUT_COOLOFFS", default=["60", "300", "1800", "7200", "43200"])
]
# A counter untouched this long starts afresh, lock history included (default 86400 seconds).
ACCOUNTS_LOCKOUT_RESET_AFTER = env.int("ACCOUNTS_LOCKOUT_RESET_AFTER", default=86400)

# --- Accounts: MFA (RFC 6238, RFC 4226 §7.3) ---------------------------------------------------
# Require MFA of every user, not only staff (default False); users get a grace period at first login (default 7 days).
ACCOUNTS_MFA_REQUIRED_FOR_ALL = env.bool("ACCOUNTS_MFA_REQUIRED_FOR_ALL", default=False)
ACCOUNTS_MFA_GRACE_DAYS = env.int("ACCOUNTS_MFA_GRACE_DAYS", default=7)
# Time allowed between the password step and the code step of a login (default 300 seconds).
ACCOUNTS_MFA_LOGIN_TIMEOUT = env.int("ACCOUNTS_MFA_LOGIN_TIMEOUT", default=300)
# An authenticator not confirmed within this is discarded (default 900 seconds).
ACCOUNTS_MFA_UNCONFIRMED_DEVICE_TTL = env.int("ACCOUNTS_MFA_UNCONFIRMED_DEVICE_TTL", default=900)
# Wait after the first wrong code, doubling per failure (default 1 second), bounded by the max (default 300 seconds).
ACCOUNTS_MFA_THROTTLE_BASE = env.int("ACCOUNTS_MFA_THROTTLE_BASE", default=1)
ACCOUNTS_MFA_THROTTLE_MAX = env.int("ACCOUNTS_MFA_THROTTLE_MAX", default=300)
# Consecutive wrong codes that lock the account's code step with the lockout cool-offs (default 10 failures).
ACCOUNTS_MFA_FAILURE_LIMIT = env.int("ACCOUNTS_MFA_FAILURE_LIMIT", default=10)
# Backup codes per set (default 10 codes, 60 bits each).
ACCOUNTS_BACKUP_CODE_COUNT = env.int("ACCOUNTS_BACKUP_CODE_COUNT", default=10)
# Issuer shown by authenticator apps next to the account (default "Ninaivalaigal").
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Ninaivalaigal")

# --- Accounts: sessions and step-up (OWASP ASVS 4.0.3 V3.3, V3.7.1) -----------------------------
# A session unused this long ends (default 1800 seconds = 30 minutes).
ACCOUNTS_SESSION_IDLE_TIMEOUT = env.int("ACCOUNTS_SESSION_IDLE_TIMEOUT", default=1800)
# A session ends this long after login whatever happens (default 43200 seconds = 12 hours).
ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT = env.int("ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT", default=43200)
# At most one last-seen write per session per interval: idle time is exact to within it (default 60 seconds).
ACCOUNTS_SESSION_LAST_SEEN_INTERVAL = env.int("ACCOUNTS_SESSION_LAST_SEEN_INTERVAL", default=60)
# Sensitive changes need a (re-)authentication at most this old (default 600 seconds = 10 minutes).
ACCOUNTS_STEP_UP_MAX_AGE = env.int("ACCOUNTS_STEP_UP_MAX_AGE", default=600)
# Django's session outlives the absolute timeout by 30 minutes, so accounts' middleware (not a
# silent expiry) ends it and records why (seconds).
SESSION_COOKIE_AGE = ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT + 1800

# --- Accounts: lifecycle and notifications ------------------------------------------------------
# Self-service sign-up with email verification (default True).
ACCOUNTS_SIGNUP_ENABLED = env.bool("ACCOUNTS_SIGNUP_ENABLED", default=True)
# Email verification and email-change links expire after this (default 86400 seconds each).
ACCOUNTS_EMAIL_VERIFICATION_MAX_AGE = env.int("ACCOUNTS_EMAIL_VERIFICATION_MAX_AGE", default=86400)
ACCOUNTS_EMAIL_CHANGE_MAX_AGE = env.int("ACCOUNTS_EMAIL_CHANGE_MAX_AGE", default=86400)
# At most one new verification email per account per interval (default 300 seconds).
ACCOUNTS_EMAIL_VERIFICATION_RESEND_INTERVAL = env.int("ACCOUNTS_EMAIL_VERIFICATION_RESEND_INTERVAL", default=300)
# Every password-reset request takes at least this long, so its timing does not reveal whether
# the address is registered (default 0.4 seconds).
ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR = env.float("ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR", default=0.4)
# Email the user when they sign in from a device and IP they never used before (default True).
ACCOUNTS_NOTIFY_NEW_LOGIN = env.bool("ACCOUNTS_NOTIFY_NEW_LOGIN", default=True)
# scheme://host used in links of emails (default empty: the host of the request that caused the email).
ACCOUNTS_SITE_URL = env.str("ACCOUNTS_SITE_URL", default="")
# Audit events shown on /accounts/security/ (default 20 events).
ACCOUNTS_SECURITY_EVENTS_SHOWN = env.int("ACCOUNTS_SECURITY_EVENTS_SHOWN", default=20)

# ---------------------------------------------------------------------------------------------
# Sessions, cookies, security headers
# ---------------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# ---------------------------------------------------------------------------------------------
# Internationalisation, static files
# ---------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Served by the app (WhiteNoise), no CDN: collectstatic writes hashed names, a manifest and
# gzip/brotli copies; hashed files are cached for ever.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Same-origin only (WhiteNoise's default adds Access-Control-Allow-Origin: * to every file).
WHITENOISE_ALLOW_ALL_ORIGINS = False

# ---------------------------------------------------------------------------------------------
# Email: file backend under var/mail/ by default; SMTP when EMAIL_URL is set.
# ---------------------------------------------------------------------------------------------
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url_config(EMAIL_URL))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="security@ninaivalaigal.localhost")

# ---------------------------------------------------------------------------------------------
# Celery: kombu's filesystem broker under var/ by default; CELERY_BROKER_URL=redis://... scales out.
# ---------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_DIR = VAR_DIR / "celery" / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR),
        "data_folder_out": str(CELERY_BROKER_DIR),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        # Exchange tables (broadcast/pidbox); without this kombu writes ./control/ in the cwd.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery' / 'results'}")
else:
    CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 3600  # seconds
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# ---------------------------------------------------------------------------------------------
# Django REST framework and the OpenAPI schema
# ---------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # API keys first, so an unauthenticated request is answered 401 with WWW-Authenticate: Bearer.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "api.permissions.ApiKeyScopes",
        "api.permissions.SignedRequest",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "api.throttling.ApiKeyThrottle",
        "api.throttling.UserThrottle",
        "api.throttling.IPThrottle",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # No OPTIONS metadata (it describes forms the views do not have, and crashed on them): 405.
    "DEFAULT_METADATA_CLASS": None,
    "DEFAULT_PARSER_CLASSES": ["api.parsers.LimitedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.DefaultPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "api.schema.SecureAutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ninaivalaigal API",
    "DESCRIPTION": "Memories (notes, commands, AI context) in personal, team and organization contexts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# ---------------------------------------------------------------------------------------------
# API security layer (api/; docs/API_CHANGES.md). Defaults also in api/conf.py.
# ---------------------------------------------------------------------------------------------
# HMAC key of the stored API-key hashes, 32+ characters (default empty: derived from SECRET_KEY,
# so rotating SECRET_KEY invalidates every key; set it in production).
API_KEY_HASH_KEY = env.str("API_KEY_HASH_KEY", default="")
# Lifetime of a new key when none is chosen (default 90 days) and the longest allowed (default 365 days).
API_KEY_DEFAULT_LIFETIME_DAYS = env.int("API_KEY_DEFAULT_LIFETIME_DAYS", default=90)
API_KEY_MAX_LIFETIME_DAYS = env.int("API_KEY_MAX_LIFETIME_DAYS", default=365)
# After a rotation the old key stays valid this long (default 86400 seconds), at most (default 2592000 seconds).
API_KEY_ROTATION_OVERLAP_SECONDS = env.int("API_KEY_ROTATION_OVERLAP_SECONDS", default=86400)
API_KEY_ROTATION_MAX_OVERLAP_SECONDS = env.int("API_KEY_ROTATION_MAX_OVERLAP_SECONDS", default=2592000)
# A key's last-used time and IP are written at most this often (default 60 seconds).
API_KEY_LAST_USED_INTERVAL = env.int("API_KEY_LAST_USED_INTERVAL", default=60)
# Active keys one account may hold (default 25 keys).
API_KEY_MAX_PER_USER = env.int("API_KEY_MAX_PER_USER", default=25)
# Signed requests: accepted clock difference (default 300 seconds either way); nonce store
# "database" (default) or "cache" (only when API_CACHE_URL is Redis).
API_SIGNATURE_MAX_SKEW_SECONDS = env.int("API_SIGNATURE_MAX_SKEW_SECONDS", default=300)
API_SIGNATURE_NONCE_STORE = env.str("API_SIGNATURE_NONCE_STORE", default="database")
# Largest request body on any endpoint (default 65536 bytes); per-endpoint overrides as JSON
# {"namespace:url-name": bytes} (default {}; memory endpoints declare 524288 bytes themselves).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=65536)
API_BODY_LIMITS = env.json("API_BODY_LIMITS", default={})
# JSON bodies: nesting depth (default 32 levels), items per array (default 1000), keys per object (default 1000).
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=32)
API_JSON_MAX_ARRAY_LENGTH = env.int("API_JSON_MAX_ARRAY_LENGTH", default=1000)
API_JSON_MAX_OBJECT_KEYS = env.int("API_JSON_MAX_OBJECT_KEYS", default=1000)
# Rate limits per API key, per user and per client IP, as JSON (default 1200/min, 600/min, 1800/min requests).
API_THROTTLE_RATES = env.json(
    "API_THROTTLE_RATES", default={"api_key": "1200/min", "user": "600/min", "ip": "1800/min"}
)
# Cache of the rate-limit counters (and nonces with the cache store): Redis to share them between
# processes and machines, e.g. redis://redis:6379/1 (default locmemcache://: this process only).
API_CACHE_URL = env.str("API_CACHE_URL", default="locmemcache://api")
API_CACHE_ALIAS = "api"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api": env.cache_url_config(API_CACHE_URL),
}
# The deprecation registry: None uses api/versioning.py's; a JSON list replaces it (default None).
API_DEPRECATIONS = env.json("API_DEPRECATIONS", default=None)
# Where the Link headers of deprecated endpoints point (default "/api/changes/", docs/API_CHANGES.md).
API_CHANGES_URL = env.str("API_CHANGES_URL", default="/api/changes/")
# Permissions-Policy header on every response (default: every powerful feature off; core/middleware.py).
PERMISSIONS_POLICY = env.str("PERMISSIONS_POLICY", default=None) or None
# Where browsers report CSP violations (default empty: no reports).
API_CSP_REPORT_URI = env.str("API_CSP_REPORT_URI", default="")

# Content-Security-Policy (django-csp 4): nonces, never 'unsafe-inline' or 'unsafe-eval'. Templates put
# nonce="{{ request.csp_nonce }}" on an inline <script>/<style>; api/checks.py refuses unsafe sources.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", csp_constants.NONCE],
        "style-src": ["'self'", csp_constants.NONCE],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        **({"report-uri": [API_CSP_REPORT_URI]} if API_CSP_REPORT_URI else {}),
    }
}

# ---------------------------------------------------------------------------------------------
# Our apps
# ---------------------------------------------------------------------------------------------
# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted
# (default 0: trust no proxy, use REMOTE_ADDR).
AUDIT_TRUSTED_PROXY_COUNT = env.int("AUDIT_TRUSTED_PROXY_COUNT", default=0)
# Legacy HMAC key of the audit chain, 32+ characters: only verifies MACs made before the audit_chain
# key ring (ENCRYPTION_AUDIT_CHAIN_KEYS) keyed the chain; never makes new ones (default empty: the key
# an earlier version generated into VAR_DIR/secrets/audit_chain_key, if that file exists).
AUDIT_CHAIN_KEY = env.str("AUDIT_CHAIN_KEY", default="")
# When committed events are chained: "background" (a sealer thread per process, woken after
# commit), "inline" (right after commit, in the caller's thread) or "periodic" (only the
# audit_seal task) (default "background").
AUDIT_SEAL_MODE = env.str("AUDIT_SEAL_MODE", default="background")
# Events chained per sealing transaction (default 1000 events).
AUDIT_SEAL_BATCH_SIZE = env.int("AUDIT_SEAL_BATCH_SIZE", default=1000)
# audit_verify warns about events still unsealed after this long (default 60 seconds).
AUDIT_SEAL_GRACE_SECONDS = env.int("AUDIT_SEAL_GRACE_SECONDS", default=60)
# Folder of the published heads (heads.log) and the archives (archive/) (default empty: VAR_DIR/audit).
AUDIT_DIR = env.str("AUDIT_DIR", default="")
# Days an event is kept before audit_archive archives and purges it (default 365 days).
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
# Per-action retention in days, as JSON, e.g. {"auth.login_failed": 90} (default {}: none).
AUDIT_RETENTION_OVERRIDES = env.json("AUDIT_RETENTION_OVERRIDES", default={})
# Events written per archive file by audit_archive (default 50000 events).
AUDIT_ARCHIVE_BATCH_SIZE = env.int("AUDIT_ARCHIVE_BATCH_SIZE", default=50000)
# The audit admin counts at most this many matching events, so no page runs COUNT(*) over
# millions of rows (default 10000 events).
AUDIT_ADMIN_COUNT_LIMIT = env.int("AUDIT_ADMIN_COUNT_LIMIT", default=10000)
# Record every migration that migrate applies or unapplies as a system.migration_applied audit
# event (default True).
AUDIT_RECORD_MIGRATIONS = env.bool("AUDIT_RECORD_MIGRATIONS", default=True)
# A context key the action does not declare (audit/schema.py) raises in record() instead of being
# kept and logged once (default False; the test settings turn it on).
AUDIT_STRICT_CONTEXT = False

# Largest memory content accepted (default 65536 characters).
MEMORIES_CONTENT_MAX_LENGTH = env.int("MEMORIES_CONTENT_MAX_LENGTH", default=65536)
# Largest metadata document accepted, serialised (default 16384 bytes).
MEMORIES_METADATA_MAX_BYTES = env.int("MEMORIES_METADATA_MAX_BYTES", default=16384)

# ---------------------------------------------------------------------------------------------
# Encryption at rest (encryption/keyring.py explains providers, key text and caching)
# ---------------------------------------------------------------------------------------------
# Where keys come from: "environment", "file" or "vault" (default "environment").
ENCRYPTION_KEY_PROVIDER = env.str("ENCRYPTION_KEY_PROVIDER", default="environment")
# Key rings of the environment provider, "id:BASE64KEY,id:BASE64KEY", first encrypts (default: none).
ENCRYPTION_FIELD_KEYS = env.str("ENCRYPTION_FIELD_KEYS", default="")
ENCRYPTION_BLIND_INDEX_KEYS = env.str("ENCRYPTION_BLIND_INDEX_KEYS", default="")
ENCRYPTION_AUDIT_CHAIN_KEYS = env.str("ENCRYPTION_AUDIT_CHAIN_KEYS", default="")
ENCRYPTION_BACKUP_KEYS = env.str("ENCRYPTION_BACKUP_KEYS", default="")
ENCRYPTION_AUDIT_ARCHIVE_KEYS = env.str("ENCRYPTION_AUDIT_ARCHIVE_KEYS", default="")
# Folder of the file provider: one key-ring file per purpose (field, blind_index, audit_chain, backup,
# audit_archive) (default: none).
ENCRYPTION_KEYS_DIR = env.str("ENCRYPTION_KEYS_DIR", default="")
# HashiCorp Vault KV v2 provider: server URL (default: none), token or token file (default: none),
# mount (default "secret"), secret path (default "ninaivalaigal/encryption"), namespace (default: none),
# CA bundle file (default: system CAs), request timeout (default 5 seconds).
ENCRYPTION_VAULT_URL = env.str("ENCRYPTION_VAULT_URL", default="")
ENCRYPTION_VAULT_TOKEN = env.str("ENCRYPTION_VAULT_TOKEN", default="")
ENCRYPTION_VAULT_TOKEN_FILE = env.str("ENCRYPTION_VAULT_TOKEN_FILE", default="")
ENCRYPTION_VAULT_MOUNT = env.str("ENCRYPTION_VAULT_MOUNT", default="secret")
ENCRYPTION_VAULT_PATH = env.str("ENCRYPTION_VAULT_PATH", default="ninaivalaigal/encryption")
ENCRYPTION_VAULT_NAMESPACE = env.str("ENCRYPTION_VAULT_NAMESPACE", default="")
ENCRYPTION_VAULT_CA_FILE = env.str("ENCRYPTION_VAULT_CA_FILE", default="")
ENCRYPTION_VAULT_TIMEOUT = env.float("ENCRYPTION_VAULT_TIMEOUT", default=5.0)
# How long a resolved key ring is reused before the provider is read again (default 60 seconds).
ENCRYPTION_KEY_CACHE_SECONDS = env.int("ENCRYPTION_KEY_CACHE_SECONDS", default=60)
# Fernet keys of django-encrypted-model-fields, only to read its old values (default: FIELD_ENCRYPTION_KEY, else none).
ENCRYPTION_LEGACY_FERNET_KEYS = env.list(
    "ENCRYPTION_LEGACY_FERNET_KEYS", default=env.list("FIELD_ENCRYPTION_KEY", default=[])
)
# Accept the public development keys outside DEBUG (default False; only the test settings set it).
ENCRYPTION_DEVELOPMENT_KEYS_ALLOWED = False
# Rows re-encrypted per transaction by rotate_encryption_keys (default 500 rows).
ENCRYPTION_ROTATION_BATCH_SIZE = env.int("ENCRYPTION_ROTATION_BATCH_SIZE", default=500)
# Folder of the daily encrypted backups (default empty: VAR_DIR/backups) and how many verified ones to keep (default 7).
ENCRYPTION_BACKUP_DIR = env.str("ENCRYPTION_BACKUP_DIR", default="")
ENCRYPTION_BACKUP_KEEP = env.int("ENCRYPTION_BACKUP_KEEP", default=7)
# Random rows per model whose encrypted columns verify_backup decrypts (default 25 rows).
ENCRYPTION_BACKUP_VERIFY_SAMPLE_SIZE = env.int("ENCRYPTION_BACKUP_VERIFY_SAMPLE_SIZE", default=25)
# PostgreSQL account that creates and drops verify_backup's scratch database; needs CREATEDB (default
# empty: the application's own DATABASE_URL account).
ENCRYPTION_BACKUP_VERIFY_DATABASE_URL = env.str("ENCRYPTION_BACKUP_VERIFY_DATABASE_URL", default="")
# Folder of pg_dump and pg_restore (default empty: PG_BINDIR if set, else found on PATH).
ENCRYPTION_BACKUP_PG_BINDIR = env.str("ENCRYPTION_BACKUP_PG_BINDIR", default=env.str("PG_BINDIR", default=""))
# pg_dump gzip level 0-9 (default 0: encrypted columns do not compress, and gzip slows the dump tenfold).
ENCRYPTION_BACKUP_PG_COMPRESSION = env.int("ENCRYPTION_BACKUP_PG_COMPRESSION", default=0)

# ---------------------------------------------------------------------------------------------
# Monitoring: detectors, alerts, notifications, reports, health (README "Monitoring" explains each)
# ---------------------------------------------------------------------------------------------
# Brute force on one account: failed logins (password or MFA) against one account (default 10 failures in 900 seconds).
MONITORING_BRUTE_FORCE_THRESHOLD = env.int("MONITORING_BRUTE_FORCE_THRESHOLD", default=10)
MONITORING_BRUTE_FORCE_WINDOW_SECONDS = env.int("MONITORING_BRUTE_FORCE_WINDOW_SECONDS", default=900)
# Password spraying / credential stuffing: distinct accounts failing from one IP (default 10 accounts in 900 seconds).
MONITORING_SPRAYING_ACCOUNT_THRESHOLD = env.int("MONITORING_SPRAYING_ACCOUNT_THRESHOLD", default=10)
MONITORING_SPRAYING_WINDOW_SECONDS = env.int("MONITORING_SPRAYING_WINDOW_SECONDS", default=900)
# Lockouts of one account (default 1 lockout in 3600 seconds).
MONITORING_LOCKOUT_THRESHOLD = env.int("MONITORING_LOCKOUT_THRESHOLD", default=1)
MONITORING_LOCKOUT_WINDOW_SECONDS = env.int("MONITORING_LOCKOUT_WINDOW_SECONDS", default=3600)
# Unusual login hour: per-user baseline of successful logins over N days (default 30 days), silent below
# a minimum baseline (default 10 logins); unusual when the share of baseline logins within +/- tolerance
# hours (default 1 hour, UTC) of this login's hour is below the share (default 0.05 = 5 %).
MONITORING_UNUSUAL_HOUR_BASELINE_DAYS = env.int("MONITORING_UNUSUAL_HOUR_BASELINE_DAYS", default=30)
MONITORING_UNUSUAL_HOUR_MIN_LOGINS = env.int("MONITORING_UNUSUAL_HOUR_MIN_LOGINS", default=10)
MONITORING_UNUSUAL_HOUR_TOLERANCE_HOURS = env.int("MONITORING_UNUSUAL_HOUR_TOLERANCE_HOURS", default=1)
MONITORING_UNUSUAL_HOUR_MIN_SHARE = env.float("MONITORING_UNUSUAL_HOUR_MIN_SHARE", default=0.05)
# New device or IP: compared with the user's successful logins of the last N days (default 90 days);
# silent until the user has a minimum of earlier logins (default 3 logins).
MONITORING_NEW_DEVICE_LOOKBACK_DAYS = env.int("MONITORING_NEW_DEVICE_LOOKBACK_DAYS", default=90)
MONITORING_NEW_DEVICE_MIN_PRIOR_LOGINS = env.int("MONITORING_NEW_DEVICE_MIN_PRIOR_LOGINS", default=3)
# Privilege escalation always alerts; groups and team/organization roles that count as privileged
# (defaults "security,security-admins" and "admin,owner").
MONITORING_PRIVILEGED_GROUPS = env.list("MONITORING_PRIVILEGED_GROUPS", default=["security", "security-admins"])
MONITORING_PRIVILEGED_ROLES = env.list("MONITORING_PRIVILEGED_ROLES", default=["admin", "owner"])
# Probing: permission-denied events from one user, key or IP (default 20 denials in 300 seconds).
MONITORING_PROBING_THRESHOLD = env.int("MONITORING_PROBING_THRESHOLD", default=20)
MONITORING_PROBING_WINDOW_SECONDS = env.int("MONITORING_PROBING_WINDOW_SECONDS", default=300)
# API key request rate: requests in the window (default 300 seconds) above both a floor (default 100
# requests) and a factor (default 10) times the key's own mean per window over the baseline (default 7 days).
MONITORING_API_RATE_WINDOW_SECONDS = env.int("MONITORING_API_RATE_WINDOW_SECONDS", default=300)
MONITORING_API_RATE_MIN_REQUESTS = env.int("MONITORING_API_RATE_MIN_REQUESTS", default=100)
MONITORING_API_RATE_FACTOR = env.float("MONITORING_API_RATE_FACTOR", default=10.0)
MONITORING_API_RATE_BASELINE_DAYS = env.int("MONITORING_API_RATE_BASELINE_DAYS", default=7)
# API errors (401 refused key, 403 denied, 429 rate limited) from one key or IP (default 30 in 300 seconds).
MONITORING_API_ERROR_THRESHOLD = env.int("MONITORING_API_ERROR_THRESHOLD", default=30)
MONITORING_API_ERROR_WINDOW_SECONDS = env.int("MONITORING_API_ERROR_WINDOW_SECONDS", default=300)
# Request signature failures from one key or IP (default 5 in 300 seconds).
MONITORING_SIGNATURE_FAILURE_THRESHOLD = env.int("MONITORING_SIGNATURE_FAILURE_THRESHOLD", default=5)
MONITORING_SIGNATURE_FAILURE_WINDOW_SECONDS = env.int("MONITORING_SIGNATURE_FAILURE_WINDOW_SECONDS", default=300)
# Deprecated endpoint calls by one key, user or IP (default 1 call in 86400 seconds: one low alert a day).
MONITORING_DEPRECATED_ENDPOINT_THRESHOLD = env.int("MONITORING_DEPRECATED_ENDPOINT_THRESHOLD", default=1)
MONITORING_DEPRECATED_ENDPOINT_WINDOW_SECONDS = env.int("MONITORING_DEPRECATED_ENDPOINT_WINDOW_SECONDS", default=86400)
# Bulk memory reads/exports by one user in the window (default 3600 seconds): above a floor (default 200
# events) and a factor (default 5) times the user's mean per window over the baseline (default 14 days);
# one export event weighs as much as N reads (default 50).
MONITORING_BULK_READ_WINDOW_SECONDS = env.int("MONITORING_BULK_READ_WINDOW_SECONDS", default=3600)
MONITORING_BULK_READ_MIN_EVENTS = env.int("MONITORING_BULK_READ_MIN_EVENTS", default=200)
MONITORING_BULK_READ_FACTOR = env.float("MONITORING_BULK_READ_FACTOR", default=5.0)
MONITORING_BULK_READ_BASELINE_DAYS = env.int("MONITORING_BULK_READ_BASELINE_DAYS", default=14)
MONITORING_BULK_READ_EXPORT_WEIGHT = env.int("MONITORING_BULK_READ_EXPORT_WEIGHT", default=50)
# Audit silence: no request-driven audit event for N seconds (default 900) while at least M requests
# were served (default 50 requests).
MONITORING_AUDIT_SILENCE_SECONDS = env.int("MONITORING_AUDIT_SILENCE_SECONDS", default=900)
MONITORING_AUDIT_SILENCE_MIN_REQUESTS = env.int("MONITORING_AUDIT_SILENCE_MIN_REQUESTS", default=50)
# Event-by-event detectors (privilege grants, failed jobs, new devices...) also re-check this far back
# in each sweep, so a lost real-time hand-off is caught (default 900 seconds).
MONITORING_SWEEP_LOOKBACK_SECONDS = env.int("MONITORING_SWEEP_LOOKBACK_SECONDS", default=900)
# A scheduled job is late when it has not started this long after it was due (default 600 seconds).
MONITORING_JOB_LATE_GRACE_SECONDS = env.int("MONITORING_JOB_LATE_GRACE_SECONDS", default=600)
# Job runs kept for the console (default 30 days).
MONITORING_JOB_RUN_RETENTION_DAYS = env.int("MONITORING_JOB_RUN_RETENTION_DAYS", default=30)
# Repeated triggers with the same dedupe key within this window update one alert (default 3600 seconds).
MONITORING_ALERT_DEDUPE_WINDOW_SECONDS = env.int("MONITORING_ALERT_DEDUPE_WINDOW_SECONDS", default=3600)
# Audit event ids kept as evidence on one alert (default 50 ids; counts are always complete).
MONITORING_ALERT_EVIDENCE_LIMIT = env.int("MONITORING_ALERT_EVIDENCE_LIMIT", default=50)
# Days of alerts shown in the severity chart of the alert console (default 14 days).
MONITORING_CHART_DAYS = env.int("MONITORING_CHART_DAYS", default=14)
# Notification channels per severity, as JSON (default: critical and high by email and webhook,
# medium by webhook, low none).
MONITORING_NOTIFICATION_ROUTES = env.json(
    "MONITORING_NOTIFICATION_ROUTES",
    default={"critical": ["email", "webhook"], "high": ["email", "webhook"], "medium": ["webhook"], "low": []},
)
# Security administrators who receive alert and report emails, comma-separated (default empty:
# every active superuser with an email address).
MONITORING_ALERT_EMAILS = env.list("MONITORING_ALERT_EMAILS", default=[])
# Webhook receiver URL (default empty: no webhook), its HMAC-SHA256 secret of 32+ characters (default
# empty; required when the URL is set) and the request timeout (default 5 seconds).
MONITORING_WEBHOOK_URL = env.str("MONITORING_WEBHOOK_URL", default="")
MONITORING_WEBHOOK_SECRET = env.str("MONITORING_WEBHOOK_SECRET", default="")
MONITORING_WEBHOOK_TIMEOUT_SECONDS = env.float("MONITORING_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Outbox retries: exponential backoff from the base (default 30 seconds) up to the cap (default 3600
# seconds); delivery is retried until it succeeds, never dropped.
MONITORING_NOTIFICATION_RETRY_BASE_SECONDS = env.int("MONITORING_NOTIFICATION_RETRY_BASE_SECONDS", default=30)
MONITORING_NOTIFICATION_RETRY_MAX_SECONDS = env.int("MONITORING_NOTIFICATION_RETRY_MAX_SECONDS", default=3600)
# Per-destination rate limit: at most N deliveries per window (default 20 per 600 seconds); the rest wait.
MONITORING_NOTIFICATION_RATE_LIMIT = env.int("MONITORING_NOTIFICATION_RATE_LIMIT", default=20)
MONITORING_NOTIFICATION_RATE_WINDOW_SECONDS = env.int("MONITORING_NOTIFICATION_RATE_WINDOW_SECONDS", default=600)
# Readiness: checks that make /readyz answer 503 (default all: database, cache, broker, worker, beat).
MONITORING_READINESS_CHECKS = env.list(
    "MONITORING_READINESS_CHECKS", default=["database", "cache", "broker", "worker", "beat"]
)
# Worker heartbeat older than this fails readiness (default 180 seconds; the heartbeat job runs every 60).
MONITORING_WORKER_HEARTBEAT_MAX_AGE_SECONDS = env.int("MONITORING_WORKER_HEARTBEAT_MAX_AGE_SECONDS", default=180)
# Last beat run older than this fails readiness (default 600 seconds; beat saves run times every 180).
MONITORING_BEAT_MAX_AGE_SECONDS = env.int("MONITORING_BEAT_MAX_AGE_SECONDS", default=600)
# Queries slower than this are logged on "monitoring.slow_query" with normalised SQL, never parameters (default 500 ms).
MONITORING_SLOW_QUERY_MS = env.float("MONITORING_SLOW_QUERY_MS", default=500)
# /metrics: a bearer token of 32+ characters (default empty) and/or client networks allowed, comma-separated
# CIDRs (default empty); with neither the endpoint answers 404.
MONITORING_METRICS_TOKEN = env.str("MONITORING_METRICS_TOKEN", default="")
MONITORING_METRICS_ALLOWED_NETWORKS = env.list("MONITORING_METRICS_ALLOWED_NETWORKS", default=[])
# Request counts are buffered per process and written at most this often (default 10 seconds).
MONITORING_REQUEST_COUNT_FLUSH_SECONDS = env.int("MONITORING_REQUEST_COUNT_FLUSH_SECONDS", default=10)
# Per-minute request and login tallies kept (default 35 days).
MONITORING_TALLY_RETENTION_DAYS = env.int("MONITORING_TALLY_RETENTION_DAYS", default=35)
# Reports: recipients (default empty: the alert recipients above).
MONITORING_REPORT_EMAILS = env.list("MONITORING_REPORT_EMAILS", default=[])

# Every handler passes records through the audit sanitiser: no secret, token, OTP, key or
# memory content reaches a log line, and control characters cannot forge one (ASVS V7.1.1, V7.3.1).
# Every log line is one JSON object (timestamp, level, logger, message, request id, user id,
# client IP) rendered by structlog (audit/logging.py); every handler sanitises first.
# LOG_FORMAT: "json" (default) or "plain" for a human at a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="json")

# django-auditlog keeps field-level diffs of the security-relevant models, each linked to the
# request id of the change (its correlation id). Secrets are excluded, personal data masked.
AUDITLOG_CID_GETTER = "core.context.current_request_id"
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {"model": "accounts.user", "exclude_fields": ["password", "last_login"], "mask_fields": ["email"]},
    {"model": "auth.group"},
    {"model": "memories.organization"},
    {"model": "memories.team"},
    {"model": "memories.membership"},
    {"model": "memories.context"},
    {"model": "memories.contextshare"},
)
# Optional log file, rotated by size: LOG_FILE (default none), LOG_FILE_MAX_BYTES (default
# 10485760 bytes), LOG_FILE_BACKUP_COUNT (default 10 files kept).
LOG_FILE = env.str("LOG_FILE", default="")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"sanitise": {"()": "core.logging.SanitisingFilter"}},
    "formatters": {
        "json": {"()": "core.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["sanitise"],
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
        }
    },
    "loggers": {
        # audit.events: one line per committed audit event; audit.chain: sealing, verification, heads.
        "audit": {"level": "INFO"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
if LOG_FILE:
    LOGGING["handlers"]["file"] = {
        "class": "logging.handlers.RotatingFileHandler",
        "filename": LOG_FILE,
        "maxBytes": env.int("LOG_FILE_MAX_BYTES", default=10 * 1024 * 1024),
        "backupCount": env.int("LOG_FILE_BACKUP_COUNT", default=10),
        "filters": ["sanitise"],
        "formatter": "json",
    }
    LOGGING["root"]["handlers"].append("file")
