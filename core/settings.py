"""Settings of our apps, written once with their defaults, and the environment they come from.

Each app's ``conf.py`` holds its settings and their defaults in one ``AppSettings`` (as
django-allauth's ``app_settings.py`` does); code reads them through it, when used, so a settings
module, ``override_settings`` or pytest-django's ``settings`` fixture changes them. The settings
modules take from the environment only what an operator sets per deployment, with
``settings_from_environment`` and ``secret_from_environment``; ``tests/config/test_env_example.py``
finds the variables by these two names, so call them with literal names.

Deployment secrets (``secret_from_environment``) come from the variable ``NAME``, the file that
``NAME_FILE`` names, or, with ``SECRETS_PROVIDER=aws``, the field ``NAME`` of one AWS Secrets
Manager secret (``SECRETS_AWS_SECRET_ID``, a JSON object of names to values), read once per
process when the settings load. A secret given twice (the secret's field and ``NAME`` or
``NAME_FILE``) is refused rather than one silently winning.
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable
from typing import Any

import environ
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core import secret_stores

# Read as the settings modules' own ``environ.Env()`` reads (``$NAME`` values refer to NAME).
_environment = environ.Env()


class AppSettings:
    """One app's settings: the Django setting of that name if defined, else the app's default."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults

    def get(self, name: str) -> Any:
        """Return the setting ``name``, read now (a ``KeyError`` names a setting the app lacks)."""
        return getattr(settings, name, self.defaults[name])

    def seconds(self, name: str) -> datetime.timedelta:
        """Return a setting given in seconds as a ``timedelta``."""
        return datetime.timedelta(seconds=self.get(name))


def settings_from_environment(**readers: Callable[[str], Any]) -> dict[str, Any]:
    """Return ``{NAME: reader(NAME)}`` for each variable that is set in the environment.

    ``readers`` maps a setting to how its variable of the same name is parsed, e.g.
    ``AUDIT_DIR=env.str``. An unset variable leaves the setting out, so the app's default in its
    ``conf.py`` applies and no settings module repeats it.
    """
    return {name: read(name) for name, read in readers.items() if name in _environment.ENVIRON}


# Where deployment secrets come from besides NAME and NAME_FILE (SECRETS_PROVIDER).
SECRETS_PROVIDERS = ("environment", "aws")
# One request to the secrets provider at start: connect and read timeout (seconds).
SECRETS_PROVIDER_TIMEOUT = 5.0


def secrets_provider() -> str:
    """The provider of deployment secrets, ``SECRETS_PROVIDER`` (default ``environment``)."""
    name = os.environ.get("SECRETS_PROVIDER", "") or "environment"
    if name not in SECRETS_PROVIDERS:
        raise ImproperlyConfigured(f"SECRETS_PROVIDER is {name!r}; expected one of {', '.join(SECRETS_PROVIDERS)}.")
    return name


@functools.cache
def _aws_secrets_document(secret_id: str, region: str, endpoint_url: str) -> dict[str, str]:
    """The secrets document, read once per process (a failure is not cached: the start stops)."""
    return secret_stores.read_aws_json_secret(
        secret_id,
        region=region,
        endpoint_url=endpoint_url,
        timeout=SECRETS_PROVIDER_TIMEOUT,
        region_setting="SECRETS_AWS_REGION",
    )


def forget_provider_secrets() -> None:
    """Forget the secrets document read from the provider (tests; a process reads it once)."""
    _aws_secrets_document.cache_clear()
    secret_stores.forget_clients()


def _from_provider(name: str) -> tuple[str, str]:
    """``(value, where)`` of ``name`` from the secrets provider; ``("", where)`` if it has none."""
    if secrets_provider() == "environment":
        return "", ""
    secret_id = os.environ.get("SECRETS_AWS_SECRET_ID", "") or "ninaivalaigal/deployment"
    endpoint_url = os.environ.get("SECRETS_AWS_ENDPOINT_URL", "")
    where = f"{secret_stores.describe_aws_secret(secret_id)} (SECRETS_PROVIDER=aws)"
    # Checked before the first request: deployment secrets are read before any settings module
    # could relax anything, so plain http is allowed to a loopback address only, everywhere.
    problem = endpoint_url and secret_stores.endpoint_problem(endpoint_url, setting="SECRETS_AWS_ENDPOINT_URL")
    if problem:
        raise ImproperlyConfigured(f"Cannot read {name}: {problem}")
    try:
        document = _aws_secrets_document(secret_id, os.environ.get("SECRETS_AWS_REGION", ""), endpoint_url)
    except secret_stores.SecretStoreError as error:
        raise ImproperlyConfigured(f"Cannot read {name}: {error}") from None
    return document.get(name, "").strip(), where


def secret_from_environment(name: str, *, required: bool = False) -> str:
    """Return the deployment secret ``name``: the variable ``name``, the content of the file
    ``name_FILE`` names (mounted secrets), or the field ``name`` of the secrets provider's secret.

    ``required``: refuse to start without it, with a message naming the secret and where it was
    looked for. The value never appears in a message.
    """
    file_path = _environment.str(f"{name}_FILE", default="")
    if file_path:
        try:
            with open(file_path) as handle:
                value = handle.read().strip()
        except OSError as error:
            raise ImproperlyConfigured(
                f"{name}_FILE points at {file_path!r}, which cannot be read: {error.strerror}"
            ) from None
    else:
        value = _environment.str(name, default="")
    provided, where = _from_provider(name)
    if provided and (file_path or value):
        given = f"{name}_FILE" if file_path else name
        raise ImproperlyConfigured(f"{name} is given twice, by {given} and by {where}: keep one.")
    value = provided or value
    if required and not value:
        if where:
            raise ImproperlyConfigured(
                f"{name} is not set: {where} has no field {name!r}, and neither {name} nor {name}_FILE is in "
                "the environment; production has no default for it."
            )
        raise ImproperlyConfigured(
            f"Set the {name} environment variable (or {name}_FILE); production has no default for it."
        )
    return value


DATABASE_SCHEMES = ("postgres", "postgresql", "pgsql", "sqlite")


def database_from_url(url: str) -> dict[str, Any]:
    """Django's ``DATABASES`` entry for a database URL, or a clear error that names its scheme.

    Only PostgreSQL and SQLite URLs are accepted. The error never repeats the URL: it may hold the
    database password.
    """
    scheme = url.partition("://")[0].strip().lower() if "://" in url else ""
    if scheme not in DATABASE_SCHEMES:
        shown = f"its scheme is {scheme!r}" if scheme else "it has no scheme"
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a database URL this platform can use ({shown}): expected "
            "postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:///PATH."
        )
    config = _environment.db_url_config(url.strip())
    if scheme != "sqlite" and not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL names no database: add /NAME at its end.")
    return config
