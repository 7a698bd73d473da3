"""The embedded default: one machine, zero services, secrets generated once into var/secrets/."""

from config.secrets import load_or_create_secret
from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR, env

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or load_or_create_secret(VAR_DIR / "secrets", "django_secret_key")
