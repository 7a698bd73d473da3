"""System checks that refuse an unsafe key configuration (registered in ``EncryptionConfig.ready``).

Every environment gets the structural checks (a key ring per purpose that exists, parses, has no
duplicated id and shares no key with another purpose), because no environment can work without
them. The public development keys are refused unless ``DEBUG`` is on or the settings set
``ENCRYPTION_DEVELOPMENT_KEYS_ALLOWED`` (only ``config.settings.test`` does; it is not read from
the environment, so an operator cannot switch it on by accident in production).

A key provider's endpoint (``ENCRYPTION_AWS_ENDPOINT_URL``, ``ENCRYPTION_VAULT_URL``) over plain
http is refused unless it is a loopback address (or, where the settings relax
``plain-http-to-private-network``, a private network's IP address), whichever provider is in use;
the providers themselves refuse it before any request (``encryption/keyring.py``).

Messages name purposes, key ids and settings, never key material (OWASP ASVS 4.0.3 V7.1.1).
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from core import conf as core_conf
from core.secret_stores import endpoint_problem
from encryption import conf
from encryption.errors import KeyConfigurationError
from encryption.keyring import (
    PROVIDERS,
    PURPOSES,
    is_development_key,
    load_key_ring,
    load_legacy_fernet,
    provider_name,
)

_IDS_BY_CODE = {
    "missing": "encryption.E002",
    "malformed": "encryption.E003",
    "duplicate": "encryption.E004",
    "provider": "encryption.E007",
    "insecure": "encryption.E009",
}
# The endpoint setting of each provider that has one.
_ENDPOINT_SETTINGS = {"aws": "ENCRYPTION_AWS_ENDPOINT_URL", "vault": "ENCRYPTION_VAULT_URL"}
_HINTS = {
    "missing": "Create a key with `manage.py encryption_keys generate` and configure it for this purpose.",
    "malformed": "Each key is id:BASE64 of 32 random bytes; `manage.py encryption_keys generate` makes one.",
    "duplicate": "Give every key of a ring its own id.",
    "provider": "Check that the key provider (file, Vault, AWS Secrets Manager) is reachable and the credentials "
    "are valid.",
}


def check_encryption_keys(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Refuse a missing, malformed, duplicated, shared or (outside DEBUG) development key."""
    name = provider_name()
    if name not in PROVIDERS:
        return [
            checks.Error(
                f"ENCRYPTION_KEY_PROVIDER is {name!r}.",
                hint=f"Use one of: {', '.join(PROVIDERS)}.",
                id="encryption.E001",
            )
        ]
    refused = _refused_endpoints()
    errors: list[checks.CheckMessage] = list(refused.values())
    if _ENDPOINT_SETTINGS.get(name) in refused:
        return errors  # The provider refuses to read its keys from there: nothing to load.
    development_allowed = settings.DEBUG or conf.get("ENCRYPTION_DEVELOPMENT_KEYS_ALLOWED")
    owner_of_material: dict[bytes, str] = {}
    for purpose in PURPOSES:
        try:
            ring = load_key_ring(purpose)
        except KeyConfigurationError as error:
            errors.append(
                checks.Error(
                    f"Encryption key ring {purpose!r}: {error}",
                    hint=_HINTS.get(error.code),
                    id=_IDS_BY_CODE.get(error.code, "encryption.E003"),
                )
            )
            continue
        for key in ring:
            if is_development_key(key) and not development_allowed:
                errors.append(
                    checks.Error(
                        f"Encryption key {key.id!r} of the {purpose!r} ring is a public development key.",
                        hint="Generate real keys with `manage.py encryption_keys generate`; the development keys "
                        "are published in the repository.",
                        id="encryption.E005",
                    )
                )
            other = owner_of_material.setdefault(key.material, purpose)
            if other != purpose:
                errors.append(
                    checks.Error(
                        f"Encryption key {key.id!r} of the {purpose!r} ring is also a key of the {other!r} ring.",
                        hint="Each purpose needs its own keys, so that one leaked key exposes one purpose only.",
                        id="encryption.E006",
                    )
                )
    try:
        load_legacy_fernet()
    except KeyConfigurationError as error:
        errors.append(
            checks.Error(str(error), hint="Fernet keys are url-safe base64 of 32 bytes.", id="encryption.E008")
        )
    if name == "vault":
        url = conf.get("ENCRYPTION_VAULT_URL") or ""
        # Plain http that the policy allows (loopback; a private network where relaxed) still warns.
        if url.startswith("http://") and not settings.DEBUG:
            errors.append(
                checks.Warning(
                    "ENCRYPTION_VAULT_URL uses plain HTTP: the Vault token and the keys cross the network unencrypted.",
                    hint="Use https:// (and ENCRYPTION_VAULT_CA_FILE for a private CA).",
                    id="encryption.W001",
                )
            )
    return errors


def _refused_endpoints() -> dict[str, checks.CheckMessage]:
    """E009 per key provider endpoint setting that uses plain http where the policy refuses it."""
    private_network_allowed = core_conf.relaxed("plain-http-to-private-network")
    errors = {}
    for setting in _ENDPOINT_SETTINGS.values():
        url = conf.get(setting) or ""
        problem = url and endpoint_problem(url, setting=setting, private_network_allowed=private_network_allowed)
        if problem:
            errors[setting] = checks.Error(
                problem,
                hint="Give the key provider an https:// endpoint (ENCRYPTION_VAULT_CA_FILE for a private CA).",
                id="encryption.E009",
            )
    return errors
