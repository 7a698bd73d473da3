"""Deployment secrets from AWS Secrets Manager (SECRETS_PROVIDER=aws), against a real moto_server process.

The production settings are imported in a fresh interpreter, as a deployment starts them; the
secret is created through boto3 on the server beforehand. Nothing of boto3 is mocked.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from core import settings as core_settings
from tests.config.test_settings import PRODUCTION_ENV, PROJECT_DIR, _key, clean_env, read_settings, run_python
from tests.support.servers import (
    AWS_INHERITED_VARIABLES,
    AWS_TEST_ENVIRONMENT,
    AWS_TEST_REGION,
    aws_client,
    free_port,
    moto_reset,
    moto_server,
)

SECRET_ID = "prod/ninaivalaigal"
DEPLOYMENT_SECRETS = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": f"postgres://app:{secrets.token_urlsafe(16)}@db.example.org:5432/ninaivalaigal",
    "EMAIL_URL": f"smtp+tls://mailer:{secrets.token_urlsafe(16)}@smtp.example.org:587",
    "API_KEY_HASH_KEY": secrets.token_urlsafe(32),
    "AUDIT_CHAIN_KEY": secrets.token_urlsafe(32),
    "MONITORING_WEBHOOK_SECRET": secrets.token_urlsafe(32),
    "MONITORING_METRICS_TOKEN": secrets.token_urlsafe(32),
}
# What the environment still gives: the hosts and the key rings (their own provider).
NOT_SECRET_ENV = {key: value for key, value in PRODUCTION_ENV.items() if key not in ("SECRET_KEY", "DATABASE_URL")}
# A regression that contacts a refused endpoint goes to this closed loopback port, not the network.
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


@pytest.fixture
def store(moto_url):
    """The moto server, emptied, holding the deployment secret ``SECRET_ID``."""
    moto_reset(moto_url)
    client = aws_client(moto_url, "secretsmanager")
    client.create_secret(Name=SECRET_ID, SecretString=json.dumps(DEPLOYMENT_SECRETS))
    return client


def aws_env(url: str, tmp_path, **overrides: str) -> dict:
    """A production environment whose secrets come from the moto server at ``url``."""
    provider = {
        "SECRETS_PROVIDER": "aws",
        "SECRETS_AWS_SECRET_ID": SECRET_ID,
        "SECRETS_AWS_REGION": AWS_TEST_REGION,
        "SECRETS_AWS_ENDPOINT_URL": url,
    }
    variables = {**NOT_SECRET_ENV, **AWS_TEST_ENVIRONMENT, **NO_NETWORK, **provider, **overrides}
    return clean_env(VAR_DIR=str(tmp_path), **variables)


def import_error(env: dict) -> str:
    """The last line of what importing the production settings prints when it refuses to start."""
    result = run_python("import config.settings.production", env)
    assert result.returncode != 0
    for value in DEPLOYMENT_SECRETS.values():
        assert value not in result.stderr
    assert AWS_TEST_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"] not in result.stderr
    assert "botocore" not in result.stderr and "During handling" not in result.stderr, "no chained traceback"
    return result.stderr.strip().splitlines()[-1]


def test_production_reads_every_deployment_secret_from_aws_secrets_manager(store, moto_url, tmp_path):
    names = [*DEPLOYMENT_SECRETS, "DATABASES", "EMAIL_HOST", "EMAIL_HOST_PASSWORD"]
    values = read_settings("config.settings.production", aws_env(moto_url, tmp_path), names)
    for name, secret in DEPLOYMENT_SECRETS.items():
        assert values[name] == secret, name
    database = values["DATABASES"]["default"]
    assert database["ENGINE"] == "audit.backends.postgresql"
    assert (database["HOST"], database["USER"]) == ("db.example.org", "app")
    assert values["EMAIL_HOST"] == "smtp.example.org"
    assert values["EMAIL_HOST_PASSWORD"] == DEPLOYMENT_SECRETS["EMAIL_URL"].split(":")[2].split("@")[0]


def test_check_deploy_is_clean_with_secrets_and_key_rings_from_aws(store, moto_url, tmp_path):
    """Both providers on AWS: the deployment secrets at start, the key rings (their own secret) at use."""
    keys = {purpose: _key(purpose.replace("_", "-")) for purpose in
            ("field", "blind_index", "audit_chain", "backup", "audit_archive", "audit_checkpoint")}
    store.create_secret(Name="prod/ninaivalaigal-keys", SecretString=json.dumps(keys))
    env = aws_env(
        moto_url,
        tmp_path,
        DJANGO_SETTINGS_MODULE="config.settings.production",
        ENCRYPTION_KEY_PROVIDER="aws",
        ENCRYPTION_AWS_SECRET_ID="prod/ninaivalaigal-keys",
        ENCRYPTION_AWS_REGION=AWS_TEST_REGION,
        ENCRYPTION_AWS_ENDPOINT_URL=moto_url,
    )
    for purpose in ("FIELD", "BLIND_INDEX", "AUDIT_CHAIN", "BACKUP", "AUDIT_ARCHIVE"):
        env.pop(f"ENCRYPTION_{purpose}_KEYS")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_stops_naming_the_missing_secret_and_the_provider(store, moto_url, tmp_path):
    store.put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps({k: v for k, v in DEPLOYMENT_SECRETS.items() if k != "SECRET_KEY"})
    )
    assert import_error(aws_env(moto_url, tmp_path)) == (
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set: AWS Secrets Manager secret "
        f"'{SECRET_ID}' (SECRETS_PROVIDER=aws) has no field 'SECRET_KEY', and neither SECRET_KEY nor "
        "SECRET_KEY_FILE is in the environment; production has no default for it."
    )


def test_a_secret_the_document_lacks_may_come_from_the_environment(store, moto_url, tmp_path):
    store.put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps({k: v for k, v in DEPLOYMENT_SECRETS.items() if k != "SECRET_KEY"})
    )
    env = aws_env(moto_url, tmp_path, SECRET_KEY=PRODUCTION_ENV["SECRET_KEY"])
    values = read_settings("config.settings.production", env, ["SECRET_KEY", "API_KEY_HASH_KEY"])
    assert values["SECRET_KEY"] == PRODUCTION_ENV["SECRET_KEY"]
    assert values["API_KEY_HASH_KEY"] == DEPLOYMENT_SECRETS["API_KEY_HASH_KEY"]


def test_a_secret_given_by_the_provider_and_the_environment_is_refused(store, moto_url, tmp_path):
    (tmp_path / "secret_key").write_text(PRODUCTION_ENV["SECRET_KEY"])
    assert import_error(aws_env(moto_url, tmp_path, SECRET_KEY=PRODUCTION_ENV["SECRET_KEY"])) == (
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is given twice, by SECRET_KEY and by AWS Secrets "
        f"Manager secret '{SECRET_ID}' (SECRETS_PROVIDER=aws): keep one."
    )
    assert import_error(aws_env(moto_url, tmp_path, SECRET_KEY_FILE=str(tmp_path / "secret_key"))).endswith(
        "SECRET_KEY is given twice, by SECRET_KEY_FILE and by AWS Secrets Manager secret "
        f"'{SECRET_ID}' (SECRETS_PROVIDER=aws): keep one."
    )


def test_a_missing_provider_secret_stops_the_start(store, moto_url, tmp_path):
    assert import_error(aws_env(moto_url, tmp_path, SECRETS_AWS_SECRET_ID="nowhere")) == (
        "django.core.exceptions.ImproperlyConfigured: Cannot read DATABASE_URL: AWS Secrets Manager secret "
        "'nowhere' does not exist (ResourceNotFoundException)."
    )


def test_a_provider_secret_that_is_not_json_stops_the_start(store, moto_url, tmp_path):
    store.put_secret_value(SecretId=SECRET_ID, SecretString="SECRET_KEY=" + DEPLOYMENT_SECRETS["SECRET_KEY"])
    assert import_error(aws_env(moto_url, tmp_path)).endswith(
        f"Cannot read DATABASE_URL: AWS Secrets Manager secret '{SECRET_ID}' is not a JSON object of strings "
        '({"name": "value", ...}).'
    )


def test_an_unreachable_provider_stops_the_start(store, tmp_path):
    port = free_port()
    assert import_error(aws_env(f"http://127.0.0.1:{port}", tmp_path)).endswith(
        f"Cannot read DATABASE_URL: AWS Secrets Manager at 127.0.0.1:{port} is unreachable for secret "
        f"'{SECRET_ID}' (EndpointConnectionError)."
    )


def test_an_unknown_secrets_provider_is_refused(tmp_path):
    env = clean_env(VAR_DIR=str(tmp_path), **PRODUCTION_ENV, SECRETS_PROVIDER="vault")
    assert import_error(env) == (
        "django.core.exceptions.ImproperlyConfigured: SECRETS_PROVIDER is 'vault'; expected one of environment, aws."
    )


def test_plain_http_to_the_provider_outside_loopback_is_refused_before_any_request(tmp_path):
    env = clean_env(
        VAR_DIR=str(tmp_path), **NOT_SECRET_ENV, **AWS_TEST_ENVIRONMENT, **NO_NETWORK,
        SECRETS_PROVIDER="aws", SECRETS_AWS_REGION=AWS_TEST_REGION, SECRETS_AWS_ENDPOINT_URL="http://10.0.0.5:4566",
    )  # fmt: skip
    assert import_error(env) == (
        "django.core.exceptions.ImproperlyConfigured: Cannot read DATABASE_URL: SECRETS_AWS_ENDPOINT_URL uses "
        "plain http to 10.0.0.5: secrets would cross the network unencrypted; use https (plain http is allowed "
        "only to a loopback address)."
    )


# ---------------------------------------------------------------------------------------------
# secret_from_environment in this process: the document is read once.
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def provider_environment(store, moto_url, monkeypatch):
    for name in AWS_INHERITED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        **AWS_TEST_ENVIRONMENT,
        "SECRETS_PROVIDER": "aws",
        "SECRETS_AWS_SECRET_ID": SECRET_ID,
        "SECRETS_AWS_REGION": AWS_TEST_REGION,
        "SECRETS_AWS_ENDPOINT_URL": moto_url,
    }.items():
        monkeypatch.setenv(name, value)
    for name in DEPLOYMENT_SECRETS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    core_settings.forget_provider_secrets()
    yield store
    core_settings.forget_provider_secrets()


def test_the_provider_secret_is_read_once_per_process(provider_environment):
    assert core_settings.secret_from_environment("SECRET_KEY") == DEPLOYMENT_SECRETS["SECRET_KEY"]
    provider_environment.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps({"SECRET_KEY": "changed"}))
    assert core_settings.secret_from_environment("SECRET_KEY") == DEPLOYMENT_SECRETS["SECRET_KEY"], "read at start"
    core_settings.forget_provider_secrets()
    assert core_settings.secret_from_environment("SECRET_KEY") == "changed"


def test_an_optional_secret_that_nothing_gives_is_empty(provider_environment):
    assert core_settings.secret_from_environment("NOT_IN_THE_DOCUMENT") == ""
    with pytest.raises(ImproperlyConfigured, match="NOT_IN_THE_DOCUMENT is not set: AWS Secrets Manager secret"):
        core_settings.secret_from_environment("NOT_IN_THE_DOCUMENT", required=True)


def test_without_a_region_the_start_stops_naming_the_setting(provider_environment, monkeypatch):
    monkeypatch.delenv("SECRETS_AWS_REGION")
    with pytest.raises(ImproperlyConfigured) as caught:
        core_settings.secret_from_environment("SECRET_KEY", required=True)
    assert str(caught.value) == (
        f"Cannot read SECRET_KEY: No AWS region to read AWS Secrets Manager secret '{SECRET_ID}': set "
        "SECRETS_AWS_REGION (or AWS_REGION)."
    )


def test_the_environment_provider_names_the_variable_and_its_file(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRETS_PROVIDER", raising=False)
    monkeypatch.delenv("SOME_SECRET", raising=False)
    monkeypatch.delenv("SOME_SECRET_FILE", raising=False)
    with pytest.raises(ImproperlyConfigured) as caught:
        core_settings.secret_from_environment("SOME_SECRET", required=True)
    assert str(caught.value) == (
        "Set the SOME_SECRET environment variable (or SOME_SECRET_FILE); production has no default for it."
    )
    monkeypatch.setenv("SOME_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(ImproperlyConfigured) as caught:
        core_settings.secret_from_environment("SOME_SECRET", required=True)
    assert str(caught.value) == (
        f"SOME_SECRET_FILE points at '{tmp_path / 'absent'}', which cannot be read: No such file or directory"
    )
