"""The test settings with production's static files: hashed names, a manifest, gzip copies.

For processes that a test starts to serve the test database (tests/support/servers.py); the
suite itself keeps the plain storage, which needs no collectstatic.
"""

from config.settings.base import STORAGES as PRODUCTION_STORAGES
from config.settings.test import *  # noqa: F403
from config.settings.test import VAR_DIR

STORAGES = PRODUCTION_STORAGES
STATIC_ROOT = VAR_DIR / "static-collected"
