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
``chain_key_id``, the anchor's and each tombstone's ``key_id``; ``NULL`` is the legacy key), so
events made before a key rotation verify as long as their key stays in the ``audit_chain`` ring.
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
    content_mac,
    link_hash,
    macs_equal,
    tombstone_mac,
)
from audit.heads import PublishedHead, last_published_head

MAX_PROBLEMS_KEPT = 100
UNSEALED_SCAN_LIMIT = 10000
_ROW_HEAD = ("id", "sequence", "previous_hash", "hash", "content_mac", "content_key_id", "chain_key_id")
_ROW_FIELDS = (*_ROW_HEAD, *CONTENT_FIELDS)
_ROW_CONTENT_START = len(_ROW_HEAD)


@dataclass(frozen=True)
class Problem:
    """One integrity failure. ``sequence`` is ``None`` only for an unsealed (never chained) row."""

    kind: str
    sequence: int | None
    message: str
    event_id: int | None = None

    def __str__(self) -> str:
        where = f"sequence {self.sequence}" if self.sequence is not None else f"unsealed event id {self.event_id}"
        return f"{where}: {self.kind}: {self.message}"


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
    stored = AuditEvent.objects.filter(sequence=sequence).values_list("hash", flat=True).first()
    if stored is not None:
        return stored
    return AuditTombstone.objects.filter(sequence=sequence).values_list("hash", flat=True).first()


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
) -> VerificationReport:
    """Verify the chain (or ``from_sequence``..``to_sequence``, inclusive); never raises for tampering.

    Safe while events are being recorded and sealed: a full verification covers the chain up
    to the head as it was when it started (events sealed meanwhile are checked next time). If a
    retention purge moved the anchor meanwhile, the verification runs once more from the new
    anchor instead of reporting the purged events as deleted.
    """
    from audit.models import ChainHead

    report = _verify(from_sequence=from_sequence, to_sequence=to_sequence, chunk_size=chunk_size, progress=progress)
    anchor_now = ChainHead.objects.filter(pk=1).values_list("anchor_sequence", flat=True).first() or 0
    if anchor_now != report.anchor_sequence:
        report = _verify(from_sequence=from_sequence, to_sequence=to_sequence, chunk_size=chunk_size, progress=None)
    return report


def _verify(
    *,
    from_sequence: int | None,
    to_sequence: int | None,
    chunk_size: int,
    progress: Callable[[int], None] | None,
) -> VerificationReport:
    from audit.models import AuditEvent, ChainHead

    started = time.perf_counter()
    keys = ChainKeys()
    head = ChainHead.objects.filter(pk=1).first() or ChainHead(pk=1)
    anchor_sequence, anchor_hash = head.anchor_sequence, head.anchor_hash
    # Stop at the head as read now: the sealer writes events and head in one transaction, so
    # every event up to it is visible; later ones are newer than this verification.
    stop = to_sequence if to_sequence is not None else head.sequence
    start = max(from_sequence or 1, anchor_sequence + 1)
    report = VerificationReport(
        from_sequence=start,
        to_sequence=to_sequence,
        full=from_sequence is None and to_sequence is None,
        anchor_sequence=anchor_sequence,
        head_sequence=head.sequence,
    )

    if anchor_sequence > 0 or anchor_hash != GENESIS_HASH:
        try:
            anchor_key = keys.get(head.anchor_key_id)
        except ChainKeyError as error:
            report.add(Problem("unknown_key", anchor_sequence, f"the purge anchor cannot be checked: {error}"))
        else:
            expected_anchor = anchor_mac(sequence=anchor_sequence, hash_value=anchor_hash, key=anchor_key)
            if not macs_equal(expected_anchor, head.anchor_mac):
                report.add(Problem("anchor", anchor_sequence, "the purge anchor is not authentic (moved or forged)"))

    previous = _hash_before(start - 1, anchor_sequence=anchor_sequence, anchor_hash=anchor_hash)
    if previous is None:
        report.add(Problem("missing", start - 1, f"event #{start - 1} before the range is missing"))
    expected = start
    cursor = start - 1

    def use_tombstones_until(limit: int, tombstones: dict) -> None:
        """Walk authenticated tombstones from ``expected`` up to ``limit`` (exclusive)."""
        nonlocal expected, previous
        while expected < limit:
            tombstone = tombstones.get(expected)
            if tombstone is None:
                return
            tomb_previous, tomb_hash, tomb_mac, tomb_key_id = tombstone
            try:
                tomb_key = keys.get(tomb_key_id)
            except ChainKeyError as error:
                report.add(
                    Problem("unknown_key", expected, f"the tombstone of a purged event cannot be checked: {error}")
                )
                valid = None
            else:
                valid = macs_equal(
                    tombstone_mac(sequence=expected, previous_hash=tomb_previous, hash_value=tomb_hash, key=tomb_key),
                    tomb_mac,
                )
            if valid is False:
                report.add(Problem("tombstone", expected, "the tombstone of a purged event is not authentic"))
            elif previous is not None and tomb_previous != previous:
                report.add(Problem("link", expected, "the purged event did not follow the one before it"))
            previous = tomb_hash
            report.tombstones += 1
            expected += 1

    events = AuditEvent.objects.filter(sequence__isnull=False)
    ring_chained = False  # seen a link made by the key ring: no legacy link may follow
    while True:
        query = events.filter(sequence__gt=cursor, sequence__lte=stop)
        rows = list(query.order_by("sequence").values_list(*_ROW_FIELDS)[:chunk_size])
        if not rows:
            break
        span_end = rows[-1][1]
        tombstones = _tombstones(expected, span_end)
        for row in rows:
            event_id, sequence, stored_previous, stored_hash, stored_mac, content_key_id, chain_key_id = row[
                :_ROW_CONTENT_START
            ]
            if sequence > expected:
                use_tombstones_until(sequence, tombstones)
            if sequence > expected:
                missing_to = sequence - 1
                label = f"#{expected}" if missing_to == expected else f"#{expected}..#{missing_to}"
                report.add(Problem("missing", expected, f"event {label} is missing (deleted)"))
                previous = None  # nothing to link to: resynchronise on this event
            values = dict(zip(CONTENT_FIELDS, row[_ROW_CONTENT_START:], strict=True))
            legacy_content = content_key_id in (None, LEGACY_KEY_ID)
            legacy_chain = chain_key_id in (None, LEGACY_KEY_ID)
            # The legacy key made the chain before the key ring took over, and nothing since: an
            # event made with it after a key-ring link, or recorded with it but chained by the
            # ring, was written by someone holding the legacy key, not by audit.record().
            legacy_misuse = (legacy_chain and ring_chained) or (legacy_content and not legacy_chain)
            if not legacy_chain:
                ring_chained = True
            if legacy_misuse:
                report.add(
                    Problem(
                        "legacy_key",
                        sequence,
                        "made with the legacy key after the key ring took over (forged)",
                        event_id,
                    )
                )
            else:
                try:
                    content_key = keys.get(content_key_id)
                except ChainKeyError as error:
                    report.add(
                        Problem("unknown_key", sequence, f"its content MAC cannot be checked: {error}", event_id)
                    )
                else:
                    if not macs_equal(content_mac(values, key=content_key), stored_mac):
                        report.add(
                            Problem("modified", sequence, "the content does not match its MAC (modified)", event_id)
                        )
            if previous is not None and stored_previous != previous:
                report.add(
                    Problem(
                        "link",
                        sequence,
                        "previous_hash does not match the event before it (inserted, deleted or reordered)",
                        event_id,
                    )
                )
            if not legacy_misuse:  # a misused legacy key is reported above; its MACs prove nothing
                _check_link_hash(report, keys, row=row[:_ROW_CONTENT_START])
            previous = stored_hash
            expected = sequence + 1
            report.checked += 1
        cursor = span_end
        if progress is not None:
            progress(len(rows))

    # The end: tombstones of purged newest events, then the head in the database and outside it.
    end_limit = stop
    if expected <= end_limit:
        tombstones = _tombstones(expected, end_limit)
        use_tombstones_until(end_limit + 1, tombstones)
    report.last_sequence = expected - 1
    report.last_hash = previous or ""

    if to_sequence is None:
        if report.last_sequence < head.sequence:
            report.add(
                Problem(
                    "truncated",
                    report.last_sequence + 1,
                    f"the chain ends at #{report.last_sequence} but the head says #{head.sequence} "
                    "(newest events deleted)",
                )
            )
        elif head.sequence > anchor_sequence and previous is not None and not macs_equal(previous, head.hash):
            report.add(Problem("head", head.sequence, "the last event's hash does not match the recorded head"))
        # Sealed events beyond the head: the sealer moves both in one transaction, so reading the
        # highest sequence *before* the head again leaves no room for a legitimate one.
        highest = events.aggregate(highest=Max("sequence"))["highest"] or 0
        head_now = ChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first() or 0
        if highest > head_now:
            report.add(Problem("beyond_head", head_now + 1, f"events after the recorded head #{head_now}"))

    _check_published_head(report, anchor_sequence=anchor_sequence)
    _check_unsealed(report, keys=keys)
    report.elapsed_seconds = time.perf_counter() - started
    return report


def _check_published_head(report: VerificationReport, *, anchor_sequence: int) -> None:
    """Compare with the last head published outside the database (truncation of the tail)."""
    from audit.models import AuditEvent, AuditTombstone

    published = last_published_head()
    report.published_head = published
    if published is None:
        return
    if published.key_problem:
        report.add(
            Problem("published_head", None, f"the last line of the published-heads file cannot be checked: "
                    f"{published.key_problem}")
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
        highest = AuditEvent.objects.aggregate(highest=Max("sequence"))["highest"] or anchor_sequence
        first_missing = min(published.sequence, highest + 1)
        report.add(
            Problem(
                "truncated",
                first_missing,
                f"head #{published.sequence} was published on {published.published_at} but the chain ends at "
                f"#{highest} (newest events deleted)",
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



def _check_link_hash(report: VerificationReport, keys: ChainKeys, *, row: tuple) -> None:
    """Check an event's chain hash with the key named by its ``chain_key_id``."""
    event_id, sequence, stored_previous, stored_hash, stored_mac, content_key_id, chain_key_id = row
    try:
        chain_key = keys.get(chain_key_id)
    except ChainKeyError as error:
        if chain_key_id != content_key_id:  # the same missing key is reported once per event
            report.add(Problem("unknown_key", sequence, f"its chain hash cannot be checked: {error}", event_id))
        return
    recomputed = link_hash(
        sequence=sequence, previous_hash=stored_previous or "", content_mac_value=stored_mac or "", key=chain_key
    )
    if not macs_equal(recomputed, stored_hash):
        report.add(Problem("hash", sequence, "the chain hash is wrong (forged, renumbered or reordered)", event_id))

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
            report.add(Problem("forged_unsealed", None, "an unsealed event made with the legacy key after the upgrade",
                               event_id))
            continue
        try:
            key = keys.get(content_key_id)
        except ChainKeyError as error:
            report.add(Problem("forged_unsealed", None, f"an unsealed event whose MAC cannot be checked: {error}",
                               event_id))
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
