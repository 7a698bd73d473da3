"""System checks refuse unsafe key configurations in production."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from encryption.checks import check_encryption_keys
from encryption.keyring import PURPOSES
from tests.encryption.helpers import make_key, ring
from tests.support.servers import PROJECT_DIR

DEVELOPMENT_FIELD_KEY = "dev-field:dF2nCH7SzZGG5e94oUkt69+1qLXnpnVw4iNYEhAO86s="


@pytest.fixture
def production_like(settings):
    """Real, distinct keys for every purpose and no development keys allowed (DEBUG off)."""
    settings.DEBUG = False
    settings.ENCRYPTION_DEVELOPMENT_KEYS_ALLOWED = False
    settings.ENCRYPTION_KEY_PROVIDER = "environment"
    for purpose in PURPOSES:
        setattr(settings, f"ENCRYPTION_{purpose.upper()}_KEYS", make_key(f"{purpose.replace('_', '-')}-1"))
    return settings


def _ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_good_production_configuration_passes(production_like):
    assert check_encryption_keys() == []


def test_the_test_settings_pass_because_they_allow_development_keys():
    assert check_encryption_keys() == []


def test_missing_key_is_refused(production_like):
    production_like.ENCRYPTION_BACKUP_KEYS = ""
    messages = check_encryption_keys()
    assert _ids(messages) == ["encryption.E002"]
    assert "backup" in messages[0].msg


def test_malformed_key_is_refused_without_echoing_it(production_like):
    production_like.ENCRYPTION_FIELD_KEYS = "k1:c2hvcnQ="
    messages = check_encryption_keys()
    assert _ids(messages) == ["encryption.E003"]
    assert "c2hvcnQ=" not in messages[0].msg


def test_duplicated_key_id_is_refused(production_like):
    production_like.ENCRYPTION_FIELD_KEYS = ring(make_key("same"), make_key("same"))
    assert _ids(check_encryption_keys()) == ["encryption.E004"]


def test_development_key_is_refused_outside_debug(production_like):
    production_like.ENCRYPTION_FIELD_KEYS = ring(make_key("real"), DEVELOPMENT_FIELD_KEY)
    messages = check_encryption_keys()
    assert _ids(messages) == ["encryption.E005"]
    assert "dev-field" in messages[0].msg


def test_development_key_is_accepted_in_debug(production_like):
    production_like.DEBUG = True
    production_like.ENCRYPTION_FIELD_KEYS = DEVELOPMENT_FIELD_KEY
    assert check_encryption_keys() == []


def test_one_key_shared_by_two_purposes_is_refused(production_like):
    production_like.ENCRYPTION_BACKUP_KEYS = production_like.ENCRYPTION_FIELD_KEYS.replace("field-1", "backup-1")
    assert _ids(check_encryption_keys()) == ["encryption.E006"]


def test_unknown_provider_is_refused(production_like):
    production_like.ENCRYPTION_KEY_PROVIDER = "environ"
    assert _ids(check_encryption_keys()) == ["encryption.E001"]


def test_malformed_legacy_fernet_key_is_refused(production_like):
    production_like.ENCRYPTION_LEGACY_FERNET_KEYS = ["not-a-fernet-key"]
    assert _ids(check_encryption_keys()) == ["encryption.E008"]
    production_like.ENCRYPTION_LEGACY_FERNET_KEYS = [Fernet.generate_key().decode()]
    assert check_encryption_keys() == []


def _manage_check_with_production_settings(tmp_path, field_keys: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "production-test-" + "s" * 50,
        "ALLOWED_HOSTS": "console.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
        "ENCRYPTION_KEY_PROVIDER": "environment",
        "ENCRYPTION_FIELD_KEYS": field_keys,
        "ENCRYPTION_BLIND_INDEX_KEYS": make_key("bi-1"),
        "ENCRYPTION_AUDIT_CHAIN_KEYS": make_key("ac-1"),
        "ENCRYPTION_BACKUP_KEYS": make_key("bk-1"),
        "ENCRYPTION_AUDIT_ARCHIVE_KEYS": make_key("aa-1"),
        "ENCRYPTION_AUDIT_CHECKPOINT_KEYS": make_key("cp-1"),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_manage_check_with_production_settings_refuses_the_development_key(tmp_path):
    refused = _manage_check_with_production_settings(tmp_path, DEVELOPMENT_FIELD_KEY)
    assert refused.returncode != 0
    assert "encryption.E005" in refused.stderr + refused.stdout
    accepted = _manage_check_with_production_settings(tmp_path, make_key("field-1"))
    assert "encryption.E" not in accepted.stderr + accepted.stdout
