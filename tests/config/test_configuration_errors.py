"""A configuration error ends a management command with one clear line and exit status 2.

The line never repeats the database URL (it holds the password), and the settings accept only
the databases the platform runs on.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.settings import database_from_url
from tests.support.servers import PROJECT_DIR

PASSWORD = "pw-" + "x7" * 6


def run_manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", **environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nonsense", "it has no scheme"),
        (f"mysql://app:{PASSWORD}@db.internal/memories", "its scheme is 'mysql'"),
        (f"postgres://app:{PASSWORD}@db.internal", "names no database"),
    ],
)
def test_a_bad_database_url_is_one_line_without_the_password(url, expected):
    result = run_manage("check", DATABASE_URL=url)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("Configuration error: DATABASE_URL") and expected in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_blank_database_url_means_the_embedded_default():
    assert run_manage("check", DATABASE_URL="   ").returncode == 0


def test_any_configuration_error_is_one_line_and_traceback_shows_it_whole():
    result = run_manage("check", SECRETS_PROVIDER="bogus")
    assert (result.returncode, result.stderr.strip()) == (
        2, "Configuration error: SECRETS_PROVIDER is 'bogus'; expected one of environment, aws.",
    )
    with_traceback = run_manage("check", "--traceback", SECRETS_PROVIDER="bogus")
    assert with_traceback.returncode != 0 and "Traceback" in with_traceback.stderr


def test_database_from_url_reads_the_two_databases():
    assert database_from_url("sqlite:////srv/db.sqlite3")["NAME"] == "/srv/db.sqlite3"
    config = database_from_url(f"postgres://app:{PASSWORD}@db.internal:5433/memories")
    assert (config["NAME"], config["HOST"], config["PORT"], config["USER"]) == ("memories", "db.internal", 5433, "app")
    with pytest.raises(ImproperlyConfigured) as error:
        database_from_url(f"redis://:{PASSWORD}@cache/0")
    assert PASSWORD not in str(error.value)
