"""Settings: the embedded default, the PostgreSQL path, and production's refusals.

Each case imports the settings in a fresh interpreter with a controlled environment, because
settings are read once per process.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
def _key(purpose: str) -> str:
    """A fresh ``id:base64`` key, as ``manage.py encryption_keys generate`` prints it."""
    return f"{purpose}-{secrets.token_hex(3)}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


PRODUCTION_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "console.example.org",
    "DATABASE_URL": "postgres://app:password@db.example.org:5432/ninaivalaigal",
    "ENCRYPTION_FIELD_KEYS": _key("field"),
    "ENCRYPTION_BLIND_INDEX_KEYS": _key("index"),
    "ENCRYPTION_AUDIT_CHAIN_KEYS": _key("chain"),
    "ENCRYPTION_BACKUP_KEYS": _key("backup"),
    "ENCRYPTION_AUDIT_ARCHIVE_KEYS": _key("archive"),
    "ENCRYPTION_AUDIT_CHECKPOINT_KEYS": _key("checkpoint"),
    "ACCOUNTS_SITE_URL": "https://console.example.org",
}


def clean_env(**overrides: str) -> dict:
    """The current environment without any project variable, plus ``overrides``."""
    keep = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    return {**keep, **overrides}


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def read_settings(module: str, env: dict, names: list[str]) -> dict:
    code = (
        "import json, importlib\n"
        f"m = importlib.import_module({module!r})\n"
        f"print(json.dumps({{n: getattr(m, n) for n in {names!r}}}, default=str))"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_default_keeps_everything_under_var(tmp_path):
    """With no configuration: SQLite, filesystem broker, file email, all inside VAR_DIR."""
    values = read_settings(
        "config.settings.local",
        clean_env(VAR_DIR=str(tmp_path)),
        ["DATABASES", "CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS", "EMAIL_BACKEND", "EMAIL_FILE_PATH",
         "CELERY_BEAT_SCHEDULER"],
    )
    assert values["DATABASES"]["default"]["ENGINE"] == "audit.backends.sqlite3"
    assert values["DATABASES"]["default"]["NAME"] == str(tmp_path / "db.sqlite3")
    assert values["CELERY_BROKER_URL"] == "filesystem://"
    assert values["CELERY_BROKER_TRANSPORT_OPTIONS"]["data_folder_in"].startswith(str(tmp_path))
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert values["EMAIL_FILE_PATH"] == str(tmp_path / "mail")
    assert values["CELERY_BEAT_SCHEDULER"] == "django_celery_beat.schedulers:DatabaseScheduler"


def test_secret_key_is_generated_once_with_mode_0600_and_reused(tmp_path):
    env = clean_env(VAR_DIR=str(tmp_path))
    first = read_settings("config.settings.local", env, ["SECRET_KEY"])["SECRET_KEY"]
    second = read_settings("config.settings.local", env, ["SECRET_KEY"])["SECRET_KEY"]
    secret_file = tmp_path / "secrets" / "django_secret_key"
    assert first == second
    assert len(first) >= 50
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert first in secret_file.read_text()


def test_postgresql_url_configures_pool_tls_and_server_timeouts(tmp_path):
    values = read_settings(
        "config.settings.local",
        clean_env(
            VAR_DIR=str(tmp_path),
            DATABASE_URL="postgres://app:pw@db.internal:5432/ninaivalaigal",
            DATABASE_SSLMODE="verify-full",
            DATABASE_SSLROOTCERT="/run/secrets/db-ca.pem",
            DATABASE_POOL_MIN_SIZE="2",
            DATABASE_POOL_MAX_SIZE="7",
            DATABASE_STATEMENT_TIMEOUT_MS="1234",
            DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS="5678",
            CELERY_BROKER_URL="redis://cache.internal:6379/0",
        ),
        ["DATABASES", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"],
    )
    database = values["DATABASES"]["default"]
    assert database["ENGINE"] == "audit.backends.postgresql"
    assert database["OPTIONS"]["pool"]["min_size"] == 2
    assert database["OPTIONS"]["pool"]["max_size"] == 7
    assert database["OPTIONS"]["sslmode"] == "verify-full"
    assert database["OPTIONS"]["sslrootcert"] == "/run/secrets/db-ca.pem"
    assert "statement_timeout=1234" in database["OPTIONS"]["options"]
    assert "idle_in_transaction_session_timeout=5678" in database["OPTIONS"]["options"]
    assert values["CELERY_BROKER_URL"] == "redis://cache.internal:6379/0"
    assert values["CELERY_RESULT_BACKEND"] == "redis://cache.internal:6379/0"


@pytest.mark.postgresql
@pytest.mark.django_db
def test_live_postgresql_connection_carries_the_server_side_timeouts():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        statement_timeout = cursor.fetchone()[0]
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        idle_timeout = cursor.fetchone()[0]
    assert statement_timeout == "30s"
    assert idle_timeout == "1min"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"])
def test_production_refuses_to_start_without_a_secret_and_names_it(missing, tmp_path):
    env = clean_env(VAR_DIR=str(tmp_path), **{k: v for k, v in PRODUCTION_ENV.items() if k != missing})
    result = run_python("import config.settings.production", env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr.strip().splitlines()[-1]
    assert PRODUCTION_ENV["SECRET_KEY"] not in result.stderr


def test_production_reads_a_secret_from_a_mounted_file(tmp_path):
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(PRODUCTION_ENV["SECRET_KEY"] + "\n")
    env = clean_env(
        VAR_DIR=str(tmp_path),
        SECRET_KEY_FILE=str(secret_file),
        **{k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"},
    )
    values = read_settings("config.settings.production", env, ["SECRET_KEY"])
    assert values["SECRET_KEY"] == PRODUCTION_ENV["SECRET_KEY"]


def test_check_deploy_is_clean_on_production_settings(tmp_path):
    env = clean_env(VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings.production", **PRODUCTION_ENV)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_when_the_site_url_of_emails_is_not_set(tmp_path):
    env = clean_env(
        VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="config.settings.production",
        **{k: v for k, v in PRODUCTION_ENV.items() if k != "ACCOUNTS_SITE_URL"},
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr  # a warning, not an error
    assert "core.W001" in result.stderr and "ACCOUNTS_SITE_URL is not set" in result.stderr


def test_production_needs_no_legacy_audit_chain_key_but_reads_one_when_given(tmp_path):
    """AUDIT_CHAIN_KEY only verifies events made before the key ring: optional, from the environment or a file."""
    env = clean_env(VAR_DIR=str(tmp_path), **PRODUCTION_ENV)
    assert read_settings("config.settings.production", env, ["AUDIT_CHAIN_KEY"]) == {"AUDIT_CHAIN_KEY": ""}
    legacy = secrets.token_urlsafe(48)
    (tmp_path / "legacy_chain_key").write_text(legacy + "\n")
    env["AUDIT_CHAIN_KEY_FILE"] = str(tmp_path / "legacy_chain_key")
    assert read_settings("config.settings.production", env, ["AUDIT_CHAIN_KEY"]) == {"AUDIT_CHAIN_KEY": legacy}


@pytest.mark.parametrize("purpose", ["AUDIT_CHAIN", "AUDIT_ARCHIVE"])
def test_production_check_refuses_a_missing_audit_key_ring(purpose, tmp_path):
    """The audit chain's HMAC keys and the archives' keys come from the key ring; without one, check fails."""
    env = clean_env(
        VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="config.settings.production",
        **{k: v for k, v in PRODUCTION_ENV.items() if k != f"ENCRYPTION_{purpose}_KEYS"},
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "encryption.E002" in result.stderr and f"'{purpose.lower()}'" in result.stderr


def test_embedded_default_generates_the_audit_key_rings(tmp_path):
    read_settings("config.settings.local", clean_env(VAR_DIR=str(tmp_path)), ["ENCRYPTION_KEYS_DIR"])
    for purpose in ("audit_chain", "audit_archive"):
        path = tmp_path / "secrets" / "encryption" / purpose
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip().splitlines()[-1].startswith("local-")
    assert not (tmp_path / "secrets" / "audit_chain_key").exists()  # the legacy key is never created any more


def test_argon2_is_the_first_password_hasher_outside_tests():
    from config.settings import base

    assert base.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
