"""Check the audit trail with nothing but a public key: the Merkle tree, checkpoints and proofs.

One file, the standard library and ``cryptography`` only, no Django: copy it to an auditor's
machine and run it there (``python offline_verifier.py --help``). The platform imports the same
functions to build what this file checks, so producer and verifier cannot drift apart; the
known-answer tests (RFC 6962 tree heads and proofs, RFC 8032 Ed25519) pin both.

The tree (RFC 6962 §2.1, RFC 9162 §2.1)
---------------------------------------
Leaf ``i`` (0-based) is the sealed event with sequence ``i + 1``. Its *leaf data* is

    b"audit-event-leaf/v1\\n" ‖ ASCII(sequence) ‖ b"\\n" ‖ canonical content of the event

where the canonical content is the sorted-key, whitespace-free, ASCII JSON of the event's
content fields (``canonical_content``: the bytes the chain's content MAC is made over). The leaf
is the event itself, not its keyed chain hash, so anyone holding an exported event can recompute
its leaf without any key. Hashes are SHA-256 with RFC 6962's domain separation: a leaf hash is
``SHA-256(0x00 ‖ leaf data)``, an interior node ``SHA-256(0x01 ‖ left ‖ right)``, the empty tree
``SHA-256("")``; a tree of ``n`` leaves splits at the largest power of two below ``n``.

Checkpoints (C2SP tlog-checkpoint, signed-note)
-----------------------------------------------
A checkpoint is a signed note whose text is::

    <origin>
    <tree size, decimal>
    <root hash, standard base64>
    time <UTC time of the checkpoint, RFC 3339 with microseconds>

followed by an empty line and one signature line per signer::

    — <key name> <base64(4-byte key hash ‖ 64-byte Ed25519 signature)>

The fourth line is a checkpoint *extension line* (allowed by the checkpoint format, ignored by
verifiers that do not know it). The key name is the origin; the key hash is the first four bytes
of ``SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)``; the signature is Ed25519 (RFC 8032) over the
note text, final newline included. A verifier key is written
``<name>+<hex key hash>+<base64(0x01 ‖ 32-byte public key)>`` (what
``manage.py audit_checkpoint --public-key`` prints).

Exit status of the command line: 0 verified, 1 not verified (one line saying why), 2 bad usage.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.path and sys.path[0]:
    # Run as a script from the repository, this file's folder would come first on the path and its
    # neighbours (audit/selectors.py, audit/signals.py) would shadow the standard library's modules.
    import os.path

    if os.path.samefile(sys.path[0], os.path.dirname(os.path.abspath(__file__))):
        _script_folder = sys.path.pop(0)

import argparse
import base64
import datetime
import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_LABEL = b"audit-event-leaf/v1\n"
# The leaf of a sequence number the sealer skipped because a row it did not allocate occupied it.
SKIPPED_LEAF_LABEL = b"audit-sequence-skipped/v1\n"
CANONICAL_VERSION = 1
# signed-note signature types (c2sp.org/signed-note): 0x01 Ed25519.
ED25519_TYPE = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
PROOF_FORMAT = "ninaivalaigal-audit-inclusion/v1"
CONSISTENCY_FORMAT = "ninaivalaigal-audit-consistency/v1"


class VerificationError(Exception):
    """Something does not verify; the message says what, in one line."""


# --- The event's canonical content (shared with audit.chain) ----------------------------------


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
    """Return the canonical JSON bytes of an event's content.

    Sorted keys, no whitespace, ASCII only, UTC timestamps with microseconds, compressed IP
    addresses, strings for ids: identical whether the values come from ``record()``, from
    SQLite, from PostgreSQL, from an archive line or from an exported JSON document.
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


# --- RFC 6962 hashing ----------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 §2.1: the hash of a leaf, ``SHA-256(0x00 ‖ data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1: the hash of an interior node, ``SHA-256(0x01 ‖ left ‖ right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def event_leaf_data(sequence: int, content: bytes) -> bytes:
    """The leaf data of the event at ``sequence`` whose canonical content is ``content``."""
    return LEAF_LABEL + b"%d\n" % sequence + content


def skipped_leaf_hash(sequence: int) -> bytes:
    """The leaf hash of a sequence the sealer skipped (a forged row held it; the sealer chained none)."""
    return leaf_hash(SKIPPED_LEAF_LABEL + b"%d" % sequence)


def event_leaf_hash(sequence: int, values: dict[str, Any]) -> bytes:
    """The leaf hash of an event given its sequence and content fields."""
    return leaf_hash(event_leaf_data(sequence, canonical_content(values)))


def _split(size: int) -> int:
    """The largest power of two strictly below ``size`` (``size`` >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (RFC 6962 §2.1), iteratively through a frontier."""
    frontier: list[bytes] = []
    for size, value in enumerate(leaf_hashes):
        frontier_append(frontier, size, value)
    return frontier_root(frontier)


def frontier_append(frontier: list[bytes], size: int, value: bytes) -> None:
    """Append leaf hash ``value`` to the frontier of a tree of ``size`` leaves, in place.

    The frontier (the compact range [0, size)) holds one hash per set bit of ``size``, the
    largest subtree first: all a growing tree needs to compute its root and to keep growing.
    """
    node = value
    while size & 1:
        node = node_hash(frontier.pop(), node)
        size >>= 1
    frontier.append(node)


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The root hash of the tree whose frontier is ``frontier``."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for value in reversed(frontier[:-1]):
        root = node_hash(value, root)
    return root


def frontier_ranges(size: int) -> list[tuple[int, int]]:
    """The leaf ranges [start, end) of the frontier's subtrees, in frontier order."""
    ranges, start = [], 0
    for bit in range(size.bit_length() - 1, -1, -1):
        if size >> bit & 1:
            ranges.append((start, start + (1 << bit)))
            start += 1 << bit
    return ranges


# A function returning MTH(D[start:end]).
SubtreeHasher = Callable[[int, int], bytes]


def list_hasher(leaf_hashes: Sequence[bytes], offset: int = 0) -> SubtreeHasher:
    """A ``SubtreeHasher`` over in-memory leaf hashes (``offset``: the index of the first)."""

    def subtree(start: int, end: int) -> bytes:
        return root_of(leaf_hashes[start - offset : end - offset])

    return subtree


def inclusion_proof(index: int, size: int, subtree: SubtreeHasher) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(index, D[0:size]): the audit path of leaf ``index``."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, subtree: SubtreeHasher) -> list[bytes]:
    """RFC 6962 §2.1.2 PROOF(m, D[0:n]): the consistency proof from ``old_size`` to ``new_size``.

    Every node it needs is either a subtree of the old tree's frontier or lies wholly in
    [old_size, new_size): a log that kept its frontier at ``old_size`` answers it from the new
    leaves alone.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree(start, end))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, complete)
            proof.append(subtree(start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(subtree(start, start + k))

    subproof(old_size, 0, new_size, True)
    return proof


def frontier_hasher(old_size: int, old_frontier: Sequence[bytes], new_leaves: Sequence[bytes]) -> SubtreeHasher:
    """A ``SubtreeHasher`` for consistency proofs from the old frontier and the leaves added since."""
    nodes = dict(zip(frontier_ranges(old_size), old_frontier, strict=True))

    def subtree(start: int, end: int) -> bytes:
        if end <= old_size:
            try:
                return nodes[(start, end)]
            except KeyError:
                raise ValueError(f"subtree [{start}, {end}) is not in the frontier of {old_size}") from None
        if start >= old_size:
            return root_of(new_leaves[start - old_size : end - old_size])
        raise ValueError(f"subtree [{start}, {end}) straddles {old_size}")

    return subtree


def root_from_inclusion(index: int, size: int, value: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root that ``proof`` proves leaf hash ``value`` at ``index`` into."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of {size}")
    fn, sn, result = index, size - 1, value
    for sibling in proof:
        _check_hash(sibling)
        if sn == 0:
            raise VerificationError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the inclusion proof is shorter than the tree is deep")
    return result


def verify_inclusion(index: int, size: int, value: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ``VerificationError`` unless ``proof`` puts leaf hash ``value`` at ``index`` under ``root``."""
    if root_from_inclusion(index, size, value, proof) != root:
        raise VerificationError(f"leaf {index} is not in the tree of size {size} with this root (inclusion)")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise ``VerificationError`` unless the new tree extends the old one."""
    if not 0 <= old_size <= new_size:
        raise VerificationError(f"tree size went from {old_size} down to {new_size} (the log shrank)")
    if old_size == new_size:
        if proof:
            raise VerificationError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise VerificationError(f"two different roots for the same tree size {new_size} (the log forked)")
        return
    if old_size == 0:
        if proof:
            raise VerificationError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise VerificationError("the consistency proof is empty")
    for value in proof:
        _check_hash(value)
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first_result = second_result = path[0]
    for value in path[1:]:
        if sn == 0:
            raise VerificationError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            first_result = node_hash(value, first_result)
            second_result = node_hash(value, second_result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second_result = node_hash(second_result, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the consistency proof is too short")
    if first_result != old_root:
        raise VerificationError(f"the tree of size {new_size} does not extend the old tree of size {old_size}")
    if second_result != new_root:
        raise VerificationError(f"the consistency proof does not lead to the root of size {new_size}")


def _check_hash(value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise VerificationError("a proof hash is not 32 bytes")


# --- Signed notes and checkpoints (c2sp.org/signed-note, c2sp.org/tlog-checkpoint) ----------------


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte key hash of an Ed25519 signed-note key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + public_key).digest()[:4]


def _check_key_name(name: str) -> None:
    if not name or any(character.isspace() or character == "+" for character in name):
        raise ValueError("a signed-note key name must be non-empty, without spaces or '+'")


def verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key text ``<name>+<hex key hash>+<base64(0x01 ‖ public key)>``."""
    _check_key_name(name)
    encoded = base64.b64encode(bytes([ED25519_TYPE]) + public_key).decode("ascii")
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


@dataclass(frozen=True)
class Verifier:
    """A parsed verifier key."""

    name: str
    key_hash: bytes
    public_key: Ed25519PublicKey


def parse_verifier_key(text: str) -> Verifier:
    """Parse ``<name>+<hex key hash>+<base64 key>``; ``VerificationError`` if it is not one."""
    parts = text.strip().split("+", 2)  # the base64 key may itself hold a "+"
    if len(parts) != 3:
        raise VerificationError("a verifier key is <name>+<hex key hash>+<base64 key>")
    name, hash_hex, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        expected_hash = bytes.fromhex(hash_hex)
    except ValueError:
        raise VerificationError("the verifier key is not valid hex and base64") from None
    if len(raw) != 33 or raw[0] != ED25519_TYPE:
        raise VerificationError("the verifier key is not an Ed25519 signed-note key")
    if key_hash(name, raw[1:]) != expected_hash:
        raise VerificationError("the verifier key's hash does not match its name and key")
    return Verifier(name=name, key_hash=expected_hash, public_key=Ed25519PublicKey.from_public_bytes(raw[1:]))


def public_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_note(text: str, *, name: str, private_key: Ed25519PrivateKey) -> str:
    """Return ``text`` signed as a note: text, an empty line, one signature line."""
    _check_note_text(text)
    _check_key_name(name)
    signature = private_key.sign(text.encode("utf-8"))
    blob = base64.b64encode(key_hash(name, public_key_bytes(private_key)) + signature).decode("ascii")
    return f"{text}\n{SIGNATURE_PREFIX}{name} {blob}\n"


def _check_note_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("note text is non-empty lines, each ending with a newline")
    if any(ord(character) < 0x20 and character != "\n" for character in text):
        raise ValueError("note text holds no control characters")


def open_note(note: str, verifier: Verifier) -> str:
    """Verify ``note``'s signature by ``verifier``; return its text. ``VerificationError`` otherwise."""
    text, separator, signatures = note.rpartition("\n\n")
    if not separator:
        raise VerificationError("not a signed note (no empty line before the signatures)")
    text += "\n"
    for line in signatures.split("\n"):
        if not line:
            continue
        if not line.startswith(SIGNATURE_PREFIX):
            raise VerificationError("a signature line of the note is malformed")
        name, _, blob = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        if name != verifier.name:
            continue
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError:
            raise VerificationError("a signature of the note is not base64") from None
        if len(raw) != 68 or raw[:4] != verifier.key_hash:
            continue
        try:
            verifier.public_key.verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise VerificationError(f"the signature by {verifier.name} is not valid (the note was changed)") from None
        return text
    raise VerificationError(f"the note carries no signature by the key {verifier.name}")


@dataclass(frozen=True)
class Checkpoint:
    """The body of a checkpoint: origin, tree size, root hash, time."""

    origin: str
    size: int
    root: bytes
    time: str = ""
    # The tree's epoch: 1 until a reconcile after a restore starts a new tree (no line), then 2, 3...
    epoch: int = 1
    # In a later epoch: "<epoch> <size> <root, base64>" of the last checkpoint of the epoch before,
    # which the new tree could not extend (the tail lost with the restore is named, not forgotten).
    previous: str = ""

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        if self.time:
            lines.append(f"time {self.time}")
        if self.epoch != 1:
            lines.append(f"epoch {self.epoch}")
        if self.previous:
            lines.append(f"previous {self.previous}")
        return "".join(line + "\n" for line in lines)

    def previous_checkpoint(self) -> tuple[int, int, bytes] | None:
        """(epoch, size, root) named by the ``previous`` line, or ``None``."""
        if not self.previous:
            return None
        epoch_text, size_text, root_text = self.previous.split(" ")
        return int(epoch_text), int(size_text), base64.b64decode(root_text, validate=True)


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse a checkpoint's body (already verified); ``VerificationError`` if malformed."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise VerificationError("a checkpoint has an origin, a size and a root hash line")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise VerificationError("the checkpoint's tree size is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError:
        raise VerificationError("the checkpoint's root hash is not base64") from None
    if len(root) != HASH_SIZE:
        raise VerificationError("the checkpoint's root hash is not 32 bytes")
    time_value, epoch, previous = "", 1, ""
    for extension in lines[3:-1]:
        if extension.startswith("time "):
            time_value = extension[5:]
        elif extension.startswith("epoch "):
            epoch_text = extension[6:]
            if not epoch_text.isdigit() or epoch_text.startswith("0") or epoch_text == "1":
                raise VerificationError("the checkpoint's epoch is not a decimal number above 1")
            epoch = int(epoch_text)
        elif extension.startswith("previous "):
            previous = extension[9:]
    checkpoint = Checkpoint(
        origin=origin, size=int(size_text), root=root, time=time_value, epoch=epoch, previous=previous
    )
    if previous:
        try:
            previous_epoch, _size, previous_root = checkpoint.previous_checkpoint()
        except ValueError:
            raise VerificationError("the checkpoint's previous line is not '<epoch> <size> <root>'") from None
        if previous_epoch >= epoch or len(previous_root) != HASH_SIZE:
            raise VerificationError("the checkpoint's previous line names no earlier epoch")
    return checkpoint


def sign_checkpoint(checkpoint: Checkpoint, *, private_key: Ed25519PrivateKey) -> str:
    """The signed note of ``checkpoint``; the key name is its origin."""
    return sign_note(checkpoint.text(), name=checkpoint.origin, private_key=private_key)


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Verify a checkpoint note's signature and parse it; ``VerificationError`` otherwise."""
    checkpoint = parse_checkpoint_text(open_note(note, verifier))
    if checkpoint.origin != verifier.name:
        raise VerificationError(f"the checkpoint's origin {checkpoint.origin!r} is not the key's name")
    return checkpoint


# --- Documents: inclusion and consistency proofs as JSON -----------------------------------------


def _hashes(values: Iterable[Any]) -> list[bytes]:
    try:
        return [base64.b64decode(value, validate=True) for value in values]
    except (ValueError, TypeError):
        raise VerificationError("a proof hash is not base64") from None


def verify_inclusion_document(document: dict[str, Any], verifier: Verifier) -> Checkpoint:
    """Check an ``audit_proof`` document: the checkpoint's signature and the event's inclusion."""
    if document.get("format") != PROOF_FORMAT:
        raise VerificationError(f"not an inclusion proof document ({PROOF_FORMAT})")
    checkpoint = open_checkpoint(str(document.get("checkpoint", "")), verifier)
    try:
        sequence = int(document["sequence"])
        index = int(document["leaf_index"])
        # The sequence before the tree's first leaf (0 unless the tree began after the chain, or in a
        # later epoch); the leaf binds the sequence itself, so this only places it.
        tree_base = int(document.get("tree_base", 0))
        event = document["event"]
        value = event_leaf_hash(sequence, event)
    except (KeyError, TypeError, ValueError) as error:
        raise VerificationError(f"the proof document is incomplete or malformed: {error}") from None
    if index != sequence - tree_base - 1:
        raise VerificationError(f"leaf {index} cannot hold sequence {sequence}")
    if int(document.get("tree_size", -1)) != checkpoint.size:
        raise VerificationError("the proof's tree size is not the checkpoint's")
    verify_inclusion(index, checkpoint.size, value, _hashes(document.get("inclusion_path", [])), checkpoint.root)
    return checkpoint


def verify_consistency_document(document: dict[str, Any], verifier: Verifier) -> tuple[Checkpoint, Checkpoint]:
    """Check a consistency document: both checkpoints' signatures and the proof between them."""
    if document.get("format") != CONSISTENCY_FORMAT:
        raise VerificationError(f"not a consistency proof document ({CONSISTENCY_FORMAT})")
    old = open_checkpoint(str(document.get("old_checkpoint", "")), verifier)
    new = open_checkpoint(str(document.get("new_checkpoint", "")), verifier)
    verify_consistency(old.size, new.size, old.root, new.root, _hashes(document.get("consistency_path", [])))
    return old, new


def verify_event_set(events: Iterable[dict[str, Any]], checkpoint: Checkpoint, *, tree_base: int = 0) -> int:
    """Recompute the tree from exported events and compare with ``checkpoint``; return the events checked.

    ``tree_base``: the sequence before the tree's first leaf (0 unless the tree was added to an
    existing chain; ``AuditCheckpoint.tree_base``). Events after the checkpoint's size are ignored.
    """
    frontier: list[bytes] = []
    size = 0
    for event in events:
        if size == checkpoint.size:
            break
        try:
            sequence = int(event["sequence"])
        except (KeyError, TypeError, ValueError):
            raise VerificationError(f"event {size + 1} of the export has no sequence") from None
        if sequence <= tree_base:
            continue
        if sequence != tree_base + size + 1:
            raise VerificationError(
                f"the export skips from #{tree_base + size} to #{sequence}: event #{tree_base + size + 1} is missing"
            )
        try:
            # A number the sealer skipped (audit_proof --skipped lists them): its leaf names only the number.
            value = skipped_leaf_hash(sequence) if event.get("skipped") is True else event_leaf_hash(sequence, event)
        except (KeyError, TypeError, ValueError) as error:
            raise VerificationError(f"event #{sequence} of the export is malformed: {error}") from None
        frontier_append(frontier, size, value)
        size += 1
    if size < checkpoint.size:
        raise VerificationError(
            f"the export ends at #{tree_base + size} but the checkpoint covers {checkpoint.size} events"
        )
    if frontier_root(frontier) != checkpoint.root:
        raise VerificationError(
            f"the exported events #{tree_base + 1}..#{tree_base + size} do not hash to the checkpoint's root "
            "(changed, removed or reordered)"
        )
    return size


# --- Command line -----------------------------------------------------------------------------


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def _read_key(value: str) -> Verifier:
    candidate = Path(value)
    text = candidate.read_text(encoding="utf-8") if "+" not in value and candidate.exists() else value
    return parse_verifier_key(text.strip().splitlines()[0] if text.strip() else "")


def _read_json(path: str) -> dict[str, Any]:
    try:
        document = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise VerificationError(f"{path} is not JSON: {error.msg} (line {error.lineno})") from None
    if not isinstance(document, dict):
        raise VerificationError(f"{path} is not a JSON object")
    return document


def _events(path: str) -> list[dict[str, Any]]:
    """The events of a JSON Lines export, in sequence order (the console exports them by time)."""
    events = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise VerificationError(f"line {number} of {path} is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("sequence"), int):
            raise VerificationError(f"line {number} of {path} is not a sealed event (no sequence)")
        events.append(event)
    return sorted(events, key=lambda event: event["sequence"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="offline_verifier.py",
        description="Verify Ninaivalaigal audit checkpoints and proofs with the log's public key only.",
    )
    parser.add_argument("--key", required=True, help="The verifier key text, or a file holding it.")
    commands = parser.add_subparsers(dest="command", required=True)
    checkpoint_parser = commands.add_parser("checkpoint", help="Check a checkpoint's signature.")
    checkpoint_parser.add_argument("note", help="The checkpoint note (a file, or - for standard input).")
    inclusion_parser = commands.add_parser("inclusion", help="Check an event's inclusion proof (audit_proof output).")
    inclusion_parser.add_argument("proof", help="The JSON document of audit_proof EVENT.")
    consistency_parser = commands.add_parser("consistency", help="Check a consistency proof between two checkpoints.")
    consistency_parser.add_argument("proof", help="The JSON document of audit_proof --consistency OLD NEW.")
    events_parser = commands.add_parser("events", help="Check exported events (JSON lines) against a checkpoint.")
    events_parser.add_argument("events", help="JSON lines, one event per line (the console's export), from #1.")
    events_parser.add_argument("--checkpoint", required=True, help="The checkpoint note the events must reach.")
    events_parser.add_argument("--tree-base", type=int, default=0, help="The sequence before the first leaf (0).")
    arguments = parser.parse_args(argv)
    try:
        verifier = _read_key(arguments.key)
        if arguments.command == "checkpoint":
            checkpoint = open_checkpoint(_read_text(arguments.note), verifier)
            print(f"OK: checkpoint of {checkpoint.origin} at size {checkpoint.size} ({checkpoint.time}) is signed.")
        elif arguments.command == "inclusion":
            document = _read_json(arguments.proof)
            checkpoint = verify_inclusion_document(document, verifier)
            print(f"OK: event #{document['sequence']} is in the log at size {checkpoint.size}.")
        elif arguments.command == "consistency":
            old, new = verify_consistency_document(_read_json(arguments.proof), verifier)
            print(f"OK: the log at size {new.size} extends the log at size {old.size}.")
        else:
            checkpoint = open_checkpoint(_read_text(arguments.checkpoint), verifier)
            count = verify_event_set(_events(arguments.events), checkpoint, tree_base=arguments.tree_base)
            print(f"OK: the {count} exported events are exactly the log at size {checkpoint.size}.")
    except VerificationError as error:
        print(f"NOT VERIFIED: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
