"""Signed checkpoints of the audit Merkle tree, and their publication off the host.

A checkpoint is the tree's size and root hash and the time, as a C2SP signed note (format:
``audit.offline_verifier``) signed with Ed25519 by the primary key of the ``audit_checkpoint``
key ring (``encryption.keyring``: each key is the 32-byte Ed25519 seed, from the environment, a
mounted file, Vault or AWS like every other key). Whoever verifies needs only the public key
(``manage.py audit_checkpoint --public-key``), which cannot sign: holding it, or the chain's HMAC
keys, does not let anyone rewrite history that a checkpoint already covers.

Checkpoints are made by the sealer every ``AUDIT_CHECKPOINT_INTERVAL`` seconds when the tree has
grown (``publish_if_due``, after each sealing run and the periodic ``audit_seal`` task) and on
demand (``manage.py audit_checkpoint``). Each is stored in ``AuditCheckpoint`` with the frontier at
its size, then handed to the sinks of ``AUDIT_CHECKPOINT_SINKS``:

* ``file``: appended to ``<AUDIT_DIR>/checkpoints.log`` (one JSON line per checkpoint: size,
  root, time, key id and the note), created 0600, fsync'd; on the scaled-out setup the folder is
  shared by every app container and belongs in off-host backups;
* ``email``: the signed note mailed to ``AUDIT_CHECKPOINT_EMAIL_TO`` through Django's email
  backend, once per new checkpoint (mailboxes the host's operators do not administer keep a copy);
* ``witness``: submitted to a witness (``audit/witness.py``, or any service speaking the C2SP
  tlog-witness ``add-checkpoint`` request) at ``AUDIT_WITNESS_URL`` with a consistency proof from
  the size the witness last accepted. The witness refuses a checkpoint that does not extend the
  one it holds, so a host that cut its tail and re-signed can no longer publish.

A sink that fails is logged and never stops sealing; ``audit_verify`` compares the tree with what
was published and reports missing, shortened or inconsistent history.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction
from django.utils import timezone

from audit import conf
from audit import offline_verifier as tlog
from audit.heads import audit_dir
from audit.merkle import TreeDataMissing, consistency_proof, format_frontier, parse_frontier
from encryption.keyring import get_key_ring

logger = logging.getLogger("audit.chain")

KEY_PURPOSE = "audit_checkpoint"
CHECKPOINTS_FILE_NAME = "checkpoints.log"
SINKS = ("file", "witness", "email")


def checkpoints_path() -> Path:
    return audit_dir() / CHECKPOINTS_FILE_NAME


def origin() -> str:
    """The checkpoints' origin line, which is also the signing key's name."""
    return str(conf.get("AUDIT_CHECKPOINT_ORIGIN"))


def _private_key(material: bytes) -> Ed25519PrivateKey:
    # The ring's 32 random bytes are the Ed25519 private key (its seed, RFC 8032 §5.1.5).
    return Ed25519PrivateKey.from_private_bytes(material)


def signing_key() -> tuple[str, Ed25519PrivateKey]:
    """The id and Ed25519 key of the ``audit_checkpoint`` ring's primary key."""
    key = get_key_ring(KEY_PURPOSE).primary
    return key.id, _private_key(key.material)


def verifier_keys() -> list[tuple[str, str]]:
    """(key id, verifier key text) of every key of the ring, the signing (primary) key first."""
    name = origin()
    return [
        (key.id, tlog.verifier_key(name, tlog.public_key_bytes(_private_key(key.material))))
        for key in get_key_ring(KEY_PURPOSE)
    ]


def verifiers() -> list[tlog.Verifier]:
    return [tlog.parse_verifier_key(text) for _, text in verifier_keys()]


def open_checkpoint(note: str) -> tlog.Checkpoint:
    """Verify ``note`` with any key of the ring; ``VerificationError`` if none signed it."""
    problem: tlog.VerificationError | None = None
    for verifier in verifiers():
        try:
            return tlog.open_checkpoint(note, verifier)
        except tlog.VerificationError as error:
            problem = error
    raise problem or tlog.VerificationError("no audit_checkpoint key is configured")


def _utc_text(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkpoint_create():
    """Sign a checkpoint of the tree as it stands, if it grew since the last; return it or ``None``.

    Under the chain head's lock, so two processes never sign two checkpoints of one size.
    """
    from audit.models import AuditCheckpoint, ChainHead

    with transaction.atomic():
        head = ChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None or head.tree_size == 0 or head.tree_base + head.tree_size != head.sequence:
            return None
        last_size = (
            AuditCheckpoint.objects.filter(epoch=head.tree_epoch)
            .order_by("-tree_size")
            .values_list("tree_size", flat=True)
            .first()
        )
        if last_size is not None and last_size >= head.tree_size:
            return None
        return _sign_and_store(
            epoch=head.tree_epoch,
            tree_size=head.tree_size,
            tree_base=head.tree_base,
            frontier=parse_frontier(head.tree_frontier),
        )


def _sign_and_store(*, epoch: int, tree_size: int, tree_base: int, frontier: list[bytes], previous: str = ""):
    from audit.models import AuditCheckpoint

    now = timezone.now()
    checkpoint = tlog.Checkpoint(
        origin=origin(),
        size=tree_size,
        root=tlog.frontier_root(frontier),
        time=_utc_text(now),
        epoch=epoch,
        previous=previous,
    )
    key_id, private_key = signing_key()
    return AuditCheckpoint.objects.create(
        epoch=epoch,
        tree_size=tree_size,
        tree_base=tree_base,
        root_hash=checkpoint.root.hex(),
        frontier=format_frontier(frontier),
        note=tlog.sign_checkpoint(checkpoint, private_key=private_key),
        key_id=key_id,
        created_at=now,
    )


def epoch_start_checkpoint(*, epoch: int, tree_base: int, previous: tuple[int, int, bytes]):
    """Sign the empty tree of a new epoch, naming the last checkpoint of the epoch before.

    The first checkpoint of an epoch started by ``audit_reconcile --after-restore``: its
    ``previous`` line says which published tree the new one does not extend, so the witness can
    accept the new tree while the lost tail stays on the record (signed, and in the witness's log).
    """
    previous_epoch, previous_size, previous_root = previous
    text = f"{previous_epoch} {previous_size} {base64.b64encode(previous_root).decode('ascii')}"
    return _sign_and_store(epoch=epoch, tree_size=0, tree_base=tree_base, frontier=[], previous=text)


@dataclass
class PublishResult:
    """What one publication did: the checkpoint, and each sink's outcome."""

    checkpoint: object | None = None
    # A new checkpoint was signed (else the last one was offered to the witness again).
    fresh: bool = False
    sinks: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(outcome == "ok" for outcome in self.sinks.values())


def checkpoint_publish(*, create: bool = True) -> PublishResult:
    """Make a checkpoint (when the tree grew) and hand it to every configured sink.

    With nothing new, the last checkpoint is offered to the witness again (it may have been down)
    but not appended to the file twice.
    """
    from audit.models import AuditCheckpoint

    checkpoint = checkpoint_create() if create else None
    fresh = checkpoint is not None
    if checkpoint is None:
        checkpoint = AuditCheckpoint.objects.order_by("-epoch", "-tree_size").first()
        if checkpoint is None:
            return PublishResult()
    return publish_checkpoint(checkpoint, fresh=fresh)


def publish_checkpoint(checkpoint, *, fresh: bool) -> PublishResult:
    """Hand one stored checkpoint to every configured sink (the file only when ``fresh``)."""
    result = PublishResult(checkpoint=checkpoint, fresh=fresh)
    for sink in conf.get("AUDIT_CHECKPOINT_SINKS") or []:
        try:
            if sink == "file":
                if fresh:
                    append_to_file(checkpoint)
                result.sinks[sink] = "ok"
            elif sink == "witness":
                result.sinks[sink] = submit_to_witness(checkpoint)
            elif sink == "email":
                if fresh:
                    send_by_email(checkpoint)
                result.sinks[sink] = "ok"
            else:
                result.sinks[sink] = f"unknown sink {sink!r}"
        except Exception as error:  # a sink never stops sealing; audit_verify reports the gap
            result.sinks[sink] = f"failed: {type(error).__name__}: {error}"
        if result.sinks[sink] != "ok":
            logger.error("audit checkpoint %s not published to %s: %s", checkpoint.tree_size, sink, result.sinks[sink])
    if fresh:
        logger.info(
            "audit checkpoint published: tree size %s",
            checkpoint.tree_size,
            extra={"audit_checkpoint": {"tree_size": checkpoint.tree_size, "root_sha256": checkpoint.root_hash}},
        )
    return result


def append_to_file(checkpoint) -> None:
    """Append the checkpoint to ``checkpoints.log`` (created 0600), fsync'd."""
    line = {
        "epoch": checkpoint.epoch,
        "tree_size": checkpoint.tree_size,
        "tree_base": checkpoint.tree_base,
        "root_sha256": checkpoint.root_hash,
        "time": _utc_text(checkpoint.created_at),
        "key_id": checkpoint.key_id,
        "note": checkpoint.note,
    }
    path = checkpoints_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, (json.dumps(line, sort_keys=True) + "\n").encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def send_by_email(checkpoint) -> None:
    """Mail the signed note to ``AUDIT_CHECKPOINT_EMAIL_TO`` (Django's email backend: SMTP, or files under var/mail).

    Each new checkpoint once; the note is the whole message body, so a recipient (or their mail
    archive, off the host) can check it later with ``offline_verifier.py --key KEY checkpoint``.
    A failure is the sink's outcome, logged; it never stops sealing.
    """
    from django.core.mail import send_mail

    recipients = [str(address) for address in conf.get("AUDIT_CHECKPOINT_EMAIL_TO") or []]
    epoch = f" (epoch {checkpoint.epoch})" if checkpoint.epoch != 1 else ""
    send_mail(
        subject=f"Audit checkpoint {origin()}: {checkpoint.tree_size} events{epoch}",
        message=checkpoint.note,
        from_email=None,
        recipient_list=recipients,
    )


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One line of ``checkpoints.log``, its note verified (``problem`` says why not)."""

    line: int
    tree_size: int
    tree_base: int
    root: bytes
    note: str
    problem: str = ""
    epoch: int = 1


def read_checkpoints_file() -> list[PublishedCheckpoint] | None:
    """Every checkpoint of ``checkpoints.log`` in file order, or ``None`` if there is no file."""
    path = checkpoints_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    published = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            note = str(line["note"])
            base = int(line.get("tree_base", 0))
        except (ValueError, KeyError, TypeError):
            published.append(PublishedCheckpoint(number, -1, 0, b"", "", "the line is not a checkpoint record"))
            continue
        try:
            checkpoint = open_checkpoint(note)
        except tlog.VerificationError as error:
            published.append(PublishedCheckpoint(number, -1, base, b"", note, str(error)))
            continue
        published.append(
            PublishedCheckpoint(number, checkpoint.size, base, checkpoint.root, note, epoch=checkpoint.epoch)
        )
    return published


# --- The witness sink (C2SP tlog-witness add-checkpoint) ----------------------------------------


class WitnessError(Exception):
    pass


def _witness_request(body: str) -> tuple[int, str]:
    url = str(conf.get("AUDIT_WITNESS_URL") or "").rstrip("/")
    if not url:
        raise WitnessError("AUDIT_WITNESS_URL is not set")
    if not url.startswith(("https://", "http://")):
        raise WitnessError("AUDIT_WITNESS_URL must be an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        f"{url}/add-checkpoint", data=body.encode("utf-8"), method="POST", headers={"Content-Type": "text/plain"}
    )
    try:
        with urllib.request.urlopen(request, timeout=float(conf.get("AUDIT_WITNESS_TIMEOUT"))) as response:  # noqa: S310
            return response.status, response.read(4096).decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(4096).decode("utf-8", errors="replace")


def witness_body(*, old_size: int, proof: list[bytes], note: str) -> str:
    """The add-checkpoint request: ``old <size>``, the proof lines, an empty line, the checkpoint."""
    lines = [f"old {old_size}", *(base64.b64encode(value).decode("ascii") for value in proof)]
    return "\n".join(lines) + "\n\n" + note


def _proof_from(old_size: int, checkpoint) -> list[bytes]:
    from audit.models import AuditCheckpoint

    if old_size == 0:
        return []
    old = AuditCheckpoint.objects.filter(epoch=checkpoint.epoch, tree_size=old_size).first()
    if old is None:
        raise WitnessError(f"the witness holds size {old_size}, which this log never checkpointed (a fork?)")
    return consistency_proof(
        old_size=old_size,
        old_frontier=parse_frontier(old.frontier),
        new_size=checkpoint.tree_size,
        tree_base=checkpoint.tree_base,
    )


def submit_to_witness(checkpoint) -> str:
    """Submit ``checkpoint`` to the witness; return ``"ok"`` or why not.

    The first try assumes the witness holds our previous checkpoint; if it answers 409 with the
    size it holds, the proof is made from that size and sent once more.
    """
    from audit.models import AuditCheckpoint

    previous = (
        AuditCheckpoint.objects.filter(epoch=checkpoint.epoch, tree_size__lt=checkpoint.tree_size)
        .order_by("-tree_size")
        .values_list("tree_size", flat=True)
        .first()
        or 0
    )
    old_size = previous
    for _attempt in range(2):
        try:
            proof = _proof_from(old_size, checkpoint)
        except (WitnessError, TreeDataMissing) as error:
            return f"refused locally: {error}"
        status, text = _witness_request(witness_body(old_size=old_size, proof=proof, note=checkpoint.note))
        if status == 200:
            return "ok"
        if status == 409 and text.strip().isdigit():
            held = int(text.strip())
            if checkpoint.epoch > 1 and old_size == 0 and checkpoint.tree_size > 0:
                # The witness still holds an older epoch: it needs this epoch's first checkpoint first.
                start = AuditCheckpoint.objects.filter(epoch=checkpoint.epoch, tree_size=0).first()
                if start is not None and start.pk != checkpoint.pk and submit_to_witness(start) == "ok":
                    continue
            if held == checkpoint.tree_size:
                return "ok"  # the witness already holds this checkpoint
            if held > checkpoint.tree_size:
                return f"the witness holds a larger tree ({held}) than this log ({checkpoint.tree_size})"
            old_size = held
            continue
        return f"witness answered {status}: {text.strip()[:200]}"
    return "the witness kept changing its size"


def witness_latest() -> tuple[tlog.Checkpoint | None, str]:
    """The witness's latest checkpoint of this log (verified), or ``None`` and why."""
    url = str(conf.get("AUDIT_WITNESS_URL") or "").rstrip("/")
    if not url.startswith(("https://", "http://")):
        return None, "AUDIT_WITNESS_URL is not an http(s) URL"
    try:
        with urllib.request.urlopen(  # noqa: S310 (scheme checked above)
            f"{url}/checkpoint", timeout=float(conf.get("AUDIT_WITNESS_TIMEOUT"))
        ) as response:
            note = response.read(65536).decode("utf-8")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None, "the witness holds no checkpoint of this log"
        return None, f"the witness answered {error.code}"
    except (OSError, ValueError) as error:
        return None, f"the witness cannot be reached: {error}"
    try:
        return open_checkpoint(note), ""
    except tlog.VerificationError as error:
        return None, f"the witness's checkpoint does not verify: {error}"


# --- The interval publisher -------------------------------------------------------------------

_next_due = {"at": 0.0, "interval": None}


def publish_if_due() -> PublishResult | None:
    """Publish a checkpoint if ``AUDIT_CHECKPOINT_INTERVAL`` has passed since the last; never raises."""
    from audit.models import AuditCheckpoint

    interval = float(conf.get("AUDIT_CHECKPOINT_INTERVAL") or 0)
    if interval <= 0:
        return None
    now = time.monotonic()
    if _next_due["interval"] == interval and now < _next_due["at"]:
        return None
    try:
        last = AuditCheckpoint.objects.order_by("-epoch", "-tree_size").values_list("created_at", flat=True).first()
        if last is not None:
            age = (timezone.now() - last).total_seconds()
            if age < interval:
                _next_due.update(at=now + interval - age, interval=interval)
                return None
        _next_due.update(at=now + interval, interval=interval)
        return checkpoint_publish()
    except Exception:
        logger.exception("audit checkpoint publication failed; the next sealing run retries")
        _next_due.update(at=0.0)
        return None
