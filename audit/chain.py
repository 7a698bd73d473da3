"""The keyed hash chain: its keys, the canonical form of an event, and the MACs.

Pure functions, no database access, so the sealer, the verifier and the archive reader compute
exactly the same bytes.

Three MACs, all HMAC-SHA256 (RFC 2104) under a key of the chain with a distinct label each
(domain separation), so a value computed for one purpose can never be replayed as another:

* ``content_mac`` = HMAC(key, "audit-event-content/v1" ‖ canonical JSON of the event's content).
  Computed by ``record()`` *at insert time*, before the event is chained. It binds every field
  of the event (including its random ``uuid``) to the key, so an event inserted or altered
  through the database alone, while waiting to be sealed, is refused by the sealer and reported
  by ``audit_verify``: nothing can slip into the chain unsealed.
* ``hash`` = HMAC(key, "audit-event-chain/v1" ‖ sequence ‖ previous_hash ‖ content_mac).
  Computed by the sealer. Because ``content_mac`` is itself a keyed digest of the canonical
  content, this is the HMAC of the event's fields together with the previous event's hash, one
  step removed (and one canonical serialisation cheaper to verify).
* ``anchor_mac`` / ``tombstone_mac``: authenticate the point a verification starts from after a
  retention purge, so deleting old events and moving the anchor needs the key too. The lines
  of the published-heads file and the archive manifests have MACs of their own.

The keys
--------
The key is not in the database (SECURITY-STANDARDS: "a chain anyone with database access can
recompute" is the failure we do not repeat). It comes from the encryption app's key ring, purpose
``audit_chain`` (``ENCRYPTION_AUDIT_CHAIN_KEYS`` or the file/Vault provider; crypto core, so the
import direction allows it): **new MACs are made with the ring's primary key** and every MAC is
stored with the id of the key that made it (``AuditEvent.content_key_id`` for ``content_mac``,
``AuditEvent.chain_key_id`` for ``hash`` — they differ when an event is recorded under key A and
sealed after a rotation under key B —, ``ChainHead.anchor_key_id``, ``AuditTombstone.key_id``,
``key_id`` in a heads-file line and in an archive manifest). **Checks look the key up by the
stored id**, so after a rotation the events made under the retired key still verify as long as
that key stays in the ring (after the new primary). An id the ring does not hold is reported as a
verification failure of that event, never a crash.

``AUDIT_CHAIN_KEY`` is the legacy key: it only verifies MACs stored with no key id (or ``"legacy"``);
what it can still verify and when to retire it: docs/decisions/audit-chain-keys.md.

``signing_key()`` is the one place a key for new MACs is chosen, ``verification_key()`` /
``ChainKeys`` the one place a stored key id is resolved. Nothing else in ``audit`` reads a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any, Literal, Protocol, overload

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from audit import conf
from audit.offline_verifier import CANONICAL_VERSION, canonical_content  # noqa: F401 (re-exported)
from encryption.errors import KeyConfigurationError, UnknownKeyError
from encryption.keyring import Key, get_key_ring

# canonical_content lives with the offline verifier, which must compute the same bytes without Django.
GENESIS_HASH = "0" * 64
# The key ring purpose of the chain (encryption.keyring.PURPOSES).
KEY_PURPOSE = "audit_chain"
# The key id that names the legacy key (AUDIT_CHAIN_KEY); a stored NULL means the same.
LEGACY_KEY_ID = "legacy"
LEGACY_KEY_FILE_NAME = "audit_chain_key"

# The fields covered by ``content_mac``, in the order they are documented. Adding a field to
# AuditEvent does not change the chain until it is added here (with a new CANONICAL_VERSION).
CONTENT_FIELDS = (
    "uuid",
    "timestamp",
    "action",
    "outcome",
    "actor_id",
    "actor_username",
    "actor_is_staff",
    "subject_id",
    "subject_username",
    "subject_is_staff",
    "target_type",
    "target_id",
    "target_repr",
    "request_id",
    "client_ip",
    "user_agent",
    "api_key_id",
    "context",
)

_CONTENT_LABEL = b"audit-event-content/v1\n"
_CHAIN_LABEL = b"audit-event-chain/v1\n"
_ANCHOR_LABEL = b"audit-chain-anchor/v1\n"
_TOMBSTONE_LABEL = b"audit-chain-tombstone/v1\n"
_SKIP_LABEL = b"audit-chain-skipped/v1\n"
_HEAD_LABEL = b"audit-chain-published-head/v1\n"
_MANIFEST_LABEL = b"audit-archive-manifest/v1\n"


class ChainKey(Protocol):
    """What the MACs need of a key: its id and HMAC-SHA256 from a prepared state."""

    id: str

    def hmac_sha256_hex(self, data: bytes) -> str: ...


class LegacyChainKey:
    """The key of MACs made before the key ring (``AUDIT_CHAIN_KEY``): verifies, never signs.

    Any length of text (at least 32 characters), so not a ring ``Key`` (those are 32 bytes).
    ``repr`` shows the id only.
    """

    __slots__ = ("_hmac", "id")

    def __init__(self, material: bytes) -> None:
        self.id = LEGACY_KEY_ID
        self._hmac = hmac.new(material, digestmod=hashlib.sha256)

    def hmac_sha256_hex(self, data: bytes) -> str:
        mac = self._hmac.copy()
        mac.update(data)
        return mac.hexdigest()

    def __repr__(self) -> str:
        return "<LegacyChainKey>"

    __str__ = __repr__


class ChainKeyError(Exception):
    """A stored key id names no key we hold: retired from the ring too early, or forged."""

    def __init__(self, key_id: str | None, reason: str) -> None:
        self.key_id = key_id if key_id is not None else LEGACY_KEY_ID
        self.reason = reason
        super().__init__(f"audit chain key {self.key_id!r}: {reason}")


def signing_key() -> Key:
    """Return the key that makes new MACs: the primary key of the ``audit_chain`` ring.

    Cheap enough for every ``record()`` (a cached ring: a dictionary look-up and a clock read).
    Raises ``KeyConfigurationError`` when the ring cannot be loaded: an event that cannot be
    MAC'd is not recorded (fail closed).
    """
    key = get_key_ring(KEY_PURPOSE).primary
    if key.id == LEGACY_KEY_ID:
        # The id is reserved for AUDIT_CHAIN_KEY; MACs stored under it would be checked with that.
        raise KeyConfigurationError(
            f"The {KEY_PURPOSE} key ring may not hold a key with the reserved id {LEGACY_KEY_ID!r}.",
            purpose=KEY_PURPOSE,
        )
    return key


_legacy_cache: dict[tuple[str, str], LegacyChainKey | None] = {}


def legacy_key() -> LegacyChainKey | None:
    """Return the legacy key, or ``None`` if none is configured (docs/decisions/audit-chain-keys.md).

    ``AUDIT_CHAIN_KEY`` if set; else the ``VAR_DIR/secrets/audit_chain_key`` file an
    earlier version generated, if it exists (it is never created any more).
    """
    configured = conf.get("AUDIT_CHAIN_KEY") or ""
    cache_key = (configured, str(settings.VAR_DIR))
    try:
        return _legacy_cache[cache_key]
    except KeyError:
        pass
    if configured:
        if len(configured) < 32:
            raise ImproperlyConfigured("AUDIT_CHAIN_KEY must be at least 32 characters of random text.")
        key: LegacyChainKey | None = LegacyChainKey(configured.encode("utf-8"))
    else:
        path = Path(settings.VAR_DIR) / "secrets" / LEGACY_KEY_FILE_NAME
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            value = ""
        except OSError as error:
            raise ImproperlyConfigured(f"The legacy audit chain key file cannot be read: {error.strerror}") from None
        key = LegacyChainKey(value.encode("utf-8")) if value else None
    _legacy_cache[cache_key] = key
    return key


def _forget_legacy_key(*, setting: str, **kwargs) -> None:
    if setting in ("AUDIT_CHAIN_KEY", "VAR_DIR"):
        _legacy_cache.clear()


setting_changed.connect(_forget_legacy_key, dispatch_uid="audit.chain.forget_legacy_key")


def verification_key(key_id: str | None) -> ChainKey:
    """Return the key a MAC stored with ``key_id`` was made with; raise ``ChainKeyError`` if we lack it.

    ``None`` and ``"legacy"`` name the legacy key; any other id a key of the ``audit_chain`` ring.
    """
    if key_id is None or key_id == LEGACY_KEY_ID:
        try:
            key = legacy_key()
        except ImproperlyConfigured as error:
            raise ChainKeyError(key_id, str(error)) from None
        if key is None:
            raise ChainKeyError(key_id, "made before the key ring, but no legacy key is configured (AUDIT_CHAIN_KEY)")
        return key
    try:
        return get_key_ring(KEY_PURPOSE).get(key_id)
    except UnknownKeyError:
        raise ChainKeyError(key_id, f"not in the {KEY_PURPOSE} key ring (retired too early?)") from None
    except KeyConfigurationError as error:
        raise ChainKeyError(key_id, f"the {KEY_PURPOSE} key ring cannot be loaded: {error}") from None


class ChainKeys:
    """The keys of one check run: each stored id is resolved once, found or missing, and reused."""

    __slots__ = ("_found",)

    def __init__(self) -> None:
        self._found: dict[str | None, ChainKey | ChainKeyError] = {}

    def get(self, key_id: str | None) -> ChainKey:
        """Return the key named ``key_id`` (``None``: legacy); raise ``ChainKeyError`` if we lack it."""
        if key_id is not None and type(key_id) is not str:  # from a file: a list, a number...
            raise ChainKeyError("?", f"a key id must be text, not {type(key_id).__name__}")
        try:
            found = self._found[key_id]
        except KeyError:
            try:
                found = verification_key(key_id)
            except ChainKeyError as error:
                found = error
            self._found[key_id] = found
        if isinstance(found, ChainKeyError):
            raise ChainKeyError(found.key_id, found.reason)
        return found


@overload
def content_mac(values: dict[str, Any], *, key: ChainKey | None = None) -> str: ...


@overload
def content_mac(
    values: dict[str, Any], *, key: ChainKey | None = None, with_key_id: Literal[True]
) -> tuple[str, str]: ...


def content_mac(
    values: dict[str, Any], *, key: ChainKey | None = None, with_key_id: bool = False
) -> str | tuple[str, str]:
    """Return the keyed digest of an event's content, as stored in ``AuditEvent.content_mac``.

    ``key``: the key to use; by default the signing key (new events). With ``with_key_id`` the
    result is ``(mac, key id)``, the two values ``record()`` stores, taken from one look-up so a
    rotation between two calls cannot pair a MAC with the wrong id.
    """
    key = key or signing_key()
    mac = key.hmac_sha256_hex(_CONTENT_LABEL + canonical_content(values))
    return (mac, key.id) if with_key_id else mac


def content_mac_of_canonical(content: bytes, *, key: ChainKey) -> str:
    """``content_mac`` from already serialised canonical content (the sealer also hashes it into the tree)."""
    return key.hmac_sha256_hex(_CONTENT_LABEL + content)


def link_hash(*, sequence: int, previous_hash: str, content_mac_value: str, key: ChainKey | None = None) -> str:
    """Return the chain hash of the event at ``sequence`` following ``previous_hash``."""
    message = f"{sequence}\n{previous_hash}\n{content_mac_value}".encode("ascii")
    return (key or signing_key()).hmac_sha256_hex(_CHAIN_LABEL + message)


def skip_hash(*, sequence: int, previous_hash: str, key: ChainKey | None = None) -> str:
    """The chain hash of a sequence the sealer skipped (a row it did not allocate held the number).

    Keyed like a link, under its own label, so only the sealer can make the chain step over a
    number, and a skip can never pass for an event's link (``audit.sealing``).
    """
    message = f"{sequence}\n{previous_hash}".encode("ascii")
    return (key or signing_key()).hmac_sha256_hex(_SKIP_LABEL + message)


def anchor_mac(*, sequence: int, hash_value: str, key: ChainKey | None = None) -> str:
    """Authenticate a verification anchor (the last purged event's sequence and hash)."""
    return (key or signing_key()).hmac_sha256_hex(_ANCHOR_LABEL + f"{sequence}\n{hash_value}".encode("ascii"))


def tombstone_mac(*, sequence: int, previous_hash: str, hash_value: str, key: ChainKey | None = None) -> str:
    """Authenticate the tombstone left by a purged event that is not yet folded into the anchor."""
    message = f"{sequence}\n{previous_hash}\n{hash_value}".encode("ascii")
    return (key or signing_key()).hmac_sha256_hex(_TOMBSTONE_LABEL + message)


def head_mac(*, sequence: int, hash_value: str, published_at: str, key: ChainKey | None = None) -> str:
    """Authenticate one line of the published-heads file."""
    message = f"{sequence}\n{hash_value}\n{published_at}".encode("ascii")
    return (key or signing_key()).hmac_sha256_hex(_HEAD_LABEL + message)


def manifest_mac(document: dict[str, Any], *, key: ChainKey | None = None) -> str:
    """Authenticate an archive manifest (every field except ``mac``, so its ``key_id`` too)."""
    body = {name: value for name, value in document.items() if name != "mac"}
    message = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return (key or signing_key()).hmac_sha256_hex(_MANIFEST_LABEL + message)


def macs_equal(left: str | None, right: str | None) -> bool:
    """Compare two MACs in constant time (``None`` never equals anything)."""
    if left is None or right is None:
        return False
    return hmac.compare_digest(left, right)
