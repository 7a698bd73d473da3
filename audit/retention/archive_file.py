"""The archive file: gzip JSON Lines inside the encrypted stream of ``encryption.streams``.

Compressed first (ciphertext does not compress), then encrypted under the primary key of the
``audit_archive`` ring, streamed one frame at a time. Plain gzip archives from before encryption
are still read. Why this key purpose and this format: docs/decisions/audit-retention.md.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from encryption.errors import KeyConfigurationError
from encryption.keyring import get_key_ring
from encryption.streams import StreamError, StreamFormat, StreamReader, StreamWriter

# The key ring that encrypts archives (not ``backup``: docs/decisions/audit-retention.md).
ARCHIVE_KEY_PURPOSE = "audit_archive"
ARCHIVE_MAGIC = b"NVAUDARC"
ARCHIVE_STREAM_FORMAT = StreamFormat(
    name="ninaivalaigal-audit-archive",
    magic=ARCHIVE_MAGIC,
    purpose=ARCHIVE_KEY_PURPOSE,
    kdf_label=b"ninaivalaigal audit archive v1 file key\x00",
    ad_label=b"nvauditarchive/v1",
    noun="audit archive",
)
_GZIP_MAGIC = b"\x1f\x8b"


class ArchiveError(Exception):
    """The archive could not be written or did not read back exactly; nothing was purged."""


class ArchiveWriter:
    """One archive being written: ``write()`` JSON Lines, then ``finish(manifest)`` or ``abort()``.

    Compresses, then encrypts under the primary ``audit_archive`` key, streaming (one frame in
    memory). The file is created 0600 and never over an existing one.
    """

    def __init__(self, path: Path) -> None:
        try:
            key = get_key_ring(ARCHIVE_KEY_PURPOSE).primary
        except KeyConfigurationError as error:
            raise ArchiveError(f"No {ARCHIVE_KEY_PURPOSE} key to encrypt the archive: {error}") from None
        self.path = path
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(descriptor, "wb")
        self._stream = StreamWriter(self._file, stream_format=ARCHIVE_STREAM_FORMAT, key=key)
        # mtime=0: the gzip header carries no clock; the manifest says when the archive was made.
        self._gzip = gzip.GzipFile(filename="", fileobj=self._stream, mode="wb", compresslevel=6, mtime=0)

    @property
    def encryption(self) -> dict[str, Any]:
        """What the manifest records of the encryption (never key material)."""
        return {
            "format": ARCHIVE_STREAM_FORMAT.name,
            "cipher": "AES-256-GCM",
            "purpose": ARCHIVE_KEY_PURPOSE,
            "key_id": self._stream.key_id,
        }

    def write(self, data: bytes) -> int:
        return self._gzip.write(data)

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Close the gzip stream, seal ``manifest`` as the final frame, sync and close the file."""
        self._gzip.close()
        sealed = self._stream.finish(manifest)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return sealed

    def abort(self) -> None:
        """Close and remove a file that was not finished (a partial archive is never left behind)."""
        with contextlib.suppress(Exception):
            self._gzip.close()
        self._file.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


class _Prefixed:
    """``prefix`` followed by the rest of ``file``: a file read from its start, without seeking.

    ``read(n)`` returns ``n`` bytes unless the file ends, as a buffered file's does, and adds no
    buffer of its own (the reader's memory stays a few frames).
    """

    def __init__(self, prefix: bytes, file: IO[bytes]) -> None:
        self._prefix = prefix
        self._file = file

    def read(self, size: int = -1) -> bytes:
        if not self._prefix:
            return self._file.read(size)
        if size is None or size < 0:
            head, self._prefix = self._prefix, b""
            return head + self._file.read()
        head, self._prefix = self._prefix[:size], self._prefix[size:]
        return head + (self._file.read(size - len(head)) if size > len(head) else b"")


class ArchiveReader:
    """One archive read back as JSON Lines, streamed; a context manager.

    Encrypted archives (``NVAUDARC``) are decrypted and authenticated frame by frame; plain gzip
    archives from before encryption are read as they are (told apart by their first bytes, not
    their names). Every failure (a missing key, a changed, truncated or appended file, bad gzip)
    raises ``ArchiveError`` naming the file. After ``lines()`` is exhausted, ``stream_manifest``
    holds the encrypted file's own manifest (``None`` for a plain archive).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.encrypted = False
        self.key_id: str | None = None
        self._file: IO[bytes] | None = None
        self._stream: StreamReader | None = None
        self._plaintext: IO[bytes] | None = None

    def __enter__(self) -> ArchiveReader:
        try:
            self._file = open(self.path, "rb")  # closed by __exit__
        except FileNotFoundError:
            raise ArchiveError(f"{self.name} does not exist") from None
        except OSError as error:
            raise ArchiveError(f"{self.name} cannot be read: {error.strerror}") from None
        try:
            magic = self._file.read(len(ARCHIVE_MAGIC))
            # A pipe (``--read -``, a process substitution) cannot seek back: the bytes read to
            # tell the kind apart are put back in front of the rest instead.
            source: IO[bytes] = _Prefixed(magic, self._file)  # type: ignore[assignment]
            if magic == ARCHIVE_MAGIC:
                try:
                    self._stream = StreamReader(source, stream_format=ARCHIVE_STREAM_FORMAT, name=self.name)
                except StreamError as error:
                    raise ArchiveError(str(error)) from None
                self.encrypted = True
                self.key_id = self._stream.key_id
                self._plaintext = self._stream.open()
            elif magic.startswith(_GZIP_MAGIC):
                self._plaintext = source
            else:
                raise ArchiveError(f"{self.name} is not an audit archive (neither encrypted nor gzip)")
        except BaseException:
            self._file.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self._file is not None:
            self._file.close()

    @property
    def stream_manifest(self) -> dict[str, Any] | None:
        return self._stream.manifest if self._stream is not None else None

    def lines(self) -> Iterator[bytes]:
        """Yield the archive's lines; at the end the encrypted file is known to be complete."""
        if self._plaintext is None:
            raise RuntimeError("use ArchiveReader as a context manager")
        try:
            with gzip.GzipFile(fileobj=self._plaintext, mode="rb") as lines:
                yield from lines
            if self._stream is not None:
                # gzip stops at its own end; the frames after it (only the final one) must follow.
                if self._plaintext.read(1):
                    raise ArchiveError(f"{self.name} has data after its compressed events")
                if self._stream.manifest is None:
                    raise ArchiveError(f"{self.name} is truncated: it ends without its final (manifest) chunk")
        except StreamError as error:
            raise ArchiveError(str(error)) from None
        except (OSError, EOFError, zlib.error) as error:
            raise ArchiveError(f"{self.name} is not a complete gzip stream: {error}") from None
