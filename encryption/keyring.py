"""The key ring: an ordered set of named keys per purpose. The first key encrypts, all decrypt.

Purposes (``PURPOSES``) never share keys, so one leaked key exposes one kind of data. Keys come
from ``ENCRYPTION_KEY_PROVIDER`` (``environment``, ``file``, ``vault`` or ``aws``, each holding
``id:BASE64KEY`` text per purpose) and are resolved when used, then cached for
``ENCRYPTION_KEY_CACHE_SECONDS``: a new primary key reaches every process without a restart
(the environment provider excepted). Crypto core: Django, cryptography, hvac (lazily),
``core`` (its settings and ``core.secret_stores``, which imports boto3 lazily),
``encryption.errors`` and its settings (``encryption.conf``) only.
Why: docs/decisions/key-ring.md; the providers: docs/encryption.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.signals import setting_changed

from core import conf as core_conf
from core import secret_stores
from encryption import conf
from encryption.errors import KeyConfigurationError, KeyProviderError, UnknownKeyError

logger = logging.getLogger(__name__)

PURPOSES = ("field", "blind_index", "audit_chain", "backup", "audit_archive", "audit_checkpoint")
PROVIDERS = ("environment", "file", "vault", "aws")
# AES-256-GCM and HMAC-SHA256 keys: 32 random bytes (NIST SP 800-38D, RFC 2104 §3); an
# audit_checkpoint key is the 32-byte seed of an Ed25519 signing key (RFC 8032 §5.1.5).
KEY_LENGTH = 32
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The key id under which ``encryption_keys status`` counts django-encrypted-model-fields tokens.
LEGACY_FERNET_KEY_ID = "legacy-fernet"
# After a failed refresh (provider unreachable) the previous ring is kept this long (seconds)
# before the provider is asked again, so an outage of Vault or AWS does not stop reads and writes.
PROVIDER_RETRY_SECONDS = 5.0


class Key:
    """One named 32-byte key with its AES-GCM and HMAC objects built once (never per call).

    ``repr`` and ``str`` show the id only: key material must never reach a log line.
    """

    __slots__ = ("_hmac", "aead", "id", "material")

    def __init__(self, key_id: str, material: bytes) -> None:
        self.id = key_id
        self.material = material
        self.aead = AESGCM(material)
        self._hmac = hmac.new(material, digestmod=hashlib.sha256)

    def hmac_sha256_hex(self, data: bytes) -> str:
        """Return HMAC-SHA256(key, data) in hex (RFC 2104), from a copy of a prepared state."""
        mac = self._hmac.copy()
        mac.update(data)
        return mac.hexdigest()

    def __repr__(self) -> str:
        return f"<Key {self.id}>"

    __str__ = __repr__


class KeyRing:
    """The keys of one purpose, in order: ``primary`` (the first) encrypts, all decrypt."""

    __slots__ = ("_by_id", "keys", "primary", "purpose", "source")

    def __init__(self, purpose: str, keys: list[Key] | tuple[Key, ...], *, source: str = "") -> None:
        if not keys:
            raise KeyConfigurationError(f"No {purpose} key is configured ({source}).", purpose=purpose, code="missing")
        by_id: dict[str, Key] = {}
        for key in keys:
            if key.id in by_id:
                raise KeyConfigurationError(
                    f"Key id {key.id!r} appears twice in the {purpose} key ring ({source}).",
                    purpose=purpose,
                    code="duplicate",
                )
            by_id[key.id] = key
        self.purpose = purpose
        self.keys = tuple(keys)
        self.primary = self.keys[0]
        self.source = source
        self._by_id = by_id

    @property
    def ids(self) -> list[str]:
        """The key ids, primary first."""
        return [key.id for key in self.keys]

    def get(self, key_id: str) -> Key:
        """Return the key named ``key_id``; raise ``UnknownKeyError`` if the ring lacks it."""
        try:
            return self._by_id[key_id]
        except KeyError:
            raise UnknownKeyError(
                f"the {self.purpose} key ring has no such key (missing, or retired too early)", key_id=key_id
            ) from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._by_id

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"<KeyRing {self.purpose}: {', '.join(self.ids)}>"


# ---------------------------------------------------------------------------------------------
# Key text: "id:BASE64KEY" entries separated by commas or new lines.
# ---------------------------------------------------------------------------------------------
def new_key_id() -> str:
    """Return a fresh key id: the UTC date and 6 random hex digits, e.g. ``20261128-a1b2c3``."""
    return f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


def generate_key_material() -> bytes:
    """Return 32 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_LENGTH)


def format_key(key_id: str, material: bytes) -> str:
    """Return the ``id:BASE64KEY`` text of one key, as the providers expect it."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise ValueError("A key id is 1 to 64 letters, digits, '-' or '_'.")
    return f"{key_id}:{base64.b64encode(material).decode('ascii')}"


def _decode_key_material(encoded: str) -> bytes:
    # Standard or URL-safe alphabet, padding optional: operators paste keys from many tools.
    text = encoded.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    return binascii.a2b_base64(text, strict_mode=True)


def parse_key_ring(text: str, *, purpose: str, source: str) -> KeyRing:
    """Parse ``id:BASE64KEY`` entries (commas or lines; ``#`` comments) into a ``KeyRing``.

    Error messages name the entry's position and id, never the key material.
    """
    entries: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        entries.extend(part.strip() for part in line.split(",") if part.strip())
    keys = []
    for position, entry in enumerate(entries, start=1):
        key_id, separator, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not separator or not encoded.strip():
            raise KeyConfigurationError(
                f"Entry {position} of the {purpose} key ring ({source}) is not of the form id:BASE64KEY.",
                purpose=purpose,
            )
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise KeyConfigurationError(
                f"Entry {position} of the {purpose} key ring ({source}) has an invalid key id: use 1 to 64 "
                "letters, digits, '-' or '_'.",
                purpose=purpose,
            )
        try:
            material = _decode_key_material(encoded)
        except (binascii.Error, ValueError):
            raise KeyConfigurationError(
                f"Key {key_id!r} of the {purpose} key ring ({source}) is not valid base64.", purpose=purpose
            ) from None
        if len(material) != KEY_LENGTH:
            raise KeyConfigurationError(
                f"Key {key_id!r} of the {purpose} key ring ({source}) is {len(material)} bytes; it must be "
                f"{KEY_LENGTH} (make one with: manage.py encryption_keys generate).",
                purpose=purpose,
            )
        keys.append(Key(key_id, material))
    return KeyRing(purpose, keys, source=source)


# ---------------------------------------------------------------------------------------------
# Development keys: public (they are in config/settings/test.py), so production refuses them.
# ---------------------------------------------------------------------------------------------
def development_key_material(purpose: str) -> bytes:
    """Return the fixed, public development key of ``purpose`` (SHA-256 of a known phrase)."""
    return hashlib.sha256(f"ninaivalaigal development key: {purpose}".encode()).digest()


_DEVELOPMENT_MATERIAL = frozenset(development_key_material(purpose) for purpose in PURPOSES)


def is_development_key(key: Key) -> bool:
    """Whether ``key`` is one of the public development keys."""
    return key.material in _DEVELOPMENT_MATERIAL


# ---------------------------------------------------------------------------------------------
# Providers
# ---------------------------------------------------------------------------------------------
def provider_name() -> str:
    """The configured provider (``ENCRYPTION_KEY_PROVIDER``, default ``environment``)."""
    return conf.get("ENCRYPTION_KEY_PROVIDER") or "environment"


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown key purpose {purpose!r}; expected one of {', '.join(PURPOSES)}.")


def _read_environment(purpose: str) -> tuple[str, str]:
    setting = f"ENCRYPTION_{purpose.upper()}_KEYS"
    value = conf.get(setting) or ""
    if isinstance(value, list | tuple):
        value = ",".join(value)
    return value, f"setting {setting}"


def _read_file(purpose: str) -> tuple[str, str]:
    directory = conf.get("ENCRYPTION_KEYS_DIR") or ""
    if not directory:
        raise KeyConfigurationError(
            "ENCRYPTION_KEY_PROVIDER is 'file' but ENCRYPTION_KEYS_DIR is not set.", purpose=purpose, code="missing"
        )
    path = Path(directory) / purpose
    source = f"file {purpose!r} in ENCRYPTION_KEYS_DIR"
    try:
        return path.read_text(encoding="utf-8"), source
    except FileNotFoundError:
        raise KeyConfigurationError(
            f"No {purpose} key: {source} does not exist.", purpose=purpose, code="missing"
        ) from None
    except OSError as error:
        raise KeyProviderError(f"Cannot read {source}: {error.strerror}.", purpose=purpose) from None


def _vault_token() -> str:
    token_file = conf.get("ENCRYPTION_VAULT_TOKEN_FILE") or ""
    if token_file:
        # Read on every refresh: a Vault agent renews the token by rewriting this file.
        try:
            return Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise KeyProviderError(f"Cannot read ENCRYPTION_VAULT_TOKEN_FILE: {error.strerror}.") from None
    return conf.get("ENCRYPTION_VAULT_TOKEN") or ""


def _vault_secret_name() -> str:
    mount = conf.get("ENCRYPTION_VAULT_MOUNT") or "secret"
    return f"Vault KV v2 secret {mount}/{conf.get('ENCRYPTION_VAULT_PATH')}"


def read_vault_secret() -> dict:
    """Read the key secret from HashiCorp Vault KV v2; return its data (purpose -> key text)."""
    import hvac  # Imported only when the Vault provider is used.
    import requests

    url = conf.get("ENCRYPTION_VAULT_URL") or ""
    if not url:
        raise KeyConfigurationError(
            "ENCRYPTION_KEY_PROVIDER is 'vault' but ENCRYPTION_VAULT_URL is not set.", code="missing"
        )
    refuse_insecure_endpoint(url, setting="ENCRYPTION_VAULT_URL")
    token = _vault_token()
    if not token:
        raise KeyConfigurationError(
            "ENCRYPTION_KEY_PROVIDER is 'vault' but neither ENCRYPTION_VAULT_TOKEN nor ENCRYPTION_VAULT_TOKEN_FILE "
            "gives a token.",
            code="missing",
        )
    mount = conf.get("ENCRYPTION_VAULT_MOUNT") or "secret"
    path = conf.get("ENCRYPTION_VAULT_PATH")
    ca_file = conf.get("ENCRYPTION_VAULT_CA_FILE") or ""
    client = hvac.Client(
        url=url,
        token=token,
        verify=ca_file or True,
        timeout=conf.get("ENCRYPTION_VAULT_TIMEOUT"),
        namespace=conf.get("ENCRYPTION_VAULT_NAMESPACE") or None,
    )
    where = _vault_secret_name()
    try:
        response = client.secrets.kv.v2.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
    except hvac.exceptions.Forbidden:
        raise KeyProviderError(f"Vault refused the token when reading {where} (403).") from None
    except hvac.exceptions.InvalidPath:
        raise KeyProviderError(f"{where} does not exist (404).", code="missing") from None
    except hvac.exceptions.VaultError as error:
        raise KeyProviderError(f"Vault failed reading {where}: {type(error).__name__}.") from None
    except requests.RequestException as error:
        raise KeyProviderError(f"Vault is unreachable for {where}: {type(error).__name__}.") from None
    try:
        data = response["data"]["data"]
    except (KeyError, TypeError):
        raise KeyProviderError(f"Vault answered for {where} without a KV v2 data document.") from None
    if not isinstance(data, dict):
        raise KeyProviderError(f"{where} holds no key/value data.")
    return data


def ring_text_from_document(data: dict, purpose: str, *, where: str) -> tuple[str, str]:
    """Return ``(key ring text, source)`` of ``purpose`` from a provider's document.

    Vault's KV v2 data and the AWS secret's JSON object alike map each purpose to
    ``id:BASE64KEY,...`` text (a list of entries is joined). ``where`` names the provider and the
    secret; a missing or empty field is a ``KeyProviderError`` naming both, never a key.
    """
    source = f"field {purpose!r} of {where}"
    value = data.get(purpose)
    if not value:
        raise KeyProviderError(f"No {purpose} key: {source} is missing or empty.", purpose=purpose, code="missing")
    if isinstance(value, list | tuple):
        value = ",".join(value)
    return str(value), source


def _read_vault(purpose: str) -> tuple[str, str]:
    return ring_text_from_document(read_vault_secret(), purpose, where=_vault_secret_name())


def refuse_insecure_endpoint(url: str, *, setting: str) -> None:
    """Refuse, before any request, a plain-http endpoint of a key provider that the policy refuses.

    Plain http only to a loopback address, or to a private network's IP address where the
    settings relax ``plain-http-to-private-network`` (staging); ``KeyConfigurationError``
    (code ``"insecure"``) otherwise.
    """
    problem = secret_stores.endpoint_problem(
        url, setting=setting, private_network_allowed=core_conf.relaxed("plain-http-to-private-network")
    )
    if problem:
        raise KeyConfigurationError(problem, code="insecure")


def read_aws_secret() -> dict:
    """Read the key secret from AWS Secrets Manager; return its JSON object (purpose -> key text).

    Credentials come from boto3's own chain, never from these settings (``core/secret_stores.py``).
    """
    secret_id = conf.get("ENCRYPTION_AWS_SECRET_ID") or ""
    if not secret_id:
        raise KeyConfigurationError(
            "ENCRYPTION_KEY_PROVIDER is 'aws' but ENCRYPTION_AWS_SECRET_ID is not set.", code="missing"
        )
    endpoint_url = conf.get("ENCRYPTION_AWS_ENDPOINT_URL") or ""
    if endpoint_url:
        refuse_insecure_endpoint(endpoint_url, setting="ENCRYPTION_AWS_ENDPOINT_URL")
    try:
        document = secret_stores.read_aws_json_secret(
            secret_id,
            region=conf.get("ENCRYPTION_AWS_REGION") or "",
            endpoint_url=endpoint_url,
            timeout=conf.get("ENCRYPTION_AWS_TIMEOUT"),
            region_setting="ENCRYPTION_AWS_REGION",
        )
    except secret_stores.SecretStoreError as error:
        code = error.code if error.code in ("missing", "malformed") else "provider"
        raise KeyProviderError(str(error), code=code) from None
    return document


def _read_aws(purpose: str) -> tuple[str, str]:
    where = secret_stores.describe_aws_secret(conf.get("ENCRYPTION_AWS_SECRET_ID"))
    return ring_text_from_document(read_aws_secret(), purpose, where=where)


_READERS = {"environment": _read_environment, "file": _read_file, "vault": _read_vault, "aws": _read_aws}


def load_key_ring(purpose: str) -> KeyRing:
    """Build the key ring of ``purpose`` from the provider now, bypassing the cache."""
    _check_purpose(purpose)
    name = provider_name()
    reader = _READERS.get(name)
    if reader is None:
        raise KeyConfigurationError(
            f"ENCRYPTION_KEY_PROVIDER is {name!r}; expected one of {', '.join(PROVIDERS)}.",
            purpose=purpose,
            code="unknown-provider",
        )
    text, source = reader(purpose)
    try:
        return parse_key_ring(text, purpose=purpose, source=source)
    except KeyConfigurationError as error:
        error.purpose = purpose
        raise


def load_legacy_fernet() -> MultiFernet | None:
    """Build a MultiFernet from django-encrypted-model-fields' keys, or ``None`` if there are none.

    ``ENCRYPTION_LEGACY_FERNET_KEYS`` (list or comma-separated) wins; else ``FIELD_ENCRYPTION_KEY``
    as that package read it (one key or a list). These keys only decrypt: new writes use AES-GCM.
    """
    configured = conf.get("ENCRYPTION_LEGACY_FERNET_KEYS") or conf.get("FIELD_ENCRYPTION_KEY")
    if not configured:
        return None
    if isinstance(configured, str | bytes):
        configured = [
            part for part in (configured.decode() if isinstance(configured, bytes) else configured).split(",")
        ]
    fernets = []
    for position, key in enumerate(configured, start=1):
        key = key.strip() if isinstance(key, str) else key
        if not key:
            continue
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError, binascii.Error):
            raise KeyConfigurationError(
                f"Legacy Fernet key {position} (ENCRYPTION_LEGACY_FERNET_KEYS / FIELD_ENCRYPTION_KEY) is not a "
                "valid Fernet key.",
                purpose=LEGACY_FERNET_KEY_ID,
            ) from None
    return MultiFernet(fernets) if fernets else None


# ---------------------------------------------------------------------------------------------
# The cache: resolved rings reused for a short time, dropped when settings change.
# ---------------------------------------------------------------------------------------------
_cache: dict[str, tuple[float, object]] = {}
_lock = threading.Lock()


def _cache_seconds() -> float:
    return float(conf.get("ENCRYPTION_KEY_CACHE_SECONDS"))


def _resolve(name: str, loader):
    with _lock:
        now = time.monotonic()
        entry = _cache.get(name)
        if entry is not None and entry[0] > now:
            return entry[1]
        try:
            value = loader()
        except KeyProviderError as error:
            if entry is None:
                raise
            # Keep serving the ring we had: keys do not expire because Vault is briefly down.
            logger.warning("Key provider failed; keeping the previous %s key ring: %s", name, error)
            _cache[name] = (now + PROVIDER_RETRY_SECONDS, entry[1])
            return entry[1]
        _cache[name] = (now + _cache_seconds(), value)
        return value


def get_key_ring(purpose: str) -> KeyRing:
    """Return the key ring of ``purpose``, resolved through the provider at most every few seconds."""
    entry = _cache.get(purpose)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]  # type: ignore[return-value]
    _check_purpose(purpose)
    return _resolve(purpose, lambda: load_key_ring(purpose))


def get_legacy_fernet() -> MultiFernet | None:
    """Return the cached MultiFernet of the legacy django-encrypted-model-fields keys, or None."""
    entry = _cache.get(LEGACY_FERNET_KEY_ID)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]  # type: ignore[return-value]
    return _resolve(LEGACY_FERNET_KEY_ID, load_legacy_fernet)


def invalidate_key_cache() -> None:
    """Forget every resolved key ring: the next use asks the provider again.

    Call it after changing keys in a file, in Vault or in AWS to skip the wait of
    ``ENCRYPTION_KEY_CACHE_SECONDS``; a change of an ``ENCRYPTION_*`` setting calls it itself.
    The AWS clients go too, so changed credentials or settings are picked up.
    """
    with _lock:
        _cache.clear()
        secret_stores.forget_clients()


def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("ENCRYPTION_") or setting == "FIELD_ENCRYPTION_KEY":
        invalidate_key_cache()


setting_changed.connect(_on_setting_changed, dispatch_uid="encryption.keyring.invalidate_key_cache")
