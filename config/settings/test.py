"""Settings for the test suite: the embedded default with fast, deterministic parts.

The database is SQLite unless DATABASE_URL points at the throwaway PostgreSQL server that
``scripts/run-tests.sh`` starts, so the same suite runs on both.
"""

import tempfile
from pathlib import Path

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, STORAGES, env

DEBUG = False
SECRET_KEY = "test-only-secret-key-not-for-any-deployment-0123456789abcdef"  # noqa: S105
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

# Each test run writes its own var/ (mail, broker, audit files) into a fresh temporary folder.
VAR_DIR = Path(env.str("TEST_VAR_DIR", default=tempfile.mkdtemp(prefix="ninaivalaigal-test-")))
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STATIC_ROOT = VAR_DIR / "static"
# Pages render without collectstatic: the plain storage needs no manifest (tests/deploy collects
# with the production storage for the real server). An empty STATIC_ROOT keeps WhiteNoise quiet.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# Argon2 stays first in production and local; tests hash with MD5 only to keep the suite fast.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "audit.backends.sqlite3":
    # A file, not :memory:, so a real Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

# Tasks run eagerly in-process unless a test starts a real worker (tests/support/servers.py),
# which passes the broker and result backend it shares with the test through the environment.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="cache+memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = env.json("CELERY_BROKER_TRANSPORT_OPTIONS", default={})
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405

# Fixed development keys (public: they are in this file) keep the suite deterministic; the
# encryption system checks refuse them in production. The environment may override them (the
# rotation tests hand a new ring to the command they start).
ENCRYPTION_KEY_PROVIDER = "environment"
ENCRYPTION_FIELD_KEYS = env.str(
    "ENCRYPTION_FIELD_KEYS", default="dev-field:dF2nCH7SzZGG5e94oUkt69+1qLXnpnVw4iNYEhAO86s="
)
ENCRYPTION_BLIND_INDEX_KEYS = env.str(
    "ENCRYPTION_BLIND_INDEX_KEYS", default="dev-blind-index:xsjMy+HRcvNeD61TT4FTpO6me7oeUK6cYzm1vD0GzBs="
)
ENCRYPTION_AUDIT_CHAIN_KEYS = env.str(
    "ENCRYPTION_AUDIT_CHAIN_KEYS", default="dev-audit-chain:ko/E5U+XfTHwjOF2jsOCYhrYc826QJejlAMhw42pzvg="
)
ENCRYPTION_BACKUP_KEYS = env.str(
    "ENCRYPTION_BACKUP_KEYS", default="dev-backup:davf3ha3MZZv+HPete8LnDKXj2sH+KY+uOaWF8j2dW4="
)
ENCRYPTION_AUDIT_ARCHIVE_KEYS = env.str(
    "ENCRYPTION_AUDIT_ARCHIVE_KEYS", default="dev-audit-archive:8z6D35J1b3mQfqdDJW2xzwK/EqYWy2TrFfnOHyK73Kg="
)
ENCRYPTION_AUDIT_CHECKPOINT_KEYS = env.str(
    "ENCRYPTION_AUDIT_CHECKPOINT_KEYS", default="dev-audit-checkpoint:cb8/aJmfxRlfKKmdRM7bVai6muZLMwI4suxoJ9MWc+Q="
)
ENCRYPTION_DEVELOPMENT_KEYS_ALLOWED = True

# Audit: a fixed legacy chain key (docs/decisions/audit-chain-keys.md) and sealing right after
# commit, so tests see a sealed chain deterministically.
AUDIT_CHAIN_KEY = env.str("AUDIT_CHAIN_KEY", default="test-only-audit-chain-key-not-for-any-deployment-0123")
AUDIT_SEAL_MODE = env.str("AUDIT_SEAL_MODE", default="inline")
# The suite's own database set-up is not a schema change, and tests count audit events from zero;
# tests/audit/test_migration_events.py turns migration events on where it checks them.
AUDIT_RECORD_MIGRATIONS = env.bool("AUDIT_RECORD_MIGRATIONS", default=False)
# Every producer in the suite records only the context keys its action declares (audit/schema.py).
AUDIT_STRICT_CONTEXT = True
# Checkpoints only on demand: the tests of the interval publisher turn it on themselves.
AUDIT_CHECKPOINT_INTERVAL = env.int("AUDIT_CHECKPOINT_INTERVAL", default=0)

# The suite's workers run as whoever runs it, often root on a writable disk: as on the embedded
# default their posture alert is low, so it notifies no one (tests of the detector set high).
MONITORING_POSTURE_SEVERITY = "low"
