"""Staging: production's settings, with a short, explicit list of what staging may relax.

Everything else is production's, its refusals included: every secret without a default, HTTPS,
secure cookies, real encryption keys, the deployment secrets' endpoint (https, or plain http to a
loopback address: those secrets are read before any settings module can relax anything).
``tests/config/test_staging.py`` proves that staging differs from production in these items only.
"""

from config.settings.base import env
from config.settings.production import *  # noqa: F403

SECURITY_RELAXATIONS = (
    # A staging host is rebuilt and re-certified often, and a browser that has seen its HSTS header
    # refuses it for the whole max-age when its certificate breaks: staging may keep HSTS shorter than
    # production's year (core.E002), one hour unless SECURE_HSTS_SECONDS says otherwise.
    "short-hsts",
    # A staging key provider (ENCRYPTION_AWS_ENDPOINT_URL, ENCRYPTION_VAULT_URL) often sits on the
    # private network without a certificate: plain http is allowed to a private network's IP address
    # (10/8, 172.16/12, 192.168/16, fc00::/7; never a host name) as well as to loopback (encryption.E009).
    # Give staging keys of its own: they are the ones that cross that network.
    "plain-http-to-private-network",
)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600)
