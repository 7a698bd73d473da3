"""The aws key provider against a real moto_server process (AWS's Secrets Manager and IAM APIs on the wire).

Nothing of boto3 is mocked: the provider's own client talks HTTP to the server, which answers with
AWS's error codes; credentials come from boto3's chain (here the environment variables that
``AWS_TEST_ENVIRONMENT`` sets), never from a setting.
"""

from __future__ import annotations

import json
import time

import pytest

from core import secret_stores
from encryption import keyring
from encryption.checks import check_encryption_keys
from encryption.crypto import token_key_id
from encryption.errors import KeyConfigurationError, KeyProviderError
from encryption.keyring import PURPOSES, get_key_ring, invalidate_key_cache
from tests.encryption.helpers import make_key, raw_value, ring
from tests.support.servers import (
    AWS_INHERITED_VARIABLES,
    AWS_TEST_ENVIRONMENT,
    AWS_TEST_REGION,
    aws_client,
    free_port,
    moto_enforce_iam,
    moto_reset,
    moto_server,
)
from tests.testapp.models import SecretRecord

SECRET_ID = "ninaivalaigal/encryption"


class Store:
    """The moto server's Secrets Manager, as a test sees it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = aws_client(url, "secretsmanager")
        self.keys = {purpose: make_key(f"v1-{purpose.replace('_', '-')}") for purpose in PURPOSES}
        self.client.create_secret(Name=SECRET_ID, SecretString=json.dumps(self.keys))

    def put(self, secret_string: str) -> None:
        """A new current version of the key secret, as an operator's rotation writes it."""
        self.client.put_secret_value(SecretId=SECRET_ID, SecretString=secret_string)


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


@pytest.fixture
def aws_environment(monkeypatch):
    """boto3's chain finds the test credentials in the environment, and nothing of this machine's."""
    for name in AWS_INHERITED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(moto_url, aws_environment, settings) -> Store:
    moto_reset(moto_url)
    store = Store(moto_url)
    settings.ENCRYPTION_KEY_PROVIDER = "aws"
    settings.ENCRYPTION_AWS_SECRET_ID = SECRET_ID
    settings.ENCRYPTION_AWS_REGION = AWS_TEST_REGION
    settings.ENCRYPTION_AWS_ENDPOINT_URL = moto_url
    return store


def _provider_error(purpose: str = "field", error_class=KeyProviderError) -> KeyConfigurationError:
    invalidate_key_cache()
    with pytest.raises(error_class) as caught:
        get_key_ring(purpose)
    return caught.value


def _assert_safe(message: str, store: Store) -> None:
    """One line, and no key, key material or credential in it."""
    assert "\n" not in message
    for text in store.keys.values():
        assert text.split(":", 1)[1] not in message
    assert AWS_TEST_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"] not in message
    assert AWS_TEST_ENVIRONMENT["AWS_ACCESS_KEY_ID"] not in message


def test_aws_provider_reads_every_purpose_from_one_secret(aws):
    for purpose in PURPOSES:
        assert get_key_ring(purpose).ids == [f"v1-{purpose.replace('_', '-')}"]
    assert get_key_ring("field").source == f"field 'field' of AWS Secrets Manager secret '{SECRET_ID}'"


@pytest.mark.django_db
def test_a_rotated_primary_key_is_used_once_the_cache_expires(aws, monkeypatch):
    """Encrypt with a field, rotate the primary in the secret: new writes use it after the cache time."""
    before = SecretRecord.objects.create(note="written under v1")
    assert token_key_id(raw_value(SecretRecord, before.pk, "note")) == "v1-field"

    aws.put(json.dumps({**aws.keys, "field": ring(make_key("v2-field"), aws.keys["field"])}))
    cached = SecretRecord.objects.create(note="still within the cache time")
    assert token_key_id(raw_value(SecretRecord, cached.pk, "note")) == "v1-field", "served from the cache"

    real_monotonic = keyring.time.monotonic
    monkeypatch.setattr(keyring.time, "monotonic", lambda: real_monotonic() + 61)
    after = SecretRecord.objects.create(note="written under v2")
    assert token_key_id(raw_value(SecretRecord, after.pk, "note")) == "v2-field"
    assert [SecretRecord.objects.get(pk=pk).note for pk in (before.pk, cached.pk, after.pk)] == [
        "written under v1",
        "still within the cache time",
        "written under v2",
    ]


@pytest.mark.django_db
def test_a_rotated_primary_key_is_used_at_once_after_the_cache_is_cleared(aws):
    assert get_key_ring("field").primary.id == "v1-field"
    aws.put(json.dumps({**aws.keys, "field": ring(make_key("v2-field"), aws.keys["field"])}))
    invalidate_key_cache()
    record = SecretRecord.objects.create(note="after the rotation")
    assert token_key_id(raw_value(SecretRecord, record.pk, "note")) == "v2-field"


# ---------------------------------------------------------------------------------------------
# Each failure: one line naming the provider and the secret, never a key or a credential.
# ---------------------------------------------------------------------------------------------
def test_a_missing_secret(aws, settings):
    settings.ENCRYPTION_AWS_SECRET_ID = "nowhere/encryption"
    error = _provider_error()
    assert str(error) == "AWS Secrets Manager secret 'nowhere/encryption' does not exist (ResourceNotFoundException)."
    assert error.code == "missing"


def test_a_secret_that_is_not_json(aws):
    aws.put("field=v1-field:not-json")
    error = _provider_error()
    assert str(error) == (
        f"AWS Secrets Manager secret '{SECRET_ID}' is not a JSON object of strings "
        '({"name": "value", ...}).'
    )
    assert error.code == "malformed"


def test_a_secret_that_is_json_but_not_an_object_of_strings(aws):
    aws.put(json.dumps([aws.keys["field"]]))
    assert "is not a JSON object of strings" in str(_provider_error())
    aws.put(json.dumps({"field": {"nested": aws.keys["field"]}}))
    assert "is not a JSON object of strings" in str(_provider_error())


def test_a_binary_secret(aws, settings):
    aws.client.create_secret(Name="binary/encryption", SecretBinary=b"\x00\x01")
    settings.ENCRYPTION_AWS_SECRET_ID = "binary/encryption"
    assert str(_provider_error()) == (
        "AWS Secrets Manager secret 'binary/encryption' holds no SecretString (a binary secret is not read)."
    )


def test_a_secret_that_lacks_the_purpose(aws):
    aws.put(json.dumps({"field": aws.keys["field"]}))
    error = _provider_error("backup")
    assert str(error) == (
        f"No backup key: field 'backup' of AWS Secrets Manager secret '{SECRET_ID}' is missing or empty."
    )
    assert error.code == "missing"
    assert get_key_ring("field").ids == ["v1-field"]


def test_aws_refuses_a_caller_without_permission(aws, monkeypatch):
    iam = aws_client(aws.url, "iam")
    iam.create_user(UserName="no-permissions")
    access_key = iam.create_access_key(UserName="no-permissions")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", access_key["SecretAccessKey"])
    moto_enforce_iam(aws.url)
    error = _provider_error()
    # AWS answers AccessDeniedException in JSON; moto answers in XML, which botocore reads as the status only.
    assert str(error) == f"AWS Secrets Manager refused to read secret '{SECRET_ID}' (HTTP 403)."
    assert error.code == "provider"
    assert access_key["SecretAccessKey"] not in str(error) and "arn:aws" not in str(error)
    _assert_safe(str(error), aws)


def test_aws_refuses_credentials_it_does_not_know(aws):
    moto_enforce_iam(aws.url)
    error = _provider_error()
    assert str(error) == f"AWS Secrets Manager refused to read secret '{SECRET_ID}' (HTTP 403)."
    assert "arn:aws" not in str(error), "AWS's own message, which names the caller, is left out"
    _assert_safe(str(error), aws)


def test_an_unreachable_endpoint(aws, settings):
    port = free_port()  # nothing listens there
    settings.ENCRYPTION_AWS_ENDPOINT_URL = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    error = _provider_error()
    assert str(error) == (
        f"AWS Secrets Manager at 127.0.0.1:{port} is unreachable for secret '{SECRET_ID}' (EndpointConnectionError)."
    )
    assert error.code == "provider"
    assert time.monotonic() - started < 10, "one retry, short timeouts"


def test_no_credentials_in_boto3s_chain(aws, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert str(_provider_error()) == (
        f"No AWS credentials to read AWS Secrets Manager secret '{SECRET_ID}': boto3's chain (environment, "
        "shared files, container or instance role) gave none (NoCredentialsError)."
    )


def test_no_region(aws, settings):
    settings.ENCRYPTION_AWS_REGION = ""  # and no AWS_REGION in the environment
    assert str(_provider_error()) == (
        f"No AWS region to read AWS Secrets Manager secret '{SECRET_ID}': set ENCRYPTION_AWS_REGION (or AWS_REGION)."
    )


def test_no_secret_id(aws, settings):
    settings.ENCRYPTION_AWS_SECRET_ID = ""
    error = _provider_error(error_class=KeyConfigurationError)
    assert str(error) == "ENCRYPTION_KEY_PROVIDER is 'aws' but ENCRYPTION_AWS_SECRET_ID is not set."


@pytest.fixture
def no_request(monkeypatch):
    """A tripwire: building an AWS client fails the test (so a refused endpoint is never contacted)."""

    def refuse(**kwargs):
        raise AssertionError(f"an AWS client was built for {kwargs['endpoint_url']}")

    monkeypatch.setattr(secret_stores, "_client", refuse)


def test_plain_http_outside_loopback_is_refused_before_any_request(aws, settings, no_request):
    settings.ENCRYPTION_AWS_ENDPOINT_URL = "http://10.0.0.5:4566"
    error = _provider_error(error_class=KeyConfigurationError)
    assert str(error) == (
        "ENCRYPTION_AWS_ENDPOINT_URL uses plain http to 10.0.0.5: secrets would cross the network unencrypted; "
        "use https (plain http is allowed only to a loopback address)."
    )
    assert error.code == "insecure"
    assert not isinstance(error, KeyProviderError), "a configuration error: no ring is kept over it"


def test_the_staging_relaxation_allows_plain_http_to_a_private_network_address_only(aws, settings, no_request):
    settings.SECURITY_RELAXATIONS = ("plain-http-to-private-network",)
    settings.ENCRYPTION_AWS_ENDPOINT_URL = "http://10.0.0.5:4566"
    with pytest.raises(AssertionError, match="an AWS client was built for http://10.0.0.5:4566"):
        get_key_ring("field")
    for refused in ("http://198.51.100.7:4566", "http://secretsmanager.internal:4566"):
        settings.ENCRYPTION_AWS_ENDPOINT_URL = refused
        error = _provider_error(error_class=KeyConfigurationError)
        assert error.code == "insecure"
        assert str(error).endswith(
            "(plain http is allowed only to a loopback address or a private network's IP address)."
        )


def test_an_aws_failure_after_the_ring_is_resolved_keeps_serving_it(aws, monkeypatch):
    assert get_key_ring("field").ids == ["v1-field"]
    moto_enforce_iam(aws.url)  # every request is refused from now on
    real_monotonic = keyring.time.monotonic
    monkeypatch.setattr(keyring.time, "monotonic", lambda: real_monotonic() + 3600)
    assert get_key_ring("field").ids == ["v1-field"], "an outage or refusal does not take the keys away"


# ---------------------------------------------------------------------------------------------
# The system checks with the aws provider.
# ---------------------------------------------------------------------------------------------
def test_checks_pass_with_the_aws_provider_and_report_its_failures(aws, settings):
    settings.ENCRYPTION_DEVELOPMENT_KEYS_ALLOWED = False
    assert check_encryption_keys() == []

    aws.put(json.dumps({**aws.keys, "backup": ""}))
    invalidate_key_cache()
    messages = check_encryption_keys()
    assert [message.id for message in messages] == ["encryption.E002"]
    assert "field 'backup' of AWS Secrets Manager secret" in messages[0].msg

    aws.put("not json")
    invalidate_key_cache()
    assert {message.id for message in check_encryption_keys()} == {"encryption.E003"}

    moto_enforce_iam(aws.url)
    invalidate_key_cache()
    assert {message.id for message in check_encryption_keys()} == {"encryption.E007"}


def test_checks_refuse_a_plain_http_endpoint_without_contacting_it(aws, settings, no_request):
    settings.ENCRYPTION_AWS_ENDPOINT_URL = "http://10.0.0.5:4566"
    messages = check_encryption_keys()
    assert [message.id for message in messages] == ["encryption.E009"]
    assert "ENCRYPTION_AWS_ENDPOINT_URL uses plain http to 10.0.0.5" in messages[0].msg
