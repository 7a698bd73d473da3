"""Secret stores: one AWS Secrets Manager secret read as a JSON object, and the endpoint policy.

Ground floor (Django and libraries only; boto3 is imported when a store is used). Two callers
share it: the deployment secrets, read once when the settings load (``core/settings.py``), and
the encryption key rings, read at use (``encryption/keyring.py``).

Credentials come from boto3's own chain (environment variables, the shared config and
credentials files, SSO, a container or instance role), never from our settings: no setting of
this project holds an AWS credential. Every failure is one ``SecretStoreError`` whose message is
one line naming the store and the secret id and, for a refusal, AWS's error code; never a value,
a credential, or AWS's own message (which names the caller's identity). OWASP ASVS 4.0.3 V7.1.1.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import urllib.parse

AWS_SECRETS_MANAGER = "AWS Secrets Manager"
# A refused read is "refused"; the codes below mean something else to an operator.
_MISSING_CODES = {"ResourceNotFoundException"}
_REFUSED_CODES = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "DecryptionFailure",
}
# RFC 1918 and RFC 4193 (unique local) networks: what "a private network" means for plain HTTP.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network) for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


class SecretStoreError(Exception):
    """A secret store could not give the secret; ``code`` says why.

    ``code``: ``"missing"`` (no such secret), ``"malformed"`` (not a JSON object of strings),
    ``"refused"`` (AWS refused the caller), ``"unreachable"`` (no answer), ``"configuration"``
    (no region, no credentials, an endpoint the policy refuses) or ``"failed"`` (anything else).
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def describe_aws_secret(secret_id: str) -> str:
    """How messages name an AWS secret: ``AWS Secrets Manager secret 'prod/app'``."""
    return f"{AWS_SECRETS_MANAGER} secret {secret_id!r}"


# ---------------------------------------------------------------------------------------------
# Endpoint policy: a store reached over plain HTTP carries every secret unencrypted.
# ---------------------------------------------------------------------------------------------
def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    address = _address(host)
    return host == "localhost" or (address is not None and address.is_loopback)


def is_private_network_address(host: str) -> bool:
    """Whether ``host`` is an IP address of a private network (RFC 1918, RFC 4193); never a name.

    A host name is never private: what it resolves to can change after the check.
    """
    address = _address(host)
    return address is not None and any(address in network for network in PRIVATE_NETWORKS)


def endpoint_problem(url: str, *, setting: str, private_network_allowed: bool = False) -> str | None:
    """Why the endpoint ``url`` (of ``setting``) is refused, or ``None`` if it may be used.

    https is always allowed; plain http only to a loopback address, or, when
    ``private_network_allowed`` (the staging relaxation ``plain-http-to-private-network``), to an
    IP address of a private network. The message names the setting and the host, never the rest
    of the URL (which could carry a credential).
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return None
    if parts.scheme != "http" or not host:
        return f"{setting} must be an https:// URL."
    if is_loopback(host) or (private_network_allowed and is_private_network_address(host)):
        return None
    allowed = "a loopback address" + (" or a private network's IP address" if private_network_allowed else "")
    return (
        f"{setting} uses plain http to {host}: secrets would cross the network unencrypted; use https "
        f"(plain http is allowed only to {allowed})."
    )


def _where(endpoint_url: str, region: str) -> str:
    if endpoint_url:
        parts = urllib.parse.urlsplit(endpoint_url)
        return f" at {parts.hostname}:{parts.port}" if parts.port else f" at {parts.hostname}"
    return f" (region {region})" if region else ""


# ---------------------------------------------------------------------------------------------
# AWS Secrets Manager
# ---------------------------------------------------------------------------------------------
_clients: dict[tuple[str, str, float], object] = {}
_clients_lock = threading.Lock()


def _client(*, region: str, endpoint_url: str, timeout: float):
    """A Secrets Manager client per (region, endpoint, timeout), built once (about 50 ms each)."""
    import boto3
    from botocore.config import Config

    key = (region, endpoint_url, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            # A session of its own: boto3's default session is not safe to share between threads.
            session = boto3.session.Session(region_name=region or None)
            client = session.client(
                "secretsmanager",
                endpoint_url=endpoint_url or None,
                config=Config(
                    connect_timeout=timeout,
                    read_timeout=timeout,
                    # One retry: a caller that resolves at use retries itself (encryption/keyring.py).
                    retries={"mode": "standard", "max_attempts": 2},
                ),
            )
            _clients[key] = client
        return client


def forget_clients() -> None:
    """Drop the cached clients, so the next read picks up changed credentials or settings."""
    with _clients_lock:
        _clients.clear()


def client_error(secret_id: str, response: dict) -> SecretStoreError:
    """The ``SecretStoreError`` for AWS's error answer ``response`` (botocore's parsed form).

    AWS's error code is named; only the HTTP status when the answer carried none that botocore
    could read (moto_server answers IAM refusals in XML, for one). AWS's message is left out.
    """
    secret = describe_aws_secret(secret_id)
    code = str(response.get("Error", {}).get("Code") or "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    label = code if code and not code.isdigit() else f"HTTP {status or code}"
    if code in _MISSING_CODES:
        return SecretStoreError(f"{secret} does not exist ({label}).", code="missing")
    if code in _REFUSED_CODES or status in (401, 403):
        message = f"{AWS_SECRETS_MANAGER} refused to read secret {secret_id!r} ({label})."
        return SecretStoreError(message, code="refused")
    return SecretStoreError(f"{AWS_SECRETS_MANAGER} failed reading secret {secret_id!r} ({label}).", code="failed")


def read_aws_json_secret(
    secret_id: str, *, region: str = "", endpoint_url: str = "", timeout: float = 5.0, region_setting: str
) -> dict[str, str]:
    """Return the SecretString of ``secret_id`` (its current version) parsed as a JSON object.

    ``region`` empty: boto3's own (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile);
    ``endpoint_url`` empty: AWS's endpoint of the region; ``region_setting`` is named in the
    message when there is no region. Raise ``SecretStoreError`` (one line) on any failure.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    secret = describe_aws_secret(secret_id)
    try:
        client = _client(region=region, endpoint_url=endpoint_url, timeout=timeout)
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as error:
        raise client_error(secret_id, error.response) from None
    except NoRegionError:
        raise SecretStoreError(
            f"No AWS region to read {secret}: set {region_setting} (or AWS_REGION).", code="configuration"
        ) from None
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise SecretStoreError(
            f"No AWS credentials to read {secret}: boto3's chain (environment, shared files, container or "
            f"instance role) gave none ({type(error).__name__}).",
            code="configuration",
        ) from None
    except (ConnectionError, HTTPClientError) as error:
        raise SecretStoreError(
            f"{AWS_SECRETS_MANAGER}{_where(endpoint_url, region)} is unreachable for secret {secret_id!r} "
            f"({type(error).__name__}).",
            code="unreachable",
        ) from None
    except BotoCoreError as error:
        raise SecretStoreError(
            f"{AWS_SECRETS_MANAGER} failed reading secret {secret_id!r} ({type(error).__name__}).", code="failed"
        ) from None
    text = response.get("SecretString")
    if text is None:
        raise SecretStoreError(f"{secret} holds no SecretString (a binary secret is not read).", code="malformed")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not all(isinstance(value, str) for value in document.values()):
        raise SecretStoreError(
            f'{secret} is not a JSON object of strings ({{"name": "value", ...}}).', code="malformed"
        )
    return document
