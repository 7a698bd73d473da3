"""The embedded default: one machine, zero services, secrets generated once into var/secrets/."""

from pathlib import Path

from config.secrets import load_or_create_key_file, load_or_create_secret
from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR, env

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or load_or_create_secret(VAR_DIR / "secrets", "django_secret_key")

# Encryption keys: generated once into var/secrets/encryption/ (one file per purpose) unless an
# operator points the file provider elsewhere or picks another provider.
ENCRYPTION_KEY_PROVIDER = env.str("ENCRYPTION_KEY_PROVIDER", default="file")
ENCRYPTION_KEYS_DIR = env.str("ENCRYPTION_KEYS_DIR", default="") or str(VAR_DIR / "secrets" / "encryption")
if ENCRYPTION_KEY_PROVIDER == "file" and not env.str("ENCRYPTION_KEYS_DIR", default=""):
    for _purpose in ("field", "blind_index", "audit_chain", "backup", "audit_archive", "audit_checkpoint"):
        load_or_create_key_file(Path(ENCRYPTION_KEYS_DIR), _purpose)

# A developer's processes run as themselves or as root, on a writable disk: the process_posture
# detector still reports that, once per role, as a low alert (the console shows it; the default
# routes notify no one). Deployments keep the app default, high (monitoring/conf.py).
MONITORING_POSTURE_SEVERITY = "low"
