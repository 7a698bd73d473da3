"""The settings of the encryption app and their defaults, read when used (so tests can override them).

A settings module (or, for the ones ``config/settings/base.py`` reads, the environment variable
of the same name, see ``.env.example``) overrides a default; ``encryption/checks.py`` refuses
unsafe values. ``encryption/keyring.py`` explains providers, key text and caching.
"""

from __future__ import annotations

from core.settings import AppSettings

DEFAULTS = {
    # --- Key rings ---
    # Where key rings come from: "environment", "file", "vault" or "aws" (provider).
    "ENCRYPTION_KEY_PROVIDER": "environment",
    # Key rings of the environment provider, "id:BASE64KEY,id:BASE64KEY", the first encrypts (key ring).
    "ENCRYPTION_FIELD_KEYS": "",
    "ENCRYPTION_BLIND_INDEX_KEYS": "",
    "ENCRYPTION_AUDIT_CHAIN_KEYS": "",
    "ENCRYPTION_BACKUP_KEYS": "",
    "ENCRYPTION_AUDIT_ARCHIVE_KEYS": "",
    "ENCRYPTION_AUDIT_CHECKPOINT_KEYS": "",
    # Folder of the file provider: one key-ring file per purpose (path).
    "ENCRYPTION_KEYS_DIR": "",
    # HashiCorp Vault KV v2 provider: the server (URL).
    "ENCRYPTION_VAULT_URL": "",
    # Vault token, or a file holding it that a Vault agent renews (token; path).
    "ENCRYPTION_VAULT_TOKEN": "",
    "ENCRYPTION_VAULT_TOKEN_FILE": "",
    # KV v2 mount and path of the secret whose fields are the purposes' key rings (names).
    "ENCRYPTION_VAULT_MOUNT": "secret",
    "ENCRYPTION_VAULT_PATH": "ninaivalaigal/encryption",
    # Vault Enterprise namespace; empty: none (name).
    "ENCRYPTION_VAULT_NAMESPACE": "",
    # CA bundle that signs Vault's certificate; empty: the system CAs (path).
    "ENCRYPTION_VAULT_CA_FILE": "",
    # Timeout of one request to Vault (seconds).
    "ENCRYPTION_VAULT_TIMEOUT": 5.0,
    # AWS Secrets Manager provider: the secret whose JSON object maps each purpose to its key
    # ring; credentials come from boto3's own chain, never from a setting (secret name or ARN).
    "ENCRYPTION_AWS_SECRET_ID": "ninaivalaigal/encryption",
    # Its region; empty: boto3's own (AWS_REGION, AWS_DEFAULT_REGION, the profile) (region).
    "ENCRYPTION_AWS_REGION": "",
    # Its endpoint, for a VPC endpoint or a local test server; empty: AWS's for the region (URL).
    "ENCRYPTION_AWS_ENDPOINT_URL": "",
    # Connect and read timeout of one request to AWS (seconds).
    "ENCRYPTION_AWS_TIMEOUT": 5.0,
    # A resolved key ring is reused this long before the provider is read again (seconds).
    "ENCRYPTION_KEY_CACHE_SECONDS": 60,
    # Fernet keys of django-encrypted-model-fields, only to read its old values (keys).
    "ENCRYPTION_LEGACY_FERNET_KEYS": [],
    # That package's own key setting, read when ENCRYPTION_LEGACY_FERNET_KEYS is empty (key or keys).
    "FIELD_ENCRYPTION_KEY": None,
    # Accept the public development keys outside DEBUG; only the test settings set it (switch).
    "ENCRYPTION_DEVELOPMENT_KEYS_ALLOWED": False,
    # --- Rotation and backups ---
    # Rows re-encrypted per transaction by rotate_encryption_keys (rows).
    "ENCRYPTION_ROTATION_BATCH_SIZE": 500,
    # Folder of the daily encrypted backups; empty: VAR_DIR/backups (path).
    "ENCRYPTION_BACKUP_DIR": "",
    # Verified daily backups kept (backups).
    "ENCRYPTION_BACKUP_KEEP": 7,
    # Random rows per model whose encrypted columns verify_backup decrypts (rows).
    "ENCRYPTION_BACKUP_VERIFY_SAMPLE_SIZE": 25,
    # Private folder (0700) of decrypted scratch data of verifications and restores; empty: VAR_DIR/scratch (path).
    "ENCRYPTION_SCRATCH_DIR": "",
    # PostgreSQL account with CREATEDB for verify_backup's scratch database; empty: DATABASE_URL's (URL).
    "ENCRYPTION_BACKUP_VERIFY_DATABASE_URL": "",
    # Folder of pg_dump and pg_restore; empty: found on PATH (path).
    "ENCRYPTION_BACKUP_PG_BINDIR": "",
    # pg_dump gzip level 0-9; 0: encrypted columns do not compress and gzip slows the dump tenfold (level).
    "ENCRYPTION_BACKUP_PG_COMPRESSION": 0,
}
_settings = AppSettings(DEFAULTS)
get = _settings.get
