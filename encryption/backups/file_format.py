"""The backup file: ``encryption.streams`` with the backup's magic, labels, key ring and header.

Also the error every backup step raises and the results the services return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings

from encryption import conf
from encryption.keyring import Key
from encryption.streams import StreamError, StreamFormat, StreamReader, StreamWriter

MAGIC = b"NVBACKUP"
FORMAT_NAME = "ninaivalaigal-backup"
FILE_SUFFIX = ".nvbak"
# Plaintext bytes per frame. Memory use is a small multiple of this whatever the database size.
CHUNK_SIZE = 1024 * 1024
KDF_LABEL = b"ninaivalaigal backup v1 file key\x00"
AD_LABEL = b"nvbackup/v1"
BACKUP_FORMAT = StreamFormat(
    name=FORMAT_NAME,
    magic=MAGIC,
    purpose="backup",
    kdf_label=KDF_LABEL,
    ad_label=AD_LABEL,
    noun="backup",
    required_header=("database",),
)


class BackupError(StreamError):
    """A backup could not be created or did not verify. ``str()`` is a message for the operator.

    ``stage`` names the step that failed (``header``, ``decrypt``, ``dump``, ``restore``,
    ``row-counts``, ``encrypted-fields``...).
    """


@dataclass
class BackupResult:
    """What ``backup_create`` wrote."""

    path: Path
    manifest: dict
    file_bytes: int
    seconds: float

    @property
    def dump_bytes(self) -> int:
        return self.manifest["dump_bytes"]

    def summary(self) -> dict:
        """Counts, sizes, checksum and key id only: safe for an audit event and a log line."""
        return {
            "file": self.path.name,
            "database": self.manifest["database"]["vendor"],
            "key_id": self.manifest["key_id"],
            "dump_bytes": self.manifest["dump_bytes"],
            "file_bytes": self.file_bytes,
            "dump_sha256": self.manifest["dump_sha256"],
            "tables": len(self.manifest["tables"]),
            "rows": sum(self.manifest["tables"].values()),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class VerificationResult:
    """What ``backup_verify`` checked."""

    path: Path
    manifest: dict
    file_bytes: int
    seconds: float
    tables_checked: int = 0
    rows_checked: int = 0
    values_decrypted: dict[str, int] = field(default_factory=dict)
    models_absent: list[str] = field(default_factory=list)
    # Tables whose content digest (PostgreSQL backups) matched after a restore.
    digests_checked: int = 0
    # Where a restore went, for messages and the event ("sqlite file NAME", "database NAME on HOST:PORT").
    target: str = ""

    def summary(self) -> dict:
        return {
            "file": self.path.name,
            "database": self.manifest["database"]["vendor"],
            "key_id": self.manifest["key_id"],
            "created_at": self.manifest["created_at"],
            "dump_bytes": self.manifest["dump_bytes"],
            "file_bytes": self.file_bytes,
            "dump_sha256": self.manifest["dump_sha256"],
            "tables": self.tables_checked,
            "rows": self.rows_checked,
            "values_decrypted": sum(self.values_decrypted.values()),
            "models_sampled": len(self.values_decrypted),
            "seconds": round(self.seconds, 3),
        }


class BackupWriter(StreamWriter):
    """Seal a dump into the backup format: ``write()`` the dump, then ``finish(manifest)``."""

    def __init__(
        self,
        stream: IO[bytes],
        *,
        key: Key,
        database: str,
        chunk_size: int | None = None,
        depends_on: dict[str, list[str]] | None = None,
    ) -> None:
        header: dict = {"database": database}
        if depends_on is not None:
            # Key ids (never keys) the backup's contents need, per purpose: in the clear header so
            # that ``encryption_keys status`` can tell which backups a key still protects.
            header["depends_on"] = depends_on
        super().__init__(
            stream,
            stream_format=BACKUP_FORMAT,
            key=key,
            header=header,
            chunk_size=chunk_size or CHUNK_SIZE,
        )

    @property
    def dump_bytes(self) -> int:
        return self.plaintext_bytes

    @property
    def dump_sha256(self) -> str:
        return self.plaintext_sha256

    def finish(self, manifest: dict) -> dict:
        """Seal the last partial chunk and the manifest, with the dump's size and SHA-256."""
        return super().finish({**manifest, "dump_bytes": self.dump_bytes, "dump_sha256": self.dump_sha256})


class BackupReader(StreamReader):
    """Read a backup: the clear header first, then authenticated dump chunks, then the manifest.

    Every failure raises ``BackupError`` with a message that says what is wrong with the file.
    """

    error = BackupError

    def __init__(self, stream: IO[bytes], *, name: str = "the backup") -> None:
        super().__init__(stream, stream_format=BACKUP_FORMAT, name=name)
        self.database = str(self.header["database"])


def read_backup_header(path: Path) -> dict | None:
    """The clear header of the backup file ``path`` (no key needed), or ``None`` if it is not one.

    Unauthenticated until the file is read with its key: good for listing which key ids a file
    names, never for trusting its contents.
    """
    import json
    import struct

    preamble = struct.Struct(">8sHI")
    try:
        with open(path, "rb") as handle:
            magic, _version, length = preamble.unpack(handle.read(preamble.size))
            if magic != MAGIC or not 0 < length <= 64 * 1024:
                return None
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return None
    return header if isinstance(header, dict) else None


def backup_directory() -> Path:
    """Where the scheduled backups go: ``ENCRYPTION_BACKUP_DIR``, else ``VAR_DIR/backups``."""
    configured = conf.get("ENCRYPTION_BACKUP_DIR") or ""
    return Path(configured) if configured else Path(settings.VAR_DIR) / "backups"
