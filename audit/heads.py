"""The chain head published outside the database.

Someone with database access can delete the newest events and move ``ChainHead`` back: the
chain that remains is internally valid. What they cannot change is what was already written
elsewhere. After every successful full verification and on a schedule, the head (sequence and
hash, with a MAC and the id of the ``audit_chain`` key that made it) is appended to
``<AUDIT_DIR>/heads.log`` and written to the ``audit.chain`` log, which ships off the machine in
the scaled-out setup. ``audit_verify`` compares the chain
with the last published head, so truncating the tail is detected (OWASP Logging Cheat Sheet:
tamper detection; SECURITY-STANDARDS: "truncation of the tail goes unseen").
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from audit import conf
from audit.chain import ChainKeyError, head_mac, macs_equal, signing_key, verification_key

logger = logging.getLogger("audit.chain")

HEADS_FILE_NAME = "heads.log"


def audit_dir() -> Path:
    """The folder of the audit files: ``AUDIT_DIR`` if set, else ``VAR_DIR/audit``."""
    configured = conf.get("AUDIT_DIR") or ""
    return Path(configured) if configured else Path(settings.VAR_DIR) / "audit"


def heads_path() -> Path:
    return audit_dir() / HEADS_FILE_NAME


@dataclass(frozen=True)
class PublishedHead:
    sequence: int
    hash: str
    published_at: str
    source: str
    mac_valid: bool
    # The audit_chain key that made the line's MAC (None: a line written before the key ring).
    key_id: str | None = None
    # Why the MAC could not be checked (its key is not held), else empty.
    key_problem: str = ""


def publish_head(*, sequence: int, hash_value: str, source: str) -> PublishedHead:
    """Append the head to the heads file (created 0600) and write it to the log."""
    published_at = timezone.now().isoformat(timespec="microseconds")
    key = signing_key()
    line = {
        "published_at": published_at,
        "sequence": sequence,
        "hash": hash_value,
        "source": source,
        "key_id": key.id,
        "mac": head_mac(sequence=sequence, hash_value=hash_value, published_at=published_at, key=key),
    }
    path = heads_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    encoded = (json.dumps(line, sort_keys=True) + "\n").encode("ascii")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, encoded)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    logger.info(
        "audit chain head published: sequence %s",
        sequence,
        # Named *_sha256 so the log sanitiser keeps it: a chain hash is evidence, not a secret.
        extra={"audit_head": {"sequence": sequence, "head_hmac_sha256": hash_value, "source": source}},
    )
    return PublishedHead(
        sequence=sequence, hash=hash_value, published_at=published_at, source=source, mac_valid=True, key_id=key.id
    )


def _last_line(path: Path, *, block_size: int = 4096) -> str | None:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        buffer = b""
        position = end
        while position > 0:
            step = min(block_size, position)
            position -= step
            handle.seek(position)
            buffer = handle.read(step) + buffer
            lines = buffer.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or position == 0:
                last = lines[-1].strip()
                return last.decode("ascii", errors="replace") if last else None
    return None


def last_published_head() -> PublishedHead | None:
    """Return the last published head, or ``None`` if nothing was published yet.

    A line that does not parse or whose MAC is wrong is returned with ``mac_valid=False`` (the
    verifier reports it): the heads file was edited. The MAC is checked with the key its
    ``key_id`` names (none: the legacy key); if we do not hold that key, ``mac_valid`` is False
    and ``key_problem`` says why.
    """
    path = heads_path()
    if not path.exists():
        return None
    raw = _last_line(path)
    if not raw:
        return None
    try:
        line = json.loads(raw)
        sequence = int(line["sequence"])
        hash_value = str(line["hash"])
        published_at = str(line["published_at"])
        key_id = line.get("key_id")
        if key_id is not None and not isinstance(key_id, str):
            raise TypeError("key_id")
    except (ValueError, KeyError, TypeError):
        return PublishedHead(sequence=-1, hash="", published_at="", source="unreadable", mac_valid=False)
    source = str(line.get("source", ""))
    try:
        key = verification_key(key_id)
    except ChainKeyError as error:
        return PublishedHead(
            sequence=sequence,
            hash=hash_value,
            published_at=published_at,
            source=source,
            mac_valid=False,
            key_id=key_id,
            key_problem=str(error),
        )
    expected = head_mac(sequence=sequence, hash_value=hash_value, published_at=published_at, key=key)
    return PublishedHead(
        sequence=sequence,
        hash=hash_value,
        published_at=published_at,
        source=source,
        mac_valid=macs_equal(expected, str(line.get("mac", ""))),
        key_id=key_id,
    )
