"""Staging relaxes exactly the items it lists, and nothing else of production.

Both settings modules are started in fresh interpreters on the same environment: their settings
differ only in the relaxed items, and on the same unsafe inputs staging's system checks refuse
exactly what production's refuse minus the relaxed items.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from core import conf as core_conf
from tests.config.test_settings import PRODUCTION_ENV, PROJECT_DIR, clean_env, run_python

# What each relaxation may change in the settings themselves (beyond SECURITY_RELAXATIONS).
SETTINGS_CHANGED_BY = {"short-hsts": {"SECURE_HSTS_SECONDS"}, "plain-http-to-private-network": set()}
# Unsafe inputs: two that staging relaxes and three it does not. The key rings come from the
# environment, so no check contacts an endpoint.
UNSAFE_ENV = {
    "SECURE_HSTS_SECONDS": "3600",  # relaxed: short-hsts
    "ENCRYPTION_AWS_ENDPOINT_URL": "http://10.0.0.5:4566",  # relaxed: plain-http-to-private-network
    "ENCRYPTION_VAULT_URL": "http://198.51.100.7:8200",  # not relaxed: plain http to a public address
    "MONITORING_WEBHOOK_URL": "http://hooks.example.org/ninaivalaigal",  # not relaxed, nor its missing secret
}
CHECK_LINE = re.compile(r"^\S*: \((?P<id>[a-z_]+\.[EW]\d{3})\) (?P<msg>.*)$")


def settings_of(module: str, env: dict) -> dict:
    """Every upper-case setting of ``module``, as JSON-comparable values."""
    code = (
        "import json, importlib\n"
        f"m = importlib.import_module({module!r})\n"
        "print(json.dumps({n: getattr(m, n) for n in dir(m) if n.isupper()}, default=repr, sort_keys=True))"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_messages(module: str, env: dict) -> set[tuple[str, str]]:
    """``(id, message)`` of every message that ``manage.py check --deploy`` prints for ``module``."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=PROJECT_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": module},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return {(match["id"], match["msg"]) for line in output.splitlines() if (match := CHECK_LINE.match(line))}


def test_staging_lists_every_known_relaxation_with_its_reason():
    source = (PROJECT_DIR / "config" / "settings" / "staging.py").read_text()
    relaxations = re.search(r"SECURITY_RELAXATIONS = \((.*?)\n\)", source, re.S).group(1)
    listed = re.findall(r'^    "([a-z-]+)",$', relaxations, re.M)
    assert sorted(listed) == sorted(core_conf.RELAXATIONS) == sorted(SETTINGS_CHANGED_BY)
    for name in listed:
        assert re.search(rf'    # [^\n]+\n    "{name}",', relaxations), f"{name} has no comment above it"


def test_staging_settings_differ_from_production_only_in_the_relaxed_items(tmp_path):
    env = clean_env(VAR_DIR=str(tmp_path), **PRODUCTION_ENV)
    production = settings_of("config.settings.production", env)
    staging = settings_of("config.settings.staging", env)
    relaxations = staging["SECURITY_RELAXATIONS"]
    allowed = {"SECURITY_RELAXATIONS"}.union(*(SETTINGS_CHANGED_BY[name] for name in relaxations))
    differing = {name for name in production.keys() | staging.keys() if production.get(name) != staging.get(name)}
    assert differing == allowed
    assert "SECURITY_RELAXATIONS" not in production
    assert (production["SECURE_HSTS_SECONDS"], staging["SECURE_HSTS_SECONDS"]) == (31536000, 3600)


def test_on_the_same_unsafe_inputs_staging_refuses_all_but_the_relaxed_items(tmp_path):
    env = clean_env(VAR_DIR=str(tmp_path), **PRODUCTION_ENV, **UNSAFE_ENV)
    production = check_messages("config.settings.production", env)
    staging = check_messages("config.settings.staging", env)

    def refused(messages):  # (check id, the setting it names first)
        return {(message_id, message.split()[0]) for message_id, message in messages}

    assert refused(production) - refused(staging) == {
        ("core.E002", "SECURE_HSTS_SECONDS"),
        ("encryption.E009", "ENCRYPTION_AWS_ENDPOINT_URL"),
    }
    assert refused(staging) < refused(production)
    assert refused(staging) == {
        ("encryption.E009", "ENCRYPTION_VAULT_URL"),
        ("monitoring.E003", "MONITORING_WEBHOOK_URL"),
        ("monitoring.E004", "MONITORING_WEBHOOK_SECRET"),
    }
    assert {
        ("core.E002", "SECURE_HSTS_SECONDS is 3600: production needs at least 31536000 (one year)."),
        (
            "encryption.E009",
            "ENCRYPTION_AWS_ENDPOINT_URL uses plain http to 10.0.0.5: secrets would cross the network unencrypted; "
            "use https (plain http is allowed only to a loopback address).",
        ),
    } <= production


def test_check_deploy_is_clean_on_staging_settings(tmp_path):
    assert check_messages("config.settings.staging", clean_env(VAR_DIR=str(tmp_path), **PRODUCTION_ENV)) == set()
