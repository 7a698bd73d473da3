"""Settings of our apps, written once with their defaults, and the environment they come from.

Each app's ``conf.py`` holds its settings and their defaults in one ``AppSettings`` (as
django-allauth's ``app_settings.py`` does); code reads them through it, when used, so a settings
module, ``override_settings`` or pytest-django's ``settings`` fixture changes them. The settings
modules take from the environment only what an operator sets per deployment, with
``settings_from_environment`` and ``secret_from_environment``; ``tests/config/test_env_example.py``
finds the variables by these two names, so call them with literal names.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import environ
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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


def secret_from_environment(name: str, *, required: bool = False) -> str:
    """Return the variable ``name``, or the content of the file ``name_FILE`` names (mounted secrets).

    ``required``: refuse to start without it, with a message naming the variable. The value never
    appears in a message.
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
    if required and not value:
        raise ImproperlyConfigured(
            f"Set the {name} environment variable (or {name}_FILE); production has no default for it."
        )
    return value
