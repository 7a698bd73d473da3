"""Streaming authenticated encryption of files: the format of backups and of audit archives.

One implementation, parametrised by a ``StreamFormat`` (magic, name, labels, key ring purpose),
used by ``encryption.backups`` and ``audit.retention``. A clear header (canonical JSON) is
followed by AES-256-GCM frames (NIST SP 800-38D) under a per-file HKDF-SHA256 key (RFC 5869),
chained by the STREAM construction; the last frame is the manifest. Memory use is a small
multiple of the chunk size. Crypto core: nothing of ours but ``encryption.keyring`` and
``encryption.errors``. The byte layout and why: docs/decisions/encrypted-backups.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.utils import timezone

from encryption.errors import EncryptionError, KeyConfigurationError, UnknownKeyError
from encryption.keyring import Key, get_key_ring

FORMAT_VERSION = 1
# Plaintext bytes per frame by default. Memory use is a small multiple of this.
DEFAULT_CHUNK_SIZE = 1024 * 1024
# A header or chunk size beyond these is refused before anything is allocated for it.
MAX_HEADER_LENGTH = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_MANIFEST_LENGTH = 16 * 1024 * 1024
TAG_LENGTH = 16
SALT_LENGTH = 32
FRAME_DATA = b"D"
FRAME_MANIFEST = b"M"
PREAMBLE = struct.Struct(">8sHI")
FRAME_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class StreamFormat:
    """One kind of encrypted file: what tells it apart, and which key ring encrypts it.

    ``noun`` names the kind in messages ("backup", "audit archive"); ``required_header`` lists
    the kind's own header fields, which a reader refuses to go without.
    """

    name: str
    magic: bytes
    purpose: str
    kdf_label: bytes
    ad_label: bytes
    noun: str
    required_header: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.magic) != 8:
            raise ValueError("A stream format's magic is 8 bytes.")


class StreamError(EncryptionError):
    """An encrypted file cannot be read. ``str()`` is a message for the operator.

    ``stage`` names what failed: ``header``, ``key``, ``decrypt`` or ``manifest``.
    """

    def __init__(self, message: str, *, stage: str = "") -> None:
        super().__init__(message)
        self.stage = stage


def canonical_json(document: dict) -> bytes:
    """Sorted keys, no whitespace, ASCII: the bytes of a header or a manifest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def file_key(key: Key, salt: bytes, header_digest: bytes, *, label: bytes) -> AESGCM:
    """The per-file AES-256-GCM key: HKDF-SHA256 of the ring key (RFC 5869)."""
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=label + header_digest).derive(key.material)
    return AESGCM(material)


def frame_nonce(index: int, final: bool) -> bytes:
    """STREAM: 3 zero bytes, a 64-bit frame index, a final flag (12 bytes in all)."""
    return b"\x00\x00\x00" + struct.pack(">QB", index, 1 if final else 0)


def associated_data(label: bytes, header_digest: bytes, index: int, final: bool, kind: bytes) -> bytes:
    return label + header_digest + struct.pack(">QB", index, 1 if final else 0) + kind


class StreamWriter:
    """Seal a stream into the format: ``write()`` the plaintext, then ``finish(manifest)``.

    Holds at most one chunk of plaintext; the caller's file object receives each frame as soon
    as it is sealed. Also a minimal writable file object (``write``, ``flush``), so a
    ``gzip.GzipFile`` can write through it (compress, then encrypt).
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        stream_format: StreamFormat,
        key: Key,
        header: dict | None = None,
        chunk_size: int | None = None,
    ) -> None:
        self.stream = stream
        self.stream_format = stream_format
        self.key_id = key.id
        self.chunk_size = chunk_size or DEFAULT_CHUNK_SIZE
        if not 0 < self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size must be 1 to {MAX_CHUNK_SIZE} bytes")
        self.created_at = timezone.now()
        self.header = {
            **(header or {}),
            "format": stream_format.name,
            "version": FORMAT_VERSION,
            "cipher": "AES-256-GCM",
            "kdf": "HKDF-SHA256",
            "construction": "STREAM",
            "key_id": key.id,
            "salt": secrets.token_bytes(SALT_LENGTH).hex(),
            "chunk_size": self.chunk_size,
            "created_at": self.created_at.isoformat(),
        }
        header_bytes = canonical_json(self.header)
        preamble = PREAMBLE.pack(stream_format.magic, FORMAT_VERSION, len(header_bytes))
        self.header_digest = hashlib.sha256(preamble + header_bytes).digest()
        self._aead = file_key(
            key, bytes.fromhex(self.header["salt"]), self.header_digest, label=stream_format.kdf_label
        )
        self._buffer = bytearray()
        self._index = 0
        self._finished = False
        self.plaintext_bytes = 0
        self.file_bytes = 0
        self._sha256 = hashlib.sha256()
        self._emit(preamble + header_bytes)

    def _emit(self, data: bytes) -> None:
        self.stream.write(data)
        self.file_bytes += len(data)

    def _seal(self, plaintext: bytes | memoryview, *, final: bool, kind: bytes) -> None:
        sealed = self._aead.encrypt(
            frame_nonce(self._index, final),
            plaintext,
            associated_data(self.stream_format.ad_label, self.header_digest, self._index, final, kind),
        )
        self._emit(FRAME_LENGTH.pack(len(sealed)))
        self._emit(sealed)
        self._index += 1

    def write(self, data: bytes) -> int:
        """Add plaintext; every full chunk is sealed and written at once (no copy when aligned)."""
        if self._finished:
            raise ValueError(f"the {self.stream_format.noun} is already finished")
        self._sha256.update(data)
        self.plaintext_bytes += len(data)
        view = memoryview(data)
        if self._buffer:
            take = min(len(view), self.chunk_size - len(self._buffer))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < self.chunk_size:
                return len(data)
            self._seal(self._buffer, final=False, kind=FRAME_DATA)
            self._buffer.clear()
        while len(view) >= self.chunk_size:
            self._seal(view[: self.chunk_size], final=False, kind=FRAME_DATA)
            view = view[self.chunk_size :]
        if len(view):
            self._buffer += view
        return len(data)

    def flush(self) -> None:
        """Nothing to do: a partial chunk is sealed by ``finish()`` (a frame is never cut short)."""

    @property
    def plaintext_sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def chunks(self) -> int:
        return self._index

    def finish(self, manifest: dict) -> dict:
        """Seal the last partial chunk and the manifest (the one final frame); return the manifest."""
        if self._finished:
            raise ValueError(f"the {self.stream_format.noun} is already finished")
        if self._buffer:
            self._seal(self._buffer, final=False, kind=FRAME_DATA)
            self._buffer.clear()
        manifest = {
            **manifest,
            "format": self.stream_format.name,
            "version": FORMAT_VERSION,
            "key_id": self.key_id,
            "created_at": self.header["created_at"],
            "chunk_size": self.chunk_size,
            "chunks": self._index,
            # The frames of the data: everything in the file but the manifest frame.
            "encrypted_bytes": self.file_bytes,
        }
        self._seal(canonical_json(manifest), final=True, kind=FRAME_MANIFEST)
        self._finished = True
        return manifest


class StreamReader:
    """Read an encrypted file: the clear header first, then authenticated chunks, then the manifest.

    Every failure raises ``error`` (``StreamError`` or a subclass's own) with a message that says
    what is wrong with the file. ``chunks()`` yields plaintext only after its frame authenticated;
    the end of the file is known to be intact once ``manifest`` is set.
    """

    error: type[StreamError] = StreamError

    def __init__(self, stream: IO[bytes], *, stream_format: StreamFormat, name: str | None = None) -> None:
        self.stream = stream
        self.stream_format = stream_format
        noun = stream_format.noun
        self.name = name or f"the {noun}"
        self.bytes_read = 0
        preamble = self._read_exactly(PREAMBLE.size, what="the header")
        magic, version, header_length = PREAMBLE.unpack(preamble)
        if magic != stream_format.magic:
            raise self.error(
                f"{self.name} is not a Ninaivalaigal {noun} (it does not start with {stream_format.magic.decode()}).",
                stage="header",
            )
        if version != FORMAT_VERSION:
            raise self.error(
                f"{self.name} has {noun} format version {version}; this version reads format {FORMAT_VERSION}.",
                stage="header",
            )
        if not 0 < header_length <= MAX_HEADER_LENGTH:
            raise self.error(f"{self.name} has a damaged header (length {header_length}).", stage="header")
        header_bytes = self._read_exactly(header_length, what="the header")
        try:
            header = json.loads(header_bytes)
            self.key_id = str(header["key_id"])
            salt = bytes.fromhex(header["salt"])
            self.chunk_size = int(header["chunk_size"])
            if any(name not in header for name in stream_format.required_header):
                raise ValueError
            if header.get("format") != stream_format.name or len(salt) != SALT_LENGTH:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise self.error(f"{self.name} has a damaged header.", stage="header") from None
        if not 0 < self.chunk_size <= MAX_CHUNK_SIZE:
            raise self.error(f"{self.name} has a damaged header (chunk size {self.chunk_size}).", stage="header")
        self.header = header
        self.header_digest = hashlib.sha256(preamble + header_bytes).digest()
        purpose = stream_format.purpose
        try:
            key = get_key_ring(purpose).get(self.key_id)
        except UnknownKeyError:
            raise self.error(
                f"{self.name} was encrypted with {purpose} key {self.key_id!r}, which is not in the {purpose} key "
                f"ring (ENCRYPTION_{purpose.upper()}_KEYS or the configured provider). Put the retired key back in "
                "the ring (after the primary) to read it.",
                stage="key",
            ) from None
        except KeyConfigurationError as error:
            raise self.error(f"The {purpose} key ring cannot be loaded: {error}", stage="key") from None
        self._aead = file_key(key, salt, self.header_digest, label=stream_format.kdf_label)
        self._index = 0
        self.manifest: dict | None = None

    def _read_exactly(self, length: int, *, what: str) -> bytes:
        data = self.stream.read(length)
        self.bytes_read += len(data)
        if len(data) != length:
            raise self.error(f"{self.name} is truncated: it ends in the middle of {what}.", stage="decrypt")
        return data

    def chunks(self) -> Iterator[bytes]:
        """Yield the plaintext, a chunk at a time; set ``manifest`` at the final frame."""
        ad_label = self.stream_format.ad_label
        while True:
            raw_length = self.stream.read(FRAME_LENGTH.size)
            self.bytes_read += len(raw_length)
            if not raw_length:
                raise self.error(
                    f"{self.name} is truncated: it ends after chunk {self._index} without its final (manifest) chunk.",
                    stage="decrypt",
                )
            if len(raw_length) != FRAME_LENGTH.size:
                raise self.error(f"{self.name} is truncated: it ends inside chunk {self._index}.", stage="decrypt")
            (length,) = FRAME_LENGTH.unpack(raw_length)
            if not TAG_LENGTH <= length <= max(self.chunk_size, MAX_MANIFEST_LENGTH) + TAG_LENGTH:
                raise self.error(
                    f"{self.name} is corrupted: chunk {self._index} has an impossible length.", stage="decrypt"
                )
            sealed = self._read_exactly(length, what=f"chunk {self._index}")
            plaintext = None
            for final, kind in ((False, FRAME_DATA), (True, FRAME_MANIFEST)):
                try:
                    plaintext = self._aead.decrypt(
                        frame_nonce(self._index, final),
                        sealed,
                        associated_data(ad_label, self.header_digest, self._index, final, kind),
                    )
                except InvalidTag:
                    continue
                break
            if plaintext is None:
                raise self.error(
                    f"{self.name} failed authentication at chunk {self._index}: the file is corrupted or was "
                    f"changed, or it was not encrypted with the {self.stream_format.purpose} key {self.key_id!r} "
                    "of this key ring.",
                    stage="decrypt",
                )
            self._index += 1
            if not final:
                if len(plaintext) > self.chunk_size:
                    raise self.error(
                        f"{self.name} is corrupted: chunk {self._index - 1} is too long.", stage="decrypt"
                    )
                yield plaintext
                continue
            try:
                manifest = json.loads(plaintext)
            except ValueError:
                raise self.error(f"{self.name} has an unreadable manifest.", stage="manifest") from None
            if self.stream.read(1):
                raise self.error(
                    f"{self.name} has unexpected data after its final chunk (something was appended).",
                    stage="decrypt",
                )
            if not isinstance(manifest, dict) or manifest.get("key_id") != self.key_id:
                raise self.error(f"{self.name} has a manifest that does not match its header.", stage="manifest")
            self.manifest = manifest
            return

    def open(self) -> io.BufferedReader:
        """The plaintext as a readable binary file object (streamed: one chunk in memory at a time).

        Reading it to the end authenticates the final frame (``manifest`` is then set); a
        failure anywhere raises this reader's ``error`` from ``read()``.
        """
        return io.BufferedReader(_ChunkStream(self.chunks()), buffer_size=io.DEFAULT_BUFFER_SIZE)


class _ChunkStream(io.RawIOBase):
    """A raw readable stream over an iterator of byte strings."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
