"""Reads about encrypted data: which columns are encrypted, and which keys still protect them."""

from __future__ import annotations

import datetime
import re
from collections import Counter
from dataclasses import dataclass, field

from django.apps import apps
from django.db import models
from django.db.models import ExpressionWrapper, F, TextField
from django.db.models.functions import Substr

from encryption.crypto import token_key_id
from encryption.errors import KeyConfigurationError
from encryption.fields import BlindIndexField, EncryptedFieldMixin
from encryption.keyring import LEGACY_FERNET_KEY_ID, PURPOSES, get_key_ring, is_development_key

# Rows fetched per query while counting (memory stays flat on large tables).
COUNT_CHUNK_SIZE = 2000
# Characters of a stored value that hold its key id: "nv1:" + an id of at most 64 + ":".
KEY_ID_PREFIX_LENGTH = 80
# Stored text that is neither an nv1 token nor a legacy Fernet token.
NOT_A_TOKEN = "not-a-token"  # noqa: S105 - a label, not a secret
# The purposes whose use is rows in tables, which ``encryption_key_usage`` counts. The others
# (audit_chain, backup, audit_archive) protect MACs of the audit chain and files.
COUNTED_PURPOSES = ("field", "blind_index")


@dataclass(frozen=True)
class EncryptedModel:
    """A concrete model with encrypted columns and blind indexes."""

    model: type[models.Model]
    encrypted_fields: tuple[EncryptedFieldMixin, ...]
    blind_index_fields: tuple[BlindIndexField, ...]

    @property
    def label(self) -> str:
        return self.model._meta.label


def encrypted_model_list() -> list[EncryptedModel]:
    """Every installed, managed, concrete model that has an encrypted field or a blind index."""
    found = []
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed or meta.abstract:
            continue
        local = [f for f in meta.local_concrete_fields]
        encrypted = tuple(f for f in local if isinstance(f, EncryptedFieldMixin))
        indexes = tuple(f for f in local if isinstance(f, BlindIndexField))
        if encrypted or indexes:
            found.append(EncryptedModel(model, encrypted, indexes))
    return sorted(found, key=lambda item: item.label)


def raw_column(field: models.Field) -> ExpressionWrapper:
    """The stored text of ``field``, read without ``from_db_value`` (no decryption)."""
    return ExpressionWrapper(F(field.name), output_field=TextField())


@dataclass
class KeyUsage:
    """Rows per key id for one purpose, in total and per ``model.column``."""

    purpose: str
    ring_ids: list[str]
    totals: Counter = field(default_factory=Counter)
    by_column: dict[str, Counter] = field(default_factory=dict)

    @property
    def primary_id(self) -> str:
        return self.ring_ids[0]

    def retirable(self) -> list[str]:
        """Key ids of the ring, other than the primary, that no row uses any more."""
        return [key_id for key_id in self.ring_ids[1:] if not self.totals.get(key_id)]


def _key_id_of_index(value: str) -> str:
    key_id, separator, _digest = value.partition(":")
    return key_id if separator else NOT_A_TOKEN


def encryption_key_usage(*, purpose: str, using: str = "default") -> KeyUsage:
    """Count, without decrypting, how many stored values each key id protects.

    ``purpose`` is ``field`` (encrypted columns; legacy Fernet values count under
    ``legacy-fernet``) or ``blind_index`` (blind-index columns). Key ids no longer in the ring are
    counted too: those rows cannot be read until the key comes back.
    """
    if purpose not in COUNTED_PURPOSES:
        raise ValueError("Row counts exist for the 'field' and 'blind_index' purposes only.")
    usage = KeyUsage(purpose=purpose, ring_ids=get_key_ring(purpose).ids)
    for item in encrypted_model_list():
        columns = item.encrypted_fields if purpose == "field" else item.blind_index_fields
        for column in columns:
            counter: Counter = Counter()
            manager = item.model._base_manager.using(using)
            values = (
                manager.filter(**{f"{column.name}__isnull": False})
                # The key id is in the first characters: never move whole values (memory stays flat).
                .annotate(_raw=Substr(raw_column(column), 1, KEY_ID_PREFIX_LENGTH))
                .values_list("_raw", flat=True)
                .iterator(chunk_size=COUNT_CHUNK_SIZE)
            )
            if purpose == "field":
                for value in values:
                    counter[token_key_id(value) or NOT_A_TOKEN] += 1
            else:
                for value in values:
                    counter[_key_id_of_index(value)] += 1
            usage.by_column[f"{item.label}.{column.column}"] = counter
            usage.totals.update(counter)
    return usage


@dataclass
class KeyDependents:
    """What, besides table rows, still needs one key id: backups, audit archives, audit-chain MACs."""

    backups: list[str] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)
    audit_events: int = 0

    def __bool__(self) -> bool:
        return bool(self.backups or self.archives or self.audit_events)

    def describe(self) -> str:
        def listed(names: list[str]) -> str:
            return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")

        parts = []
        if self.backups:
            parts.append(f"{len(self.backups)} backups ({listed(self.backups)})")
        if self.archives:
            parts.append(f"{len(self.archives)} audit archives ({listed(self.archives)})")
        if self.audit_events:
            parts.append(f"{self.audit_events} audit-chain MACs")
        return ", ".join(parts)


# The purposes whose values a backup's contents carry (the backup key itself is in the header).
BACKUP_CONTENT_PURPOSES = ("field", "blind_index", "audit_chain")


def audit_chain_key_ids() -> Counter:
    """Audit-chain MACs per key id: events' content and chain MACs, the anchor, tombstones."""
    from audit.models import AuditEvent, AuditTombstone, ChainHead

    counter: Counter = Counter()
    for column in ("content_key_id", "chain_key_id"):
        for key_id, count in (
            AuditEvent.objects.exclude(**{f"{column}__isnull": True})
            .values_list(column)
            .annotate(n=models.Count("id"))
            .order_by()
        ):
            counter[key_id] += count
    for key_id, count in (
        AuditTombstone.objects.exclude(key_id__isnull=True)
        .values_list("key_id")
        .annotate(n=models.Count("sequence"))
        .order_by()
    ):
        counter[key_id] += count
    anchor = ChainHead.objects.filter(pk=1).values_list("anchor_key_id", flat=True).first()
    if anchor:
        counter[anchor] += 1
    return counter


def encryption_key_dependents(*, purpose: str) -> dict[str, KeyDependents]:
    """Per key id of ``purpose``: the backups in the backup folder and the audit archives that need it.

    A backup names its backup key in its clear header, and (since restore_backup) the field,
    blind-index and audit-chain key ids its contents were under (``depends_on``); a backup made
    before that is counted as needing every key of those purposes' rings. An audit archive's
    manifest names its archive key and the audit-chain key of its MAC. For ``audit_chain`` the
    MACs in the database count too. Backups kept elsewhere (off the host) are not seen.
    """
    from audit.retention.archive import archive_dir
    from encryption.backups.file_format import FILE_SUFFIX, backup_directory, read_backup_header

    dependents: dict[str, KeyDependents] = {}

    def add(key_id, kind: str, name: str) -> None:
        if isinstance(key_id, str) and key_id:
            getattr(dependents.setdefault(key_id, KeyDependents()), kind).append(name)

    directory = backup_directory()
    if purpose in ("backup", *BACKUP_CONTENT_PURPOSES) and directory.is_dir():
        ring_ids = get_key_ring(purpose).ids if purpose != "backup" else []
        for path in sorted(directory.iterdir()):
            if not path.is_file() or FILE_SUFFIX not in path.name:
                continue
            header = read_backup_header(path)
            if header is None:
                continue
            if purpose == "backup":
                add(header.get("key_id"), "backups", path.name)
                continue
            depends_on = header.get("depends_on")
            if isinstance(depends_on, dict):
                for key_id in depends_on.get(purpose) or []:
                    add(key_id, "backups", path.name)
            else:
                for key_id in ring_ids:  # made before backups named their keys: assume it needs them all
                    add(key_id, "backups", path.name)
    archives = archive_dir()
    if purpose in ("audit_archive", "audit_chain") and archives.is_dir():
        import json

        for path in sorted(archives.glob("*.manifest.json")):
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(manifest, dict):
                continue
            name = path.name.removesuffix(".manifest.json")
            if purpose == "audit_archive":
                encryption = manifest.get("encryption")
                if isinstance(encryption, dict):
                    add(encryption.get("key_id"), "archives", name)
            else:
                add(manifest.get("key_id"), "archives", name)
    if purpose == "audit_chain":
        for key_id, count in audit_chain_key_ids().items():
            dependents.setdefault(key_id, KeyDependents()).audit_events += count
    return dependents


def backup_depends_on() -> dict[str, list[str]]:
    """The key ids a backup made now needs, per purpose of its contents (for its clear header).

    Counted without decrypting; each ring's primary is added, since rows written during the
    dump are under it.
    """
    depends_on = {}
    for purpose in ("field", "blind_index"):
        usage = encryption_key_usage(purpose=purpose)
        ids = {key_id for key_id, count in usage.totals.items() if count and key_id != NOT_A_TOKEN}
        depends_on[purpose] = sorted(ids | {get_key_ring(purpose).primary.id})
    depends_on["audit_chain"] = sorted(set(audit_chain_key_ids()) | {get_key_ring("audit_chain").primary.id})
    return depends_on


def _date_of_key_id(key_id: str) -> datetime.date | None:
    """The UTC date ``new_key_id`` put at the front of an id (``20261128-a1b2c3``), else ``None``."""
    match = re.fullmatch(r"(\d{8})-[0-9a-f]{6}", key_id)
    if match is None:
        return None
    try:
        return datetime.datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=datetime.UTC).date()
    except ValueError:
        return None


def key_ring_overview(*, today: datetime.date) -> list[dict]:
    """Per purpose: the primary key id, how many keys the ring holds, and the primary key's age.

    The age is known only for ids made by ``new_key_id`` (they start with their UTC creation
    date); for any other id it is ``None``. Ids and counts only: no key material. A ring that
    cannot be loaded is listed with its error message (which names no key).
    """
    rings = []
    for purpose in PURPOSES:
        try:
            ring = get_key_ring(purpose)
        except KeyConfigurationError as error:
            rings.append({"purpose": purpose, "error": str(error)})
            continue
        created = _date_of_key_id(ring.primary.id)
        rings.append(
            {
                "purpose": purpose,
                "primary_id": ring.primary.id,
                "keys": len(ring),
                "primary_created": created,
                "primary_age_days": (today - created).days if created else None,
                "development_key": is_development_key(ring.primary),
                "error": "",
            }
        )
    return rings


__all__ = [
    "COUNTED_PURPOSES",
    "LEGACY_FERNET_KEY_ID",
    "NOT_A_TOKEN",
    "EncryptedModel",
    "KeyDependents",
    "KeyUsage",
    "encrypted_model_list",
    "backup_depends_on",
    "encryption_key_dependents",
    "encryption_key_usage",
    "key_ring_overview",
    "raw_column",
]
