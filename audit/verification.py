"""Verification of the chain: what ``audit_verify`` and the scheduled head publication run.

For each sealed event, in ``sequence`` order from the anchor (or ``--from``):

* its ``content_mac`` must match its content → else the event was **modified**;
* its ``sequence`` must be the next one, or the missing one must have an authenticated
  tombstone (purged by retention) → else an event was **deleted**;
* its ``previous_hash`` must equal the hash of the event before → else events were **inserted,
  reordered** or re-chained;
* its ``hash`` must be the HMAC of (sequence, previous_hash, content_mac) → else it was forged
  or renumbered.

Each MAC is checked with the key named by its stored key id (``content_key_id``,
``chain_key_id``, the anchor's and each tombstone's ``key_id``; ``NULL``: the legacy key,
docs/decisions/audit-chain-keys.md), so events made before a key rotation verify as long as
their key stays in the ``audit_chain`` ring.
An id the ring lacks is an ``unknown_key`` problem at that sequence (a key retired too early, or
a key id changed in the database), not a crash.

Then the end of the chain must reach ``ChainHead`` and the last head published outside the
database → else the newest events were **truncated**. Every problem names a sequence number;
the report's ``first_bad_sequence`` is the lowest. After a problem the walk resynchronises on
the stored hash, so one bad event is reported once, not as a cascade.

Unsealed events are counted; one whose ``content_mac`` is wrong was inserted or altered outside
``record()`` and is reported by id (it has no sequence yet).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Max, Min

from audit.chain import (
    CONTENT_FIELDS,
    GENESIS_HASH,
    LEGACY_KEY_ID,
    ChainKeyError,
    ChainKeys,
    anchor_mac,
    canonical_content,
    content_mac,
    content_mac_of_canonical,
    link_hash,
    macs_equal,
    skip_hash,
    tombstone_mac,
)
from audit.heads import PublishedHead, heads_path, last_published_head
from audit.merkle import event_leaf
from audit.offline_verifier import EMPTY_ROOT, frontier_append, frontier_root, skipped_leaf_hash
from audit.problems import Problem

MAX_PROBLEMS_KEPT = 100
UNSEALED_SCAN_LIMIT = 10000
_ROW_HEAD = ("id", "sequence", "previous_hash", "hash", "content_mac", "content_key_id", "chain_key_id")
_ROW_FIELDS = (*_ROW_HEAD, *CONTENT_FIELDS)
_ROW_CONTENT_START = len(_ROW_HEAD)


@dataclass
class VerificationReport:
    """What a verification found."""

    from_sequence: int
    to_sequence: int | None
    full: bool
    checked: int = 0
    tombstones: int = 0
    last_sequence: int = 0
    last_hash: str = GENESIS_HASH
    anchor_sequence: int = 0
    head_sequence: int = 0
    unsealed: int = 0
    unsealed_oldest: datetime.datetime | None = None
    published_head: PublishedHead | None = None
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    elapsed_seconds: float = 0.0
    # The Merkle tree recomputed from the events (full runs) and the published checkpoints compared with it.
    tree_size: int = 0
    checkpoints_compared: int = 0
    # Numbers the sealer stepped over (forged rows held them) and numbers lost with a reconciled restore.
    skipped: int = 0
    reconciled_lost: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def first_bad_sequence(self) -> int | None:
        sequences = [problem.sequence for problem in self.problems if problem.sequence is not None]
        return min(sequences) if sequences else None

    @property
    def events_per_second(self) -> float:
        return self.checked / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(problem)

    def summary(self) -> dict:
        """A JSON-able summary (the context of the AUDIT_VERIFIED event)."""
        return {
            "from_sequence": self.from_sequence,
            "to_sequence": self.to_sequence,
            "full": self.full,
            "checked": self.checked,
            "tombstones": self.tombstones,
            "skipped": self.skipped,
            "reconciled_lost": self.reconciled_lost,
            "last_sequence": self.last_sequence,
            "unsealed": self.unsealed,
            "problem_count": self.problem_count,
            "first_bad_sequence": self.first_bad_sequence,
            "first_problems": [str(problem) for problem in self.problems[:5]],
        }


def _hash_before(sequence: int, *, anchor_sequence: int, anchor_hash: str) -> str | None:
    """The hash of the event at ``sequence`` (event row, tombstone or anchor), or ``None``."""
    from audit.models import AuditEvent, AuditTombstone

    if sequence == anchor_sequence:
        return anchor_hash
    if sequence <= 0:
        return GENESIS_HASH
    from audit.models import AuditSkippedSequence

    skipped = AuditSkippedSequence.objects.filter(sequence=sequence).values_list("hash", flat=True).first()
    if skipped is not None:
        return skipped  # the forged row at that number, if still there, is not in the chain
    stored = AuditEvent.objects.filter(sequence=sequence).values_list("hash", flat=True).first()
    if stored is not None:
        return stored
    return AuditTombstone.objects.filter(sequence=sequence).values_list("hash", flat=True).first()


def _skips(first: int, last: int) -> dict[int, tuple[str, str, str, int | None]]:
    """Numbers the sealer skipped in ``first``..``last``: sequence -> (previous_hash, hash, key_id, forged id)."""
    from audit.models import AuditSkippedSequence

    return {
        sequence: (previous_hash, hash_value, key_id, forged_id)
        for sequence, previous_hash, hash_value, key_id, forged_id in AuditSkippedSequence.objects.filter(
            sequence__gte=first, sequence__lte=last
        ).values_list("sequence", "previous_hash", "hash", "key_id", "forged_event_id")
    }


@dataclass(frozen=True)
class Epoch:
    """A Merkle tree epoch as its reconcile event names it (``system.audit_reconciled``)."""

    epoch: int
    tree_base: int
    # The epoch before: its base, and the last checkpoint published of it that could not be matched.
    previous_epoch: int
    previous_tree_base: int
    unmatched_size: int
    lost_from: int
    lost_to: int


def reconcile_epochs(keys: ChainKeys) -> list[Epoch]:
    """The epochs started by reconciles, oldest first; only events whose content MAC holds count.

    A reconcile is an event of the chain: what it says (the lost range, the new tree) is trusted
    only if its MAC is ours, and the walk checks its link like any other event's.
    """
    from audit.actions import Action
    from audit.models import AuditEvent

    epochs = []
    rows = (
        AuditEvent.objects.filter(action=Action.AUDIT_RECONCILED, sequence__isnull=False, context__has_key="epoch")
        .order_by("sequence")
        .values("content_mac", "content_key_id", *CONTENT_FIELDS)
    )
    for row in rows:
        try:
            key = keys.get(row["content_key_id"])
        except ChainKeyError:
            continue
        values = {name: row[name] for name in CONTENT_FIELDS}
        if row["content_key_id"] in (None, LEGACY_KEY_ID) or not macs_equal(
            content_mac(values, key=key), row["content_mac"]
        ):
            continue
        context = row["context"]
        try:
            epochs.append(
                Epoch(
                    epoch=int(context["epoch"]),
                    tree_base=int(context["tree_base"]),
                    previous_epoch=int(context["previous_epoch"]),
                    previous_tree_base=int(context["previous_tree_base"]),
                    unmatched_size=int(context.get("unmatched_checkpoint_size") or 0),
                    lost_from=int(context.get("lost_from") or 0),
                    lost_to=int(context.get("lost_to") or 0),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return epochs


def _tombstones(first: int, last: int) -> dict[int, tuple[str, str, str, str | None]]:
    """Tombstones of ``first``..``last``: sequence -> (previous_hash, hash, mac, key_id)."""
    from audit.models import AuditTombstone

    return {
        sequence: (tomb_previous, tomb_hash, tomb_mac, tomb_key_id)
        for sequence, tomb_previous, tomb_hash, tomb_mac, tomb_key_id in AuditTombstone.objects.filter(
            sequence__gte=first, sequence__lte=last
        ).values_list("sequence", "previous_hash", "hash", "mac", "key_id")
    }


def verify_chain(
    *,
    from_sequence: int | None = None,
    to_sequence: int | None = None,
    chunk_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    check_published: bool = True,
    accepted_lost: dict[int, int] | None = None,
) -> VerificationReport:
    """Verify the chain (or ``from_sequence``..``to_sequence``, inclusive); never raises for tampering.

    ``check_published=False`` leaves out the comparison with the published head (the reconcile
    after a restore checks the restored chain on its own first, with ``accepted_lost`` the range
    first..last it is about to record as lost).

    Safe while events are being recorded and sealed: a full verification covers the chain up
    to the head as it was when it started (events sealed meanwhile are checked next time). If a
    retention purge moved the anchor meanwhile, the verification runs once more from the new
    anchor instead of reporting the purged events as deleted.
    """
    from audit.models import ChainHead

    report = _verify(
        from_sequence=from_sequence,
        to_sequence=to_sequence,
        chunk_size=chunk_size,
        progress=progress,
        check_published=check_published,
        accepted_lost=accepted_lost,
    )
    anchor_now = ChainHead.objects.filter(pk=1).values_list("anchor_sequence", flat=True).first() or 0
    if anchor_now != report.anchor_sequence:
        report = _verify(
            from_sequence=from_sequence,
            to_sequence=to_sequence,
            chunk_size=chunk_size,
            progress=None,
            check_published=check_published,
            accepted_lost=accepted_lost,
        )
    return report


def _verify(
    *,
    from_sequence: int | None,
    to_sequence: int | None,
    chunk_size: int,
    progress: Callable[[int], None] | None,
    check_published: bool = True,
    accepted_lost: dict[int, int] | None = None,
) -> VerificationReport:
    started = time.perf_counter()
    walk = _ChainWalk(from_sequence=from_sequence, to_sequence=to_sequence)
    walk.lost_ranges.update(accepted_lost or {})
    if walk.tree is not None and check_published:
        from audit.published import published_checkpoints

        walk.tree.expect(published_checkpoints(walk.report))
    walk.check_anchor()
    walk.check_start()
    walk.check_events(chunk_size=chunk_size, progress=progress)
    walk.check_end()
    if check_published:
        _check_published_head(walk.report, anchor_sequence=walk.anchor_sequence)
        if walk.tree is not None:
            from audit.published import check_published_checkpoints

            check_published_checkpoints(walk.report, tree=walk.tree)
    _check_unsealed(walk.report, keys=walk.keys)
    walk.report.elapsed_seconds = time.perf_counter() - started
    return walk.report


class _ChainWalk:
    """One walk along the chain, in sequence order: where it is and the hash the next link needs.

    ``expected`` is the next sequence due, ``previous`` the hash it must link to (``None`` after a
    gap: the walk resynchronises on the next stored hash). Problems go to ``report``.
    """

    __slots__ = (
        "anchor_hash",
        "anchor_sequence",
        "epochs",
        "expected",
        "head",
        "keys",
        "lost_ranges",
        "previous",
        "published_high",
        "report",
        "ring_chained",
        "skips",
        "stop",
        "tree",
    )

    def __init__(self, *, from_sequence: int | None, to_sequence: int | None) -> None:
        from audit.models import ChainHead

        self.keys = ChainKeys()
        self.head = ChainHead.objects.filter(pk=1).first() or ChainHead(pk=1)
        self.anchor_sequence, self.anchor_hash = self.head.anchor_sequence, self.head.anchor_hash
        # Stop at the head as read now: the sealer writes events and head in one transaction, so
        # every event up to it is visible; later ones are newer than this verification.
        self.stop = to_sequence if to_sequence is not None else self.head.sequence
        start = max(from_sequence or 1, self.anchor_sequence + 1)
        self.report = VerificationReport(
            from_sequence=start,
            to_sequence=to_sequence,
            full=from_sequence is None and to_sequence is None,
            anchor_sequence=self.anchor_sequence,
            head_sequence=self.head.sequence,
        )
        self.expected = start
        self.previous: str | None = None
        # Seen a link made by the key ring: no legacy link may follow.
        self.ring_chained = False
        self.skips: dict = {}
        # The highest number published off the database: a gap below it is a cut tail sealed past.
        from audit.published import published_high_water

        self.published_high = published_high_water(tree_base=self.head.tree_base, tree_epoch=self.head.tree_epoch)[0]
        # Ranges lost with a restore and named by an authentic reconcile event: gaps that are not tampering.
        self.epochs = reconcile_epochs(self.keys)
        self.lost_ranges = {epoch.lost_from: epoch.lost_to for epoch in self.epochs if epoch.lost_from}
        # The Merkle tree is recomputed on full runs that start where the (first epoch's) tree starts.
        self.tree: TreeCheck | None = None
        bases = {epoch.epoch: epoch.tree_base for epoch in self.epochs}
        first_base = self.epochs[0].previous_tree_base if self.epochs else self.head.tree_base
        bases.setdefault(self.epochs[0].previous_epoch if self.epochs else self.head.tree_epoch, first_base)
        bases[self.head.tree_epoch] = self.head.tree_base
        if self.report.full and start <= min(bases.values()) + 1:
            self.tree = TreeCheck(
                bases=bases, acknowledged={epoch.previous_epoch: epoch.unmatched_size for epoch in self.epochs}
            )

    def check_anchor(self) -> None:
        """The purge anchor the walk starts from must be authentic (once anything was purged)."""
        if self.anchor_sequence == 0 and self.anchor_hash == GENESIS_HASH:
            return
        try:
            anchor_key = self.keys.get(self.head.anchor_key_id)
        except ChainKeyError as error:
            self.report.add(
                Problem("unknown_key", self.anchor_sequence, f"the purge anchor cannot be checked: {error}")
            )
            return
        expected_anchor = anchor_mac(sequence=self.anchor_sequence, hash_value=self.anchor_hash, key=anchor_key)
        if not macs_equal(expected_anchor, self.head.anchor_mac):
            self.report.add(
                Problem("anchor", self.anchor_sequence, "the purge anchor is not authentic (moved or forged)")
            )

    def check_start(self) -> None:
        """Find the hash the first event of the walk must link to."""
        before = self.expected - 1
        self.previous = _hash_before(before, anchor_sequence=self.anchor_sequence, anchor_hash=self.anchor_hash)
        if self.previous is None:
            self.report.add(Problem("missing", before, f"event #{before} before the range is missing"))

    def check_events(self, *, chunk_size: int, progress: Callable[[int], None] | None) -> None:
        """Walk the sealed events up to ``stop``, ``chunk_size`` rows per query."""
        from audit.models import AuditEvent

        events = AuditEvent.objects.filter(sequence__isnull=False)
        cursor = self.expected - 1
        while True:
            query = events.filter(sequence__gt=cursor, sequence__lte=self.stop)
            rows = list(query.order_by("sequence").values_list(*_ROW_FIELDS)[:chunk_size])
            if not rows:
                return
            cursor = rows[-1][1]
            tombstones = _tombstones(self.expected, cursor)
            self.skips = _skips(self.expected, cursor)
            check_event = self.check_event
            for row in rows:
                check_event(row, tombstones)
            self.report.checked += len(rows)
            if progress is not None:
                progress(len(rows))

    def check_event(self, row: tuple, tombstones: dict) -> None:
        """Check one event: no gap before it, its content MAC, its link and its chain hash."""
        link = row[:_ROW_CONTENT_START]
        event_id, sequence, stored_previous, stored_hash, stored_mac, content_key_id, chain_key_id = link
        if sequence > self.expected:
            self.walk_tombstones(until=sequence, tombstones=tombstones)
            if sequence > self.expected:
                if self.lost_ranges.get(self.expected) == sequence - 1:
                    # Lost with a restore and named by the reconcile; the next event links across it.
                    self.report.reconciled_lost += sequence - self.expected
                    self.expected = sequence
                else:
                    self._report_missing(until=sequence)
        if sequence in self.skips:
            # A row the sealer did not number holds a number it stepped over: forged, not in the chain.
            self.report.add(
                Problem(
                    "forged_skipped",
                    sequence,
                    "a row the sealer did not allocate holds this number (inserted outside audit.record); "
                    "the sealer skipped it",
                    event_id,
                )
            )
            self._walk_skip(sequence)
            return
        legacy_misuse = self._legacy_misuse(content_key_id, chain_key_id)
        content = canonical_content(dict(zip(CONTENT_FIELDS, row[_ROW_CONTENT_START:], strict=True)))
        if self.tree is not None:
            self.tree.add(sequence, content, self.report)
        if legacy_misuse:
            self.report.add(
                Problem(
                    "legacy_key", sequence, "made with the legacy key after the key ring took over (forged)", event_id
                )
            )
        else:
            self._check_content(content, event_id, sequence, content_key_id, stored_mac)
        if self.previous is not None and stored_previous != self.previous:
            self.report.add(
                Problem(
                    "link",
                    sequence,
                    "previous_hash does not match the event before it (inserted, deleted or reordered)",
                    event_id,
                )
            )
        if not legacy_misuse:  # a misused legacy key is reported above; its MACs prove nothing
            self._check_chain_hash(link)
        self.previous = stored_hash
        self.expected = sequence + 1

    def _walk_skip(self, sequence: int) -> None:
        """Walk a number the sealer skipped: its keyed skip hash must follow the hash before it."""
        previous_hash, hash_value, key_id, _forged_id = self.skips[sequence]
        try:
            key = self.keys.get(key_id)
        except ChainKeyError as error:
            self.report.add(Problem("unknown_key", sequence, f"the skip of this number cannot be checked: {error}"))
        else:
            if self.previous is not None and previous_hash != self.previous:
                self.report.add(Problem("link", sequence, "the skipped number does not follow the event before it"))
            if not macs_equal(skip_hash(sequence=sequence, previous_hash=previous_hash, key=key), hash_value):
                self.report.add(Problem("skip", sequence, "the record of a skipped number is not authentic"))
        if self.tree is not None:
            self.tree.add_leaf(sequence, skipped_leaf_hash(sequence), self.report)
        self.report.skipped += 1
        self.previous = hash_value
        self.expected = sequence + 1

    def walk_tombstones(self, *, until: int, tombstones: dict) -> None:
        """Walk authenticated tombstones (and skipped numbers) from ``expected`` up to ``until`` (exclusive)."""
        while self.expected < until:
            if self.expected in self.skips:
                self._walk_skip(self.expected)  # the forged row that held it is gone
                continue
            tombstone = tombstones.get(self.expected)
            if tombstone is None:
                return
            tomb_previous, tomb_hash, tomb_mac, tomb_key_id = tombstone
            try:
                tomb_key = self.keys.get(tomb_key_id)
            except ChainKeyError as error:
                self.report.add(
                    Problem("unknown_key", self.expected, f"the tombstone of a purged event cannot be checked: {error}")
                )
                valid = None
            else:
                valid = macs_equal(
                    tombstone_mac(
                        sequence=self.expected, previous_hash=tomb_previous, hash_value=tomb_hash, key=tomb_key
                    ),
                    tomb_mac,
                )
            if valid is False:
                self.report.add(Problem("tombstone", self.expected, "the tombstone of a purged event is not authentic"))
            elif self.previous is not None and tomb_previous != self.previous:
                self.report.add(Problem("link", self.expected, "the purged event did not follow the one before it"))
            self.previous = tomb_hash
            self.report.tombstones += 1
            self.expected += 1

    def _report_missing(self, *, until: int) -> None:
        missing_to = until - 1
        label = f"#{self.expected}" if missing_to == self.expected else f"#{self.expected}..#{missing_to}"
        if self.expected <= self.published_high <= missing_to:
            # Numbers up to one published off the database are gone, and the sealer went on after them
            # (it never gives a published number again): the newest events were cut.
            self.report.add(
                Problem(
                    "truncated",
                    self.expected,
                    f"events {label} are missing: #{self.published_high} was published, then the newest events "
                    "were deleted (or an older backup restored: run audit_reconcile --after-restore)",
                )
            )
        else:
            self.report.add(Problem("missing", self.expected, f"event {label} is missing (deleted)"))
        self.previous = None  # nothing to link to: resynchronise on this event

    def _legacy_misuse(self, content_key_id: str | None, chain_key_id: str | None) -> bool:
        """Whether the legacy key made this event after the ring took over (docs/decisions/audit-chain-keys.md)."""
        legacy_content = content_key_id in (None, LEGACY_KEY_ID)
        legacy_chain = chain_key_id in (None, LEGACY_KEY_ID)
        misuse = (legacy_chain and self.ring_chained) or (legacy_content and not legacy_chain)
        if not legacy_chain:
            self.ring_chained = True
        return misuse

    def _check_content(
        self, content: bytes, event_id: int, sequence: int, content_key_id: str | None, stored_mac: str
    ) -> None:
        """Check an event's content MAC with the key named by its ``content_key_id``."""
        try:
            content_key = self.keys.get(content_key_id)
        except ChainKeyError as error:
            self.report.add(Problem("unknown_key", sequence, f"its content MAC cannot be checked: {error}", event_id))
            return
        if not macs_equal(content_mac_of_canonical(content, key=content_key), stored_mac):
            self.report.add(Problem("modified", sequence, "the content does not match its MAC (modified)", event_id))

    def _check_chain_hash(self, link: tuple) -> None:
        """Check an event's chain hash (``link``: the row's first columns) with its ``chain_key_id``'s key."""
        event_id, sequence, stored_previous, stored_hash, stored_mac, content_key_id, chain_key_id = link
        try:
            chain_key = self.keys.get(chain_key_id)
        except ChainKeyError as error:
            if chain_key_id != content_key_id:  # the same missing key is reported once per event
                self.report.add(
                    Problem("unknown_key", sequence, f"its chain hash cannot be checked: {error}", event_id)
                )
            return
        recomputed = link_hash(
            sequence=sequence, previous_hash=stored_previous or "", content_mac_value=stored_mac or "", key=chain_key
        )
        if not macs_equal(recomputed, stored_hash):
            self.report.add(
                Problem("hash", sequence, "the chain hash is wrong (forged, renumbered or reordered)", event_id)
            )

    def check_end(self) -> None:
        """Walk the tombstones of purged newest events; the end must reach the head (full runs)."""
        if self.expected <= self.stop:
            self.skips = _skips(self.expected, self.stop)
            self.walk_tombstones(until=self.stop + 1, tombstones=_tombstones(self.expected, self.stop))
        if self.tree is not None:
            self.tree.finish()
        report = self.report
        report.last_sequence = self.expected - 1
        report.last_hash = self.previous or ""
        if report.to_sequence is not None:
            return
        if report.last_sequence < self.head.sequence:
            report.add(
                Problem(
                    "truncated",
                    report.last_sequence + 1,
                    f"the chain ends at #{report.last_sequence} but the head says #{self.head.sequence} "
                    "(newest events deleted)",
                )
            )
        elif (
            self.head.sequence > self.anchor_sequence
            and self.previous is not None
            and not macs_equal(self.previous, self.head.hash)
        ):
            report.add(Problem("head", self.head.sequence, "the last event's hash does not match the recorded head"))
        self._check_beyond_head()

    def _check_beyond_head(self) -> None:
        """No sealed event may lie beyond the head.

        The sealer moves both in one transaction, so reading the highest sequence *before* the head
        again leaves no room for a legitimate one.
        """
        from audit.models import AuditEvent, ChainHead

        highest = AuditEvent.objects.filter(sequence__isnull=False).aggregate(highest=Max("sequence"))["highest"] or 0
        head_now = ChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first() or 0
        if highest > head_now:
            self.report.add(Problem("beyond_head", head_now + 1, f"events after the recorded head #{head_now}"))


class TreeCheck:
    """The Merkle tree recomputed along the walk, one tree per epoch, and its root at each published size.

    ``bases`` maps each epoch to the sequence before its first leaf (epoch 1 is the tree the sealer
    began; each reconcile after a restore starts the next). ``expected`` maps (epoch, size) to the
    published checkpoints of that size (source, root, entry); ``roots`` keeps the recomputed root at
    each of those sizes; ``sizes`` each epoch's final size; ``acknowledged`` the last size of an
    epoch published before its tail was lost, as the reconcile that ended it names it.
    """

    __slots__ = (
        "acknowledged",
        "base",
        "bases",
        "broken",
        "broken_epochs",
        "epoch",
        "epochs",
        "expected",
        "frontier",
        "index",
        "roots",
        "size",
        "sizes",
    )

    def __init__(self, *, bases: dict[int, int] | None = None, base: int = 0, acknowledged=None) -> None:
        self.bases = dict(bases) if bases else {1: base}
        self.epochs = sorted(self.bases.items())
        self.index = 0
        self.epoch, self.base = self.epochs[0]
        self.acknowledged: dict[int, int] = dict(acknowledged or {})
        self.size = 0
        self.frontier: list[bytes] = []
        self.expected: dict[tuple[int, int], list] = {}
        self.sizes: dict[int, int] = {}
        self.broken_epochs: dict[int, bool] = {}
        self.broken = False
        # Every epoch's tree begins empty (a reconcile publishes that checkpoint of size 0).
        self.roots: dict[tuple[int, int], bytes] = {(epoch, 0): EMPTY_ROOT for epoch in self.bases}

    def expect(self, published: dict[tuple[int, int], list]) -> None:
        self.expected = published

    def _close(self) -> None:
        self.sizes[self.epoch] = self.size
        self.broken_epochs[self.epoch] = self.broken

    def _advance(self, sequence: int) -> None:
        while self.index + 1 < len(self.epochs) and sequence > self.epochs[self.index + 1][1]:
            self._close()
            self.index += 1
            self.epoch, self.base = self.epochs[self.index]
            self.size, self.frontier, self.broken = 0, [], False

    def add(self, sequence: int, content: bytes, report: VerificationReport) -> None:
        self.add_leaf(sequence, event_leaf(sequence, content), report)

    def add_leaf(self, sequence: int, leaf: bytes, report: VerificationReport) -> None:
        self._advance(sequence)
        if self.broken or sequence <= self.base:
            return
        if sequence != self.base + self.size + 1:
            self.broken = True  # a missing event: reported by the chain; this epoch's tree stops here
            return
        frontier_append(self.frontier, self.size, leaf)
        self.size += 1
        report.tree_size = self.size
        if (self.epoch, self.size) in self.expected:
            self.roots[(self.epoch, self.size)] = frontier_root(self.frontier)

    def finish(self) -> None:
        self._close()
        for epoch, _base in self.epochs[self.index + 1 :]:
            self.sizes.setdefault(epoch, 0)
            self.broken_epochs.setdefault(epoch, False)


def _check_published_head(report: VerificationReport, *, anchor_sequence: int) -> None:
    """Compare with the last head published outside the database (truncation of the tail)."""
    from audit.models import AuditEvent, AuditTombstone

    published = last_published_head()
    report.published_head = published
    _check_heads_history(report, published)
    if published is None:
        return
    if published.key_problem:
        report.add(
            Problem(
                "published_head",
                None,
                f"the last line of the published-heads file cannot be checked: {published.key_problem}",
            )
        )
        return
    if not published.mac_valid:
        report.add(Problem("published_head", None, "the last line of the published-heads file is not authentic"))
        return
    if published.sequence <= anchor_sequence:
        return  # purged since; the archive manifests hold it
    stored = AuditEvent.objects.filter(sequence=published.sequence).values_list("hash", flat=True).first()
    if stored is None:
        stored = AuditTombstone.objects.filter(sequence=published.sequence).values_list("hash", flat=True).first()
    if stored is None:
        from audit.models import AuditSkippedSequence

        # Named by the first number missing below the published head, whatever was sealed since: the
        # sealer never gives a published number again, so every run names the same event.
        below = [
            model.objects.filter(sequence__lte=published.sequence).aggregate(highest=Max("sequence"))["highest"]
            for model in (AuditEvent, AuditTombstone, AuditSkippedSequence)
        ]
        surviving = max([value for value in below if value is not None] + [anchor_sequence])
        if surviving < published.sequence:
            for epoch in reconcile_epochs(ChainKeys()):
                if epoch.lost_from == surviving + 1 and epoch.lost_to >= published.sequence:
                    return  # lost with a restore, and reconciled
        report.add(
            Problem(
                "truncated",
                surviving + 1,
                f"head #{published.sequence} was published on {published.published_at} but the chain holds "
                f"nothing after #{surviving} up to it (newest events deleted)",
            )
        )
    elif not macs_equal(stored, published.hash):
        report.add(
            Problem(
                "published_head",
                published.sequence,
                f"event #{published.sequence} differs from the head published on {published.published_at}",
            )
        )


def _check_heads_history(report: VerificationReport, published: PublishedHead | None) -> None:
    """The heads file must hold at least the last head the trail says was published (deleted or cut)."""
    from audit.actions import Action
    from audit.models import AuditEvent

    recorded = (
        AuditEvent.objects.filter(
            action__in=[Action.AUDIT_VERIFIED, Action.AUDIT_HEAD_PUBLISHED], context__has_key="published_sequence"
        )
        .order_by("-id")
        .values_list("context", "timestamp")
        .first()
    )
    if recorded is None:
        return
    context, when = recorded
    try:
        sequence = int(context["published_sequence"])
    except (KeyError, TypeError, ValueError):
        return
    if published is None:
        report.add(
            Problem(
                "heads_missing",
                None,
                f"{heads_path().name} is missing, but head #{sequence} was published on {when.isoformat()} "
                "(the file was deleted)",
            )
        )
    elif published.mac_valid and published.sequence < sequence:
        report.add(
            Problem(
                "heads_shortened",
                None,
                f"the last line of {heads_path().name} is head #{published.sequence}, but head #{sequence} was "
                f"published on {when.isoformat()} (the file was cut)",
            )
        )


def _check_unsealed(report: VerificationReport, *, keys: ChainKeys) -> None:
    from audit.models import AuditEvent

    unsealed = AuditEvent.objects.unsealed()
    stats = unsealed.aggregate(oldest=Min("timestamp"))
    rows = list(
        unsealed.order_by("id").values_list("id", "content_mac", "content_key_id", *CONTENT_FIELDS)[
            :UNSEALED_SCAN_LIMIT
        ]
    )
    report.unsealed = len(rows) if len(rows) < UNSEALED_SCAN_LIMIT else unsealed.count()
    report.unsealed_oldest = stats["oldest"]
    for event_id, stored_mac, content_key_id, *content in rows:
        values = dict(zip(CONTENT_FIELDS, content, strict=True))
        if content_key_id in (None, LEGACY_KEY_ID):
            report.add(
                Problem(
                    "forged_unsealed", None, "an unsealed event made with the legacy key after the upgrade", event_id
                )
            )
            continue
        try:
            key = keys.get(content_key_id)
        except ChainKeyError as error:
            report.add(
                Problem("forged_unsealed", None, f"an unsealed event whose MAC cannot be checked: {error}", event_id)
            )
            continue
        if not macs_equal(content_mac(values, key=key), stored_mac):
            report.add(
                Problem(
                    "forged_unsealed",
                    None,
                    "an unsealed event whose content MAC is wrong: inserted or changed outside audit.record()",
                    event_id,
                )
            )
