"""The keyed hash chain: the key, the canonical form of an event, and the MACs.

Pure functions, no database access, so the sealer, the verifier and the archive reader compute
exactly the same bytes.

Three MACs, all HMAC-SHA256 under one key with a distinct label each (domain separation), so a
value computed for one purpose can never be replayed as another:

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
  retention purge, so deleting old events and moving the anchor needs the key too.

The key is not in the database (SECURITY-STANDARDS: "a chain anyone with database access can
recompute" is the failure we do not repeat). ``chain_key()`` is the one place that resolves it.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import json
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

GENESIS_HASH = "0" * 64
CANONICAL_VERSION = 1

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
_HEAD_LABEL = b"audit-chain-published-head/v1\n"
_MANIFEST_LABEL = b"audit-archive-manifest/v1\n"

_file_key_lock = threading.Lock()
_file_key_cache: dict[str, bytes] = {}


def chain_key() -> bytes:
    """Return the HMAC key of the audit chain. The one place the key is looked up.

    Order: ``settings.AUDIT_CHAIN_KEY`` (from the environment or ``AUDIT_CHAIN_KEY_FILE`` in
    production, which has no default), else — embedded default only — a key generated once into
    ``VAR_DIR/secrets/audit_chain_key`` by ``config.secrets.load_or_create_secret``.

    Seam for the encryption app's key ring (``encryption.keyring.get_key_ring("audit_chain")``,
    crypto core, so the import direction allows it): switching means storing the key id with
    each MAC (a ``key_id`` column on events, tombstones and the anchor) so events sealed under a
    retired key still verify after a rotation, and returning ``ring.primary`` for new MACs and
    ``ring.get(key_id)`` for checks. Nothing else in ``audit`` reads a key.
    """
    configured = getattr(settings, "AUDIT_CHAIN_KEY", "") or ""
    if configured:
        if len(configured) < 32:
            raise ImproperlyConfigured("AUDIT_CHAIN_KEY must be at least 32 characters of random text.")
        return configured.encode("utf-8")
    directory = Path(settings.VAR_DIR) / "secrets"
    cache_key = str(directory)
    cached = _file_key_cache.get(cache_key)
    if cached is not None:
        return cached
    from config.secrets import load_or_create_secret

    with _file_key_lock:
        value = load_or_create_secret(directory, "audit_chain_key").encode("utf-8")
        _file_key_cache[cache_key] = value
    return value


def _mac(key: bytes, label: bytes, message: bytes) -> str:
    return hmac.new(key, label + message, hashlib.sha256).hexdigest()


def _canonical_number(value: Any) -> Any:
    # PostgreSQL's jsonb stores numbers as numeric: 1e20 comes back as the integer
    # 100000000000000000000 and 1.0 may come back as 1.0 or 1. Integral floats are written as
    # integers so the canonical form is the same before and after the round trip.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _canonical_json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _canonical_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_json_value(item) for item in value]
    return _canonical_number(value)


def _canonical_timestamp(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")


def _canonical_ip(value: Any) -> str | None:
    if not value:
        return None
    # The database may render an address differently (PostgreSQL inet, IPv4-mapped IPv6).
    return ipaddress.ip_address(str(value)).compressed


def canonical_content(values: dict[str, Any]) -> bytes:
    """Return the canonical JSON bytes of an event's content (``CONTENT_FIELDS`` of ``values``).

    Sorted keys, no whitespace, ASCII only, UTC timestamps with microseconds, compressed IP
    addresses, strings for ids: identical whether the values come from ``record()``, from
    SQLite, from PostgreSQL or from an archive line.
    """
    document = {
        "v": CANONICAL_VERSION,
        "uuid": str(values["uuid"]),
        "timestamp": _canonical_timestamp(values["timestamp"]),
        "action": str(values["action"]),
        "outcome": str(values["outcome"]),
        "actor_id": values["actor_id"] or "",
        "actor_username": values["actor_username"] or "",
        "actor_is_staff": values["actor_is_staff"],
        "subject_id": values["subject_id"] or "",
        "subject_username": values["subject_username"] or "",
        "subject_is_staff": values["subject_is_staff"],
        "target_type": values["target_type"] or "",
        "target_id": values["target_id"] or "",
        "target_repr": values["target_repr"] or "",
        "request_id": values["request_id"] or "",
        "client_ip": _canonical_ip(values["client_ip"]),
        "user_agent": values["user_agent"] or "",
        "api_key_id": values["api_key_id"],
        "context": _canonical_json_value(values["context"] or {}),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
        "ascii"
    )


def content_mac(values: dict[str, Any], *, key: bytes | None = None) -> str:
    """Return the keyed digest of an event's content, as stored in ``AuditEvent.content_mac``."""
    return _mac(key or chain_key(), _CONTENT_LABEL, canonical_content(values))


def link_hash(*, sequence: int, previous_hash: str, content_mac_value: str, key: bytes | None = None) -> str:
    """Return the chain hash of the event at ``sequence`` following ``previous_hash``."""
    message = f"{sequence}\n{previous_hash}\n{content_mac_value}".encode("ascii")
    return _mac(key or chain_key(), _CHAIN_LABEL, message)


def anchor_mac(*, sequence: int, hash_value: str, key: bytes | None = None) -> str:
    """Authenticate a verification anchor (the last purged event's sequence and hash)."""
    return _mac(key or chain_key(), _ANCHOR_LABEL, f"{sequence}\n{hash_value}".encode("ascii"))


def tombstone_mac(*, sequence: int, previous_hash: str, hash_value: str, key: bytes | None = None) -> str:
    """Authenticate the tombstone left by a purged event that is not yet folded into the anchor."""
    message = f"{sequence}\n{previous_hash}\n{hash_value}".encode("ascii")
    return _mac(key or chain_key(), _TOMBSTONE_LABEL, message)


def head_mac(*, sequence: int, hash_value: str, published_at: str, key: bytes | None = None) -> str:
    """Authenticate one line of the published-heads file."""
    message = f"{sequence}\n{hash_value}\n{published_at}".encode("ascii")
    return _mac(key or chain_key(), _HEAD_LABEL, message)


def manifest_mac(document: dict[str, Any], *, key: bytes | None = None) -> str:
    """Authenticate an archive manifest (every field except ``mac``)."""
    body = {name: value for name, value in document.items() if name != "mac"}
    message = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return _mac(key or chain_key(), _MANIFEST_LABEL, message)


def macs_equal(left: str | None, right: str | None) -> bool:
    """Compare two MACs in constant time (``None`` never equals anything)."""
    if left is None or right is None:
        return False
    return hmac.compare_digest(left, right)
