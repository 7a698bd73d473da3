"""``core.settings``: app settings read when used, and the environment read only where set."""

from __future__ import annotations

import datetime

import environ
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from core.settings import AppSettings, secret_from_environment, settings_from_environment

app_settings = AppSettings({"TESTAPP_LIMIT": 5, "TESTAPP_WINDOW": 60})
env = environ.Env()
# Passed by name, so tests/config/test_env_example.py does not take them for variables of the project.
SECRET = "TESTAPP_SECRET"


def test_an_app_setting_is_its_default_until_a_settings_module_sets_it(settings):
    assert app_settings.get("TESTAPP_LIMIT") == 5
    settings.TESTAPP_LIMIT = 7
    assert app_settings.get("TESTAPP_LIMIT") == 7
    with override_settings(TESTAPP_LIMIT=9):
        assert app_settings.get("TESTAPP_LIMIT") == 9
    assert app_settings.get("TESTAPP_LIMIT") == 7


def test_seconds_are_a_timedelta():
    assert app_settings.seconds("TESTAPP_WINDOW") == datetime.timedelta(minutes=1)


def test_a_setting_the_app_does_not_define_is_a_key_error():
    with pytest.raises(KeyError):
        app_settings.get("TESTAPP_UNKNOWN")


def test_only_variables_that_are_set_become_settings(monkeypatch):
    monkeypatch.setenv("TESTAPP_LIMIT", "12")
    monkeypatch.setenv("TESTAPP_NAME", "")
    monkeypatch.delenv("TESTAPP_WINDOW", raising=False)
    readers = {"TESTAPP_LIMIT": env.int, "TESTAPP_NAME": env.str, "TESTAPP_WINDOW": env.int}
    assert settings_from_environment(**readers) == {"TESTAPP_LIMIT": 12, "TESTAPP_NAME": ""}


def test_a_secret_comes_from_its_variable_or_its_file(monkeypatch, tmp_path):
    monkeypatch.setenv(SECRET, "from-the-environment")
    assert secret_from_environment(SECRET) == "from-the-environment"
    (tmp_path / "secret").write_text("from-the-file\n")
    monkeypatch.setenv(f"{SECRET}_FILE", str(tmp_path / "secret"))
    assert secret_from_environment(SECRET) == "from-the-file"


def test_a_missing_or_unreadable_secret_is_refused_by_name(monkeypatch, tmp_path):
    monkeypatch.delenv(SECRET, raising=False)
    monkeypatch.delenv(f"{SECRET}_FILE", raising=False)
    assert secret_from_environment(SECRET) == ""
    with pytest.raises(ImproperlyConfigured, match="Set the TESTAPP_SECRET environment variable"):
        secret_from_environment(SECRET, required=True)
    monkeypatch.setenv(f"{SECRET}_FILE", str(tmp_path / "absent"))
    with pytest.raises(ImproperlyConfigured, match="TESTAPP_SECRET_FILE points at .* cannot be read"):
        secret_from_environment(SECRET)
