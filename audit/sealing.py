"""Sealing: chaining committed events, in order, outside the writers' transactions.

Design, and why
---------------
``record()`` inserts the event *unsealed* in the caller's transaction: a plain INSERT, its own
``content_mac`` already computed, ``sequence``/``previous_hash``/``hash`` NULL. It takes no lock
at all, so a writer never waits for another writer and never holds anything beyond its own
short insert. After the caller commits, a **sealer** chains the committed unsealed events:

1. In a short transaction it locks the one ``ChainHead`` row with ``SELECT ... FOR UPDATE SKIP
   LOCKED`` (on SQLite, whose ``BEGIN IMMEDIATE`` already serialises writers, the row is just
   read). If another sealer holds it, this one returns at once instead of queueing.
2. It reads up to ``AUDIT_SEAL_BATCH_SIZE`` unsealed events in ``id`` order through a partial
   index, checks each ``content_mac`` with the key named by its ``content_key_id`` (an event
   inserted or altered through the database alone has no valid MAC and is *refused*, never
   chained; so is one whose key id names no key we hold), gives each the next ``sequence``,
   computes ``hash`` from the previous one with the current signing key (the ring's primary,
   whose id goes to ``chain_key_id``: an event recorded just before a key rotation is checked
   under the old key and chained under the new one), writes them in one statement, moves the
   head and commits.
3. After releasing the lock it looks once more for unsealed events and goes round again if
   there are any. This closes the race with a writer that committed while the lock was held and
   found it busy: that writer committed *before* its failed try, hence before our release,
   hence before our re-check — so its event is always seen by someone.

Why not serialise the insert itself on the head row (sequence and hash computed in ``record()``)?
Because ``record()`` runs inside the caller's transaction: the head lock would be held until the
*caller* commits — across their other queries, their network calls, their retries — and every
other writer in every process would queue behind it. Sealing after commit keeps each writer's
lock footprint to its own insert, and the sealer's lock (one short batch) blocks only other
sealers. It also means a rolled-back event never consumed a sequence number: ``sequence`` is
gapless, so a deleted event is named exactly by the verifier. The sealer alone gives numbers and
never gives one twice: it steps over a number a forged row already holds (recorded, keyed and
reported) and goes on after the highest number published off the database when the head was cut
back (see ``_seal_one_batch``), so tampering can neither stop sealing nor reuse a number.

Order: ``sequence`` is commit order as the sealer observes it, with ``id`` (insert order)
breaking ties within a batch. An event committed before another was even inserted always gets
the lower sequence (a process's own events stay in order); two transactions in flight at the
same time may be chained in either order, which is the truth about concurrent events anyway.

When sealing runs (``AUDIT_SEAL_MODE``):

* ``"background"`` (default): after commit, ``record()`` wakes one sealer thread per process,
  which waits 200 ms so a burst of commits is chained in one batch; the request path pays only
  for its INSERT. A process that exits seals what it left behind (``atexit``).
* ``"inline"``: the sealer runs right after commit in the caller's thread (deterministic; the
  test suite and short management commands use it).
* ``"periodic"``: only ``audit.tasks.audit_seal`` / ``manage.py audit_seal`` seal.

In every mode the periodic task seals whatever a crashed process left, and ``audit_verify``
reports unsealed events (and refuses forged ones), so an event can wait to be chained but can
never be skipped or slipped in.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from audit import conf
from audit.chain import (
    CONTENT_FIELDS,
    LEGACY_KEY_ID,
    ChainKey,
    ChainKeyError,
    ChainKeys,
    canonical_content,
    content_mac_of_canonical,
    link_hash,
    macs_equal,
    signing_key,
    skip_hash,
)
from audit.merkle import event_leaf, format_frontier, parse_frontier
from audit.offline_verifier import frontier_append, skipped_leaf_hash

logger = logging.getLogger("audit.chain")

SEAL_MODES = ("background", "inline", "periodic")
# Forged rows skipped by one run; beyond this many the run stops looking again (and reports).
_MAX_REFUSED_TRACKED = 1000
# Rows beyond the head read per batch to find numbers already held (normally none: one index probe).
_OCCUPIED_LOOKAHEAD = 1000
# Skipped numbers named in one system.audit_forged_row_skipped event (the count is always complete).
_SKIPS_NAMED = 100


@dataclass(frozen=True)
class SequenceJump:
    """The chain head was behind a sequence already published outside the database (a truncated tail)."""

    chain_head: int
    published_sequence: int
    published_in: str


@dataclass
class SealResult:
    """What one ``seal_pending()`` call did."""

    sealed: int = 0
    refused_ids: list[int] = field(default_factory=list)
    busy: bool = False  # another sealer held the head; it will seal what we saw
    # (sequence, id of the row that held it): numbers stepped over because a forged row held them.
    skipped: list[tuple[int, int]] = field(default_factory=list)
    # Set when the head was behind what was published: sealing went on after the published number.
    jump: SequenceJump | None = None


def seal_pending(*, batch_size: int | None = None) -> SealResult:
    """Chain every committed unsealed event; return counts. Safe to call from anywhere, any time.

    Idempotent and safe to run concurrently in many processes (see the module docstring). Must
    not be called inside a transaction that has itself recorded events it expects to be sealed
    by this call on PostgreSQL: it can only see committed rows of other transactions (inside
    the same transaction it sees its own, which the test suite relies on).
    """
    from audit.models import AuditEvent

    batch_size = batch_size or conf.get("AUDIT_SEAL_BATCH_SIZE")
    # One key for every link this call makes, and each stored content key id resolved once.
    key = signing_key()
    content_keys = ChainKeys()
    result = SealResult()
    refused: set[int] = set()
    while True:
        acquired, sealed, full = _seal_one_batch(
            batch_size=batch_size, key=key, content_keys=content_keys, refused=refused, result=result
        )
        result.sealed += sealed
        if not acquired:
            result.busy = True
            break
        if full:
            continue
        if len(refused) > _MAX_REFUSED_TRACKED:
            break
        # The lock is released: look again for events committed by writers that found it busy.
        if not AuditEvent.objects.unsealed().exclude(id__in=refused).exists():
            break
    if not result.busy:
        from audit.checkpoints import publish_if_due

        publish_if_due()  # a signed checkpoint every AUDIT_CHECKPOINT_INTERVAL (audit/checkpoints.py)
    if refused:
        result.refused_ids = sorted(refused)
        logger.error(
            "audit sealer refused %d unsealed event(s) with an invalid content MAC (inserted or changed "
            "outside audit.record); first ids: %s",
            len(refused),
            result.refused_ids[:10],
        )
    if result.skipped or result.jump:
        _report_anomalies(result)
    return result


def _report_anomalies(result: SealResult) -> None:
    """Record (and log) what the sealer stepped over, once: each anomaly is met by one sealing run only.

    The events go through ``record()`` like any other, so monitoring's ``audit_chain_failure``
    detector raises its alert from them (``event_recorded``), and they are chained after the skip.
    """
    import audit  # the package's lazy record(): the sealer sits below audit.services
    from audit.actions import Action, Outcome

    record = audit.record

    if result.skipped:
        sequences = [sequence for sequence, _ in result.skipped]
        logger.error(
            "audit sealer skipped %d sequence number(s) held by rows it did not allocate (forged, outside "
            "audit.record): %s; sealing carried on after them",
            len(sequences),
            sequences[:10],
        )
        record(
            action=Action.AUDIT_FORGED_ROW_SKIPPED,
            outcome=Outcome.FAILURE,
            context={
                "count": len(sequences),
                "sequences": sequences[:_SKIPS_NAMED],
                "forged_event_ids": [event_id for _, event_id in result.skipped[:_SKIPS_NAMED]],
            },
        )
    if result.jump:
        jump = result.jump
        logger.error(
            "audit sealer: the chain head #%s is behind #%s published in %s (the newest events were removed); "
            "their numbers are not given again: sealing goes on at #%s",
            jump.chain_head,
            jump.published_sequence,
            jump.published_in,
            jump.published_sequence + 1,
        )
        record(
            action=Action.AUDIT_SEQUENCE_JUMPED,
            outcome=Outcome.FAILURE,
            context={
                "chain_head": jump.chain_head,
                "published_sequence": jump.published_sequence,
                "published_in": jump.published_in,
                "next_sequence": jump.published_sequence + 1,
            },
        )


def _seal_one_batch(
    *, batch_size: int, key: ChainKey, content_keys: ChainKeys, refused: set[int], result: SealResult
) -> tuple[bool, int, bool]:
    """Seal one batch under the head lock. Return (lock acquired, sealed count, batch was full).

    Numbers are given only by this function, under the head lock, and never twice: it starts after
    the head or after the highest number published outside the database, whichever is later (a
    tail cut from the database keeps its numbers), and it steps over a number a row already holds
    (a forged row cannot make sealing fail on the unique sequence, nor be adopted into the chain:
    the skip is recorded in ``AuditSkippedSequence`` and linked with a keyed skip hash).
    """
    from audit.models import AuditEvent, AuditSkippedSequence, ChainHead

    with transaction.atomic():
        head = ChainHead.objects.select_for_update(skip_locked=True).filter(pk=1).first()
        if head is None:
            if ChainHead.objects.filter(pk=1).exists():
                return False, 0, False  # held by another sealer
            ChainHead.objects.get_or_create(pk=1)
            head = ChainHead.objects.select_for_update(skip_locked=True).filter(pk=1).first()
            if head is None:
                return False, 0, False
        rows = list(
            AuditEvent.objects.unsealed()
            .exclude(id__in=sorted(refused)[:_MAX_REFUSED_TRACKED])
            .order_by("id")
            .values("id", "content_mac", "content_key_id", *CONTENT_FIELDS)[:batch_size]
        )
        if not rows:
            return True, 0, False
        from audit.published import published_high_water

        sequence, previous = head.sequence, head.hash
        published, published_in = published_high_water(tree_base=head.tree_base, tree_epoch=head.tree_epoch)
        jump = None
        if published > sequence:
            jump = SequenceJump(chain_head=sequence, published_sequence=published, published_in=published_in)
            sequence = published  # the next event links to the head that is left; the gap stays visible
        occupied = dict(
            AuditEvent.objects.filter(sequence__gt=sequence)
            .order_by("sequence")
            .values_list("sequence", "id")[: len(rows) + _OCCUPIED_LOOKAHEAD]
        )
        # The Merkle tree grows with the chain: leaf i is the event tree_base + 1 + i (audit/merkle.py).
        tree_size = head.tree_size
        try:
            frontier = parse_frontier(head.tree_frontier)
        except ValueError:
            frontier = None
        # An edited tree state must never stop sealing: the tree stops growing and audit_verify says so.
        grow_tree = (
            head.tree_base + tree_size == sequence
            and frontier is not None
            and len(frontier) == tree_size.bit_count()
        )
        if not grow_tree:
            logger.error(
                "audit sealer: the Merkle tree (base %s, size %s) does not end at the chain head #%s or its "
                "frontier is malformed; the tree is not extended (audit_verify reports it)",
                head.tree_base,
                tree_size,
                sequence,
            )
        frontier = frontier if grow_tree else []
        updates: list[tuple[int, int, str, str, str]] = []
        skips: list = []
        now = timezone.now()
        for row in rows:
            if row["content_key_id"] in (None, LEGACY_KEY_ID):
                # Recorded with the legacy key: forged (docs/decisions/audit-chain-keys.md).
                logger.error("audit sealer refused event id %s: made with the legacy key after the upgrade", row["id"])
                refused.add(row["id"])
                continue
            try:
                content_key = content_keys.get(row["content_key_id"])
            except ChainKeyError as error:
                logger.error("audit sealer refused event id %s: %s", row["id"], error)
                refused.add(row["id"])
                continue
            content = canonical_content(row)
            if not macs_equal(content_mac_of_canonical(content, key=content_key), row["content_mac"]):
                refused.add(row["id"])
                continue
            sequence += 1
            while sequence in occupied:
                # A row this sealer did not number holds it: step over, under the key, never through it.
                skipped = skip_hash(sequence=sequence, previous_hash=previous, key=key)
                skips.append(
                    AuditSkippedSequence(
                        sequence=sequence,
                        previous_hash=previous,
                        hash=skipped,
                        key_id=key.id,
                        forged_event_id=occupied[sequence],
                        created_at=now,
                    )
                )
                if grow_tree:
                    frontier_append(frontier, tree_size, skipped_leaf_hash(sequence))
                    tree_size += 1
                previous = skipped
                sequence += 1
            if grow_tree:
                frontier_append(frontier, tree_size, event_leaf(sequence, content))
                tree_size += 1
            hash_value = link_hash(
                sequence=sequence, previous_hash=previous, content_mac_value=row["content_mac"], key=key
            )
            updates.append((row["id"], sequence, previous, hash_value, key.id))
            previous = hash_value
        if updates:
            result.jump = jump or result.jump
            if skips:
                AuditSkippedSequence.objects.bulk_create(skips)
                result.skipped.extend((skip.sequence, skip.forged_event_id) for skip in skips)
            _write_seals(updates)
            tree = {"tree_size": tree_size, "tree_frontier": format_frontier(frontier)} if grow_tree else {}
            ChainHead.objects.filter(pk=1).update(sequence=sequence, hash=previous, updated_at=timezone.now(), **tree)
        return True, len(updates), len(rows) == batch_size


def _write_seals(updates: list[tuple[int, int, str, str, str]]) -> None:
    """Set sequence, previous_hash, hash and chain_key_id of unsealed rows in as few statements as possible."""
    from audit.models import AuditEvent

    quote = connection.ops.quote_name
    table = quote(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            values = ", ".join(["(%s::bigint, %s::bigint, %s, %s, %s)"] * len(updates))
            params = [item for update in updates for item in update]
            cursor.execute(
                f"UPDATE {table} AS event SET sequence = seal.sequence, previous_hash = seal.previous_hash, "  # noqa: S608
                f"hash = seal.hash, chain_key_id = seal.chain_key_id FROM (VALUES {values}) "
                "AS seal(id, sequence, previous_hash, hash, chain_key_id) "
                "WHERE event.id = seal.id AND event.sequence IS NULL",
                params,
            )
            written = cursor.rowcount
        else:
            cursor.executemany(
                f"UPDATE {table} SET sequence = %s, previous_hash = %s, hash = %s, chain_key_id = %s "  # noqa: S608
                "WHERE id = %s AND sequence IS NULL",
                [
                    (sequence, previous, hash_value, key_id, event_id)
                    for event_id, sequence, previous, hash_value, key_id in updates
                ],
            )
            written = cursor.rowcount
    if written != len(updates):
        # Someone sealed these rows without the head lock: stop before the chain forks.
        raise RuntimeError(f"audit sealer wrote {written} of {len(updates)} seals; rolled back")


# --- When sealing runs ----------------------------------------------------------------------


def _seal_inline() -> None:
    try:
        seal_pending()
    except Exception:
        # The caller's transaction is committed; failing its request now would not undo it.
        # The periodic sealer catches up, and audit_verify reports what is unsealed.
        logger.exception("audit sealing after commit failed; the periodic sealer will retry")


class BackgroundSealer:
    """One daemon thread per process that seals after commits, coalescing bursts.

    The thread keeps its own database connection while busy and gives it back after
    ``IDLE_SECONDS`` without work (or after an error), so an idle process holds no extra
    connection. After a fork the child starts its own thread on its first wake.
    """

    IDLE_SECONDS = 30.0
    # After a wake, wait this long so a burst of commits is sealed in one batch (seconds).
    COALESCE_SECONDS = 0.2

    def __init__(self) -> None:
        self._reset()
        self._dirty = False

    def _reset(self) -> None:
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def wake(self) -> None:
        self._dirty = True
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            self._start()
        self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._stopping = False
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping:
                if not self._wake.wait(timeout=self.IDLE_SECONDS):
                    connection.close()  # idle: give the connection back
                    continue
                time.sleep(self.COALESCE_SECONDS)
                self._wake.clear()
                if self._stopping:
                    break
                self._dirty = False
                try:
                    seal_pending()
                except Exception:
                    logger.exception("background audit sealing failed; the periodic sealer will retry")
                    connection.close()  # reconnect next time (the server may have restarted)
        finally:
            connection.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current batch, then seal what is left in the calling thread."""
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        self._thread = None
        self.flush()

    def flush(self) -> None:
        """Seal in the calling thread what this process recorded since the thread last ran."""
        if self._dirty and self._pid == os.getpid():
            self._dirty = False
            _seal_inline()


background_sealer = BackgroundSealer()
atexit.register(background_sealer.flush)
# A lock held by another thread at fork time would stay held forever in the child.
os.register_at_fork(after_in_child=background_sealer._reset)


def _wake_background_sealer() -> None:
    background_sealer.wake()


def _already_scheduled(callback) -> bool:
    """Whether ``callback`` already runs when the current transaction commits.

    One seal per transaction is enough however many events it records. A callback registered
    inside savepoints that all enclose the current one is discarded only if this event is too.
    """
    current = set(connection.savepoint_ids)
    return any(func is callback and set(sids) <= current for sids, func, _ in getattr(connection, "run_on_commit", []))


def schedule_seal_after_commit() -> None:
    """Arrange for the events of the current transaction to be sealed once it commits."""
    mode = conf.get("AUDIT_SEAL_MODE")
    if mode == "periodic":
        return
    callback = _seal_inline if mode == "inline" else _wake_background_sealer
    if connection.in_atomic_block and _already_scheduled(callback):
        return
    transaction.on_commit(callback)
