"""The deployment policy of the ground floor: named relaxations, HSTS, and plain-http endpoints."""

from __future__ import annotations

import pytest

from core import conf
from core.checks import check_deployment_policy
from core.secret_stores import endpoint_problem


def _ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_the_test_settings_pass_the_policy():
    assert check_deployment_policy() == []


@pytest.mark.parametrize("relaxations", [("short-hsts", "no-https"), "short-hsts", None])
def test_an_unknown_relaxation_is_refused(settings, relaxations):
    settings.SECURITY_RELAXATIONS = relaxations
    messages = check_deployment_policy()
    assert _ids(messages) == ["core.E001"]


def test_a_string_is_not_a_list_of_relaxations(settings):
    """A bare string would otherwise relax every item whose name it happens to contain."""
    settings.SECURITY_RELAXATIONS = "short-hsts"
    assert conf.relaxed("short-hsts") is False


def test_relaxed_names_only_known_items(settings):
    with pytest.raises(ValueError, match="Unknown relaxation 'no-https'"):
        conf.relaxed("no-https")


@pytest.mark.parametrize(("seconds", "refused"), [(0, False), (3600, True), (31535999, True), (31536000, False)])
def test_hsts_shorter_than_a_year_is_refused(settings, seconds, refused):
    settings.SECURE_HSTS_SECONDS = seconds
    messages = check_deployment_policy()
    assert _ids(messages) == (["core.E002"] if refused else [])
    if refused:
        assert messages[0].msg == f"SECURE_HSTS_SECONDS is {seconds}: production needs at least 31536000 (one year)."


def test_short_hsts_is_allowed_where_relaxed(settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURITY_RELAXATIONS = ("short-hsts",)
    assert check_deployment_policy() == []


@pytest.mark.parametrize(
    "url",
    ["https://secretsmanager.eu-west-1.amazonaws.com", "http://127.0.0.1:4566", "http://localhost:4566",
     "http://[::1]:4566", "http://127.8.9.10"],
)  # fmt: skip
def test_https_and_plain_http_to_loopback_are_allowed(url):
    assert endpoint_problem(url, setting="X_URL") is None


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:4566", "http://172.16.3.4", "http://192.168.1.10:8200", "http://[fd12:3456::1]:8200"]
)
def test_plain_http_to_a_private_network_address_is_allowed_only_where_relaxed(url):
    assert endpoint_problem(url, setting="X_URL", private_network_allowed=True) is None
    assert "uses plain http" in endpoint_problem(url, setting="X_URL")


@pytest.mark.parametrize(
    "url", ["http://198.51.100.7", "http://vault.internal:8200", "http://10.0.0.5.example.org", "http://169.254.169.254"]
)
def test_plain_http_to_a_public_address_or_any_host_name_is_always_refused(url):
    assert "uses plain http" in endpoint_problem(url, setting="X_URL", private_network_allowed=True)


@pytest.mark.parametrize("url", ["ftp://10.0.0.5", "10.0.0.5:4566", "https://", ""])
def test_anything_but_an_http_url_is_refused(url):
    assert endpoint_problem(url, setting="X_URL") == "X_URL must be an https:// URL."


def test_the_message_names_the_host_but_never_a_credential_in_the_url():
    message = endpoint_problem("http://user:hunter2-password@10.0.0.5:4566/path?token=abc", setting="X_URL")
    assert message == (
        "X_URL uses plain http to 10.0.0.5: secrets would cross the network unencrypted; use https (plain http is "
        "allowed only to a loopback address)."
    )


# ---------------------------------------------------------------------------------------------
# How AWS's error answers read (the shapes botocore parses from AWS; moto_server gives some of them
# in tests/encryption/test_aws.py, AWS's JSON refusal it cannot).
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "status", "message", "kind"),
    [
        ("AccessDeniedException", 400, "AWS Secrets Manager refused to read secret 'prod/app' (AccessDeniedException).",
         "refused"),
        ("DecryptionFailure", 400, "AWS Secrets Manager refused to read secret 'prod/app' (DecryptionFailure).",
         "refused"),
        ("403", 403, "AWS Secrets Manager refused to read secret 'prod/app' (HTTP 403).", "refused"),
        ("ResourceNotFoundException", 400,
         "AWS Secrets Manager secret 'prod/app' does not exist (ResourceNotFoundException).", "missing"),
        ("InternalServiceError", 500, "AWS Secrets Manager failed reading secret 'prod/app' (InternalServiceError).",
         "failed"),
    ],
)  # fmt: skip
def test_aws_error_answers_name_the_code_never_the_message(code, status, message, kind):
    from core.secret_stores import client_error

    response = {
        "Error": {"Code": code, "Message": "User: arn:aws:iam::123456789012:user/app is not authorized"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    error = client_error("prod/app", response)
    assert (str(error), error.code) == (message, kind)


def test_an_unreachable_aws_is_named_by_its_endpoint_or_region():
    from core.secret_stores import _where

    assert _where("https://vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com", "eu-west-1") == (
        " at vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com"
    )
    assert _where("http://user:password@127.0.0.1:4566/x", "") == " at 127.0.0.1:4566"
    assert _where("", "eu-west-1") == " (region eu-west-1)"
