"""Settings shared by every environment.

One ``environ.Env`` reader. Environment-specific modules (``local``, ``test``, ``production``)
import everything from here and override what differs. Our apps' settings are written once, with
meaning, unit and default, in each app's ``conf.py``; this module sets Django's and third-party
settings, and reads from the environment only what an operator sets per deployment (the section
"Our apps" below; ``.env.example`` lists every variable).
"""

from __future__ import annotations

from pathlib import Path

import environ
from csp import constants as csp_constants

from accounts import conf as accounts_conf
from core.settings import database_from_url, secret_from_environment, settings_from_environment

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
# Database: SQLite under var/ by default; DATABASE_URL=postgres://... for the scaled-out path. The
# URL carries the password: a deployment secret (the variable, DATABASE_URL_FILE or SECRETS_PROVIDER).
# ---------------------------------------------------------------------------------------------
DATABASE_URL = secret_from_environment("DATABASE_URL").strip() or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": database_from_url(DATABASE_URL)}
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
# STATIC_ROOT moves them out of VAR_DIR: the container image collects them at build time.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
# Served by the app (WhiteNoise), no CDN: collectstatic writes hashed names, a manifest and
# gzip/brotli copies; hashed files are cached for ever.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Same-origin only (WhiteNoise's default adds Access-Control-Allow-Origin: * to every file).
WHITENOISE_ALLOW_ALL_ORIGINS = False

# ---------------------------------------------------------------------------------------------
# Email: file backend under var/mail/ by default; SMTP when EMAIL_URL (a deployment secret: it
# carries the SMTP password) is set.
# ---------------------------------------------------------------------------------------------
EMAIL_URL = secret_from_environment("EMAIL_URL")
if EMAIL_URL:
    vars().update(env.email_url_config(EMAIL_URL))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="security@ninaivalaigal.localhost")

# ---------------------------------------------------------------------------------------------
# Celery: kombu's filesystem broker under var/ by default; CELERY_BROKER_URL=redis://... scales out.
# ---------------------------------------------------------------------------------------------
# A Redis URL may carry Redis's password: a deployment secret (the variable, CELERY_BROKER_URL_FILE or
# SECRETS_PROVIDER), like the result backend's and the caches' URLs below.
CELERY_BROKER_URL = secret_from_environment("CELERY_BROKER_URL") or "filesystem://"
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
    _results_folder = VAR_DIR / "celery" / "results"
    CELERY_RESULT_BACKEND = secret_from_environment("CELERY_RESULT_BACKEND") or f"file://{_results_folder}"
else:
    CELERY_RESULT_BACKEND = secret_from_environment("CELERY_RESULT_BACKEND") or CELERY_BROKER_URL
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# django-celery-beat saves when it last sent each job only every 3 minutes by default; saving after
# every job it sends lets /readyz see beat alive within a minute of the start (a few writes a minute).
CELERY_BEAT_SYNC_EVERY = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 3600  # seconds
# Tasks are fire-and-forget: nobody waits on a detection, a notification or a scheduled job (their
# runs are JobRun rows). With results kept, every publish also subscribed and unsubscribed on the
# Redis result backend (issue #17). The tasks whose answer is read opt out: monitoring.health_ping
# (the worker probe) and audit.tasks.audit_publish_head (its verdict, read by operators).
CELERY_TASK_IGNORE_RESULT = True
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

# Django's caches: the API's throttle counters (and nonces with the cache store) live in "api"; a Redis
# URL in API_CACHE_URL shares them between processes and machines (default locmemcache://api: this
# process only, enough for the one-process embedded default). CACHE_URL is the default cache (the
# readiness probe's cache check, the detectors' baselines; default locmemcache://): Redis there too
# when several web replicas serve one site (deploy/compose.yaml). Both URLs may carry Redis's
# password, so both are deployment secrets (the variable, *_FILE or SECRETS_PROVIDER).
CACHES = {
    "default": env.cache_url_config(secret_from_environment("CACHE_URL") or "locmemcache://"),
    "api": env.cache_url_config(secret_from_environment("API_CACHE_URL") or "locmemcache://api"),
}
# Where browsers report CSP violations: API_CSP_REPORT_URI (default empty: no reports).
_csp_report_uri = env.str("API_CSP_REPORT_URI", default="")

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
        **({"report-uri": [_csp_report_uri]} if _csp_report_uri else {}),
    }
}

# ---------------------------------------------------------------------------------------------
# Our apps. Each app's conf.py holds its settings with meaning, unit and default; here only what an
# operator sets per deployment, from the environment variable of the same name when it is set.
# Change any other app setting in a settings module.
# ---------------------------------------------------------------------------------------------
# Accounts: the deployment's sign-in and session policy (the README "Accounts" table).
vars().update(
    settings_from_environment(
        ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT=env.int,
        ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT=env.int,
        ACCOUNTS_LOCKOUT_COOLOFFS=lambda name: env.list(name, cast=int),
        ACCOUNTS_LOCKOUT_RESET_AFTER=env.int,
        ACCOUNTS_MFA_REQUIRED_FOR_ALL=env.bool,
        ACCOUNTS_MFA_GRACE_DAYS=env.int,
        ACCOUNTS_MFA_LOGIN_TIMEOUT=env.int,
        ACCOUNTS_MFA_UNCONFIRMED_DEVICE_TTL=env.int,
        ACCOUNTS_MFA_THROTTLE_BASE=env.int,
        ACCOUNTS_MFA_THROTTLE_MAX=env.int,
        ACCOUNTS_MFA_FAILURE_LIMIT=env.int,
        ACCOUNTS_BACKUP_CODE_COUNT=env.int,
        OTP_TOTP_ISSUER=env.str,
        ACCOUNTS_SESSION_IDLE_TIMEOUT=env.int,
        ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT=env.int,
        ACCOUNTS_SESSION_LAST_SEEN_INTERVAL=env.int,
        ACCOUNTS_STEP_UP_MAX_AGE=env.int,
        ACCOUNTS_SIGNUP_ENABLED=env.bool,
        ACCOUNTS_EMAIL_VERIFICATION_MAX_AGE=env.int,
        ACCOUNTS_EMAIL_CHANGE_MAX_AGE=env.int,
        ACCOUNTS_EMAIL_VERIFICATION_RESEND_INTERVAL=env.int,
        ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR=env.float,
        ACCOUNTS_SIGNUP_RATE_PER_IP=env.str,
        ACCOUNTS_SIGNUP_RATE_PER_ADDRESS=env.str,
        ACCOUNTS_PASSWORD_RESET_RATE_PER_IP=env.str,
        ACCOUNTS_PASSWORD_RESET_RATE_PER_ADDRESS=env.str,
        ACCOUNTS_NOTIFY_NEW_LOGIN=env.bool,
        ACCOUNTS_SITE_URL=env.str,
        ACCOUNTS_SECURITY_EVENTS_SHOWN=env.int,
    )
)
# Django's session outlives accounts' absolute timeout by 30 minutes, so accounts' middleware (not a
# silent expiry) ends it and records why (seconds).
SESSION_COOKIE_AGE = 1800 + vars().get(
    "ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT", accounts_conf.DEFAULTS["ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT"]
)

# API: the HMAC key of stored API-key hashes (production may mount it as a file), the nonce store
# ("cache" once API_CACHE_URL is Redis) and where deprecated endpoints point to their successors.
vars().update(
    settings_from_environment(
        API_KEY_HASH_KEY=env.str,
        API_SIGNATURE_NONCE_STORE=env.str,
        API_THROTTLE_RATES=env.json,
        API_LIST_COUNT_CAP=env.int,
        API_CHANGES_URL=env.str,
    )
)

# Audit: the proxies in front of the app, the legacy chain key, how sealing runs, where the audit
# files go, and how long events are kept.
vars().update(
    settings_from_environment(
        AUDIT_TRUSTED_PROXY_COUNT=env.int,
        AUDIT_CHAIN_KEY=env.str,
        AUDIT_SEAL_MODE=env.str,
        AUDIT_DIR=env.str,
        AUDIT_RETENTION_DAYS=env.int,
        AUDIT_RETENTION_OVERRIDES=env.json,
        AUDIT_RECORD_MIGRATIONS=env.bool,
        AUDIT_CHECKPOINT_INTERVAL=env.int,
        AUDIT_CHECKPOINT_ORIGIN=env.str,
        AUDIT_CHECKPOINT_SINKS=env.list,
        AUDIT_WITNESS_URL=env.str,
        AUDIT_WITNESS_TIMEOUT=env.float,
        AUDIT_CHECKPOINT_EMAIL_TO=env.list,
    )
)

# Memories: the size limits the README's configuration table lists, and how long a transfer offer stays open.
vars().update(
    settings_from_environment(
        MEMORIES_CONTENT_MAX_LENGTH=env.int,
        MEMORIES_METADATA_MAX_BYTES=env.int,
        MEMORIES_TRANSFER_OFFER_MAX_AGE=env.int,
    )
)

# Encryption (encryption/keyring.py explains providers, key text and caching): where the keys come
# from, the key rings or their folder or Vault or AWS secret, the legacy Fernet keys, and the backups' folder,
# retention, verification account and PostgreSQL client programs. PG_BINDIR (which
# scripts/with-postgres.sh exports) stands in for ENCRYPTION_BACKUP_PG_BINDIR when that is unset.
if env.str("PG_BINDIR", default=""):
    ENCRYPTION_BACKUP_PG_BINDIR = env.str("PG_BINDIR")
vars().update(
    settings_from_environment(
        ENCRYPTION_KEY_PROVIDER=env.str,
        ENCRYPTION_FIELD_KEYS=env.str,
        ENCRYPTION_BLIND_INDEX_KEYS=env.str,
        ENCRYPTION_AUDIT_CHAIN_KEYS=env.str,
        ENCRYPTION_BACKUP_KEYS=env.str,
        ENCRYPTION_AUDIT_ARCHIVE_KEYS=env.str,
        ENCRYPTION_AUDIT_CHECKPOINT_KEYS=env.str,
        ENCRYPTION_KEYS_DIR=env.str,
        ENCRYPTION_VAULT_URL=env.str,
        ENCRYPTION_VAULT_TOKEN=env.str,
        ENCRYPTION_VAULT_TOKEN_FILE=env.str,
        ENCRYPTION_VAULT_MOUNT=env.str,
        ENCRYPTION_VAULT_PATH=env.str,
        ENCRYPTION_VAULT_NAMESPACE=env.str,
        ENCRYPTION_VAULT_CA_FILE=env.str,
        ENCRYPTION_AWS_SECRET_ID=env.str,
        ENCRYPTION_AWS_REGION=env.str,
        ENCRYPTION_AWS_ENDPOINT_URL=env.str,
        ENCRYPTION_LEGACY_FERNET_KEYS=env.list,
        FIELD_ENCRYPTION_KEY=env.list,
        ENCRYPTION_BACKUP_DIR=env.str,
        ENCRYPTION_BACKUP_KEEP=env.int,
        ENCRYPTION_BACKUP_VERIFY_DATABASE_URL=env.str,
        ENCRYPTION_BACKUP_PG_BINDIR=env.str,
        ENCRYPTION_SCRATCH_DIR=env.str,
    )
)

# Monitoring (docs/monitoring.md): who receives alerts and reports, the webhook, the /metrics
# credentials, which readiness checks can fail /readyz, the notification routes (JSON), the
# environment deployments are recorded for, and the security gate's result file.
vars().update(
    settings_from_environment(
        MONITORING_ALERT_EMAILS=env.list,
        MONITORING_REPORT_EMAILS=env.list,
        MONITORING_WEBHOOK_URL=env.str,
        MONITORING_WEBHOOK_SECRET=env.str,
        MONITORING_METRICS_TOKEN=env.str,
        MONITORING_METRICS_ALLOWED_NETWORKS=env.list,
        MONITORING_READINESS_CHECKS=env.list,
        MONITORING_NOTIFICATION_ROUTES=env.json,
        MONITORING_DEPLOYMENT_ENVIRONMENT=env.str,
        MONITORING_SECURITY_GATE_RESULT_FILE=env.str,
    )
)
# The alert console and the reports name an API key subject by its name and owner: the api app,
# which monitoring may not import, describes the keys (config/subjects.py).
MONITORING_SUBJECT_DESCRIBERS = {"api_key": "config.subjects.api_key_descriptions"}

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
        # Django's own handlers of these (runserver's plain-text access log, request errors)
        # bypass the sanitiser: their lines go through the project's handler instead, so a
        # query string carrying a key is masked like everything else (ASVS 4.0.3 V7.1.1).
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
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
