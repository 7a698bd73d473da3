"""``audit_verify``'s check of the published checkpoints against the tree recomputed from the events.

What a full verification compares (each failure a ``Problem`` of its own kind, never silence):

* every checkpoint of ``checkpoints.log`` and the witness's latest must have the root of the
  tree recomputed from the events at its size → else ``checkpoint_root``, named by the first
  event after the last checkpoint that still matched (an event up to the checkpoint's size was
  changed, removed or reordered), or ``checkpoint_signature`` when the line is not signed by an
  ``audit_checkpoint`` key (the line was forged);
* no published checkpoint may cover more events than the chain holds → else
  ``checkpoint_truncated``: the newest events were deleted, even when ``ChainHead`` was rewritten
  to match (the message says where the chain now ends);
* ``checkpoints.log`` must exist once a checkpoint was made, and must reach the last checkpoint
  the database recorded → else ``checkpoints_missing`` / ``checkpoints_shortened``; its sizes
  never go down → else ``checkpoints_inconsistent``; with a publication interval, events sealed
  longer ago than the interval and the grace must be covered by some checkpoint → else
  ``checkpoints_missing``;
* with the witness sink, the witness must answer with a checkpoint signed by our key → else
  ``witness``.

Both name the first event after the last checkpoint that still matches: everything up to it is
proven, nothing after it is. The name stays the same from run to run, also when new events have
taken the numbers of deleted ones (what they replaced cannot be told from what remains).

Signatures are checked where they decide something (a mismatch, a truncation, the last line),
not on every line of a years-long file: a line whose root matches the events proves nothing
false whoever wrote it.
"""

from __future__ import annotations

import datetime
import json

from django.utils import timezone

from audit import conf
from audit import offline_verifier as tlog
from audit.checkpoints import checkpoints_path, open_checkpoint, witness_latest
from audit.problems import Problem


class _Entry:
    """One published checkpoint: where it comes from, and its note (verified when it matters).

    A line of the file keeps only its size and root in memory (a year of checkpoints is half a
    million lines); its note is read again from the file when its signature must be checked.
    """

    __slots__ = ("checkpoint", "line", "note", "path", "source", "verified")

    def __init__(
        self,
        *,
        source: str,
        checkpoint: tlog.Checkpoint,
        verified: bool,
        note: str | None = None,
        path=None,
        line: int = 0,
    ) -> None:
        self.source, self.checkpoint, self.note, self.verified = source, checkpoint, note, verified
        self.path, self.line = path, line

    def note_text(self) -> str:
        if self.note is None and self.path is not None:
            with open(self.path, encoding="utf-8") as handle:
                for number, raw in enumerate(handle, start=1):
                    if number == self.line:
                        self.note = str(json.loads(raw)["note"])
                        break
        return self.note or ""

    def signature_problem(self) -> str:
        if self.verified:
            return ""
        try:
            open_checkpoint(self.note_text())
        except tlog.VerificationError as error:
            return str(error)
        self.verified = True
        return ""


def _unverified(note: str) -> tlog.Checkpoint:
    text, separator, _ = note.rpartition("\n\n")
    if not separator:
        raise tlog.VerificationError("not a signed note")
    return tlog.parse_checkpoint_text(text + "\n")


def published_checkpoints(report) -> dict[tuple[int, int], list[_Entry]]:
    """The checkpoints published off the database, by (epoch, tree size); problems with the files go to ``report``."""
    from audit.models import AuditCheckpoint

    sinks = conf.get("AUDIT_CHECKPOINT_SINKS") or []
    by_size: dict[tuple[int, int], list[_Entry]] = {}
    recorded = (
        AuditCheckpoint.objects.order_by("-epoch", "-tree_size").values("epoch", "tree_size", "created_at").first()
    )
    path = checkpoints_path()
    entries: list[_Entry] = []
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 (closed below, after the streaming loop)
    except FileNotFoundError:
        handle = None
    if handle is None:
        if recorded is not None and "file" in sinks:
            report.add(
                Problem(
                    "checkpoints_missing",
                    None,
                    f"{path.name} is missing, but the checkpoint of {recorded['tree_size']} events was published on "
                    f"{recorded['created_at'].isoformat()} (the file was deleted)",
                )
            )
    else:
        # Checkpoints grow within an epoch; a new epoch (a reconcile after a restore) starts from 0.
        previous = (0, -1)
        with handle:
            lines = list(_checkpoint_lines(handle, path, report))
        for number, checkpoint in lines:
            entry = _Entry(
                source=f"{path.name} line {number}", checkpoint=checkpoint, verified=False, path=path, line=number
            )
            if (checkpoint.epoch, checkpoint.size) < previous:
                report.add(
                    Problem(
                        "checkpoints_inconsistent",
                        None,
                        f"line {number} of {path.name} has {checkpoint.size} events (epoch {checkpoint.epoch}) after "
                        f"a checkpoint of {previous[1]} (epoch {previous[0]}): the log shrank",
                    )
                )
            elif checkpoint.epoch > previous[0] > 0 and checkpoint.previous_checkpoint() is None:
                report.add(
                    Problem(
                        "checkpoints_inconsistent",
                        None,
                        f"line {number} of {path.name} starts epoch {checkpoint.epoch} without naming the "
                        "checkpoint of the epoch before",
                    )
                )
            previous = max(previous, (checkpoint.epoch, checkpoint.size))
            entries.append(entry)
        if entries and (problem := entries[-1].signature_problem()):
            report.add(Problem("checkpoint_signature", None, f"the last line of {path.name}: {problem}"))
        if recorded is not None and "file" in sinks and previous < (recorded["epoch"], recorded["tree_size"]):
            report.add(
                Problem(
                    "checkpoints_shortened",
                    None,
                    f"{path.name} ends at a checkpoint of {max(previous[1], 0)} events, but the checkpoint of "
                    f"{recorded['tree_size']} events was published on {recorded['created_at'].isoformat()} "
                    "(the file was cut)",
                )
            )
    interval = float(conf.get("AUDIT_CHECKPOINT_INTERVAL") or 0)
    if recorded is None and not entries and interval > 0:
        _check_overdue(report, interval=interval)
    if "witness" in sinks:
        checkpoint, reason = witness_latest()
        if checkpoint is None:
            if recorded is not None or "no checkpoint" not in reason:
                report.add(Problem("witness", None, reason))
        else:
            entries.append(_Entry(source="the witness", checkpoint=checkpoint, verified=True))
    for entry in entries:
        by_size.setdefault((entry.checkpoint.epoch, entry.checkpoint.size), []).append(entry)
    report.checkpoints_compared = len(entries)
    return by_size


def _checkpoint_lines(handle, path, report):
    """(line number, unverified checkpoint) of each line of ``checkpoints.log``, streamed."""
    for number, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            yield number, _unverified(str(json.loads(raw)["note"]))
        except (ValueError, KeyError, TypeError, tlog.VerificationError):
            report.add(Problem("checkpoint_signature", None, f"line {number} of {path.name} is not a checkpoint"))


def _check_overdue(report, *, interval: float) -> None:
    from audit.models import AuditEvent, ChainHead

    head = ChainHead.objects.filter(pk=1).first()
    if head is None or head.tree_size == 0:
        return
    first = AuditEvent.objects.filter(sequence=head.tree_base + 1).values_list("timestamp", flat=True).first()
    grace = datetime.timedelta(seconds=interval + float(conf.get("AUDIT_SEAL_GRACE_SECONDS")))
    if first is not None and timezone.now() - first > grace:
        report.add(
            Problem(
                "checkpoints_missing",
                None,
                f"no checkpoint was published, yet events were sealed since {first.isoformat()} with a checkpoint "
                f"due every {interval:.0f} s (checkpoints deleted, or the publisher is not running)",
            )
        )


def check_published_checkpoints(report, *, tree) -> None:
    """Compare each published checkpoint with the tree the walk recomputed (see the module docstring).

    Per epoch: a checkpoint within the recomputed tree must have its root (``checkpoint_root``); one
    beyond it means events it covered are gone (``checkpoint_truncated``, named by the first missing
    sequence), unless the epoch has ended and its reconcile named that checkpoint as lost with the
    restore.
    """
    from audit.models import ChainHead

    _check_tree_state(report, tree=tree, head=ChainHead.objects.filter(pk=1).first())
    matched: dict[int, int] = {}
    current_epoch = tree.epochs[-1][0]
    for epoch, size in sorted(tree.expected):
        base = tree.bases.get(epoch)
        tree_size = tree.sizes.get(epoch, 0)
        for entry in tree.expected[(epoch, size)]:
            checkpoint = entry.checkpoint
            if base is None or size > tree_size:
                if tree.broken_epochs.get(epoch, False):
                    continue  # the chain's own problems name the gap
                if epoch < current_epoch and size <= tree.acknowledged.get(epoch, -1):
                    continue  # lost with a restore; the reconcile event names it
                if problem := entry.signature_problem():
                    report.add(Problem("checkpoint_signature", None, f"{entry.source}: {problem}"))
                    continue
                # Named by the first missing event, the same on every run (the sealer never numbers it
                # again); what no matching checkpoint covers since is said too.
                first_missing = (base or 0) + tree_size + 1
                proven = (base or 0) + matched.get(epoch, 0)
                report.add(
                    Problem(
                        "checkpoint_truncated",
                        first_missing,
                        f"the checkpoint of {size} events ({entry.source}, {checkpoint.time or 'no time'}"
                        f"{f', epoch {epoch}' if epoch != 1 else ''}) covers #{(base or 0) + size} but the chain "
                        f"ends at #{first_missing - 1} (newest events deleted; events after #{proven} are covered "
                        "by no matching checkpoint)",
                    )
                )
            elif tree.roots.get((epoch, size)) != checkpoint.root:
                if problem := entry.signature_problem():
                    report.add(Problem("checkpoint_signature", None, f"{entry.source}: {problem}"))
                    continue
                first = base + matched.get(epoch, 0) + 1
                report.add(
                    Problem(
                        "checkpoint_root",
                        first,
                        f"the events #{first}..#{base + size} differ from the checkpoint of {size} events "
                        f"({entry.source}, {checkpoint.time or 'no time'}): changed, removed or reordered",
                    )
                )
            else:
                matched[epoch] = max(matched.get(epoch, 0), size)


def _check_tree_state(report, *, tree, head) -> None:
    """The sealer's tree state must end at the chain head and hold the root of the events (``tree_state``)."""
    from audit.merkle import parse_frontier

    if head is None or tree.broken:
        return
    if head.tree_base + head.tree_size != head.sequence:
        report.add(
            Problem(
                "tree_state",
                head.tree_base + head.tree_size + 1,
                f"the Merkle tree ends at #{head.tree_base + head.tree_size} but the chain at #{head.sequence}: "
                "events were sealed outside the sealer, and no checkpoint is signed until this is resolved",
            )
        )
    elif (
        report.problem_count == 0  # a changed event changes the root too: the chain names the event
        and head.tree_size == tree.size
        and tlog.frontier_root(parse_frontier(head.tree_frontier)) != tlog.frontier_root(tree.frontier)
    ):
        report.add(Problem("tree_state", None, "the stored frontier of the Merkle tree is not the events' (edited)"))


_checkpoint_file_cache: dict = {"stamp": None, "value": None}


def published_high_water(*, tree_base: int, tree_epoch: int) -> tuple[int, str]:
    """The highest sequence known to be published outside the database, and where (``""``: none).

    The last line of ``heads.log`` (its MAC checked) and the last line of ``checkpoints.log`` of the
    current tree epoch (its signature checked; ``tree_base`` + its size). A number published there
    was sealed once; after the tail was cut (or a backup restored) it must never name another event,
    or each verification would name a different first missing event.
    """
    from audit.heads import last_published_head

    best, where = 0, ""
    try:
        published = last_published_head()
    except OSError:
        published = None
    if published is not None and published.mac_valid:
        best, where = published.sequence, "heads.log"
    checkpoint = _last_file_checkpoint()
    if checkpoint is not None and checkpoint.epoch == tree_epoch and tree_base + checkpoint.size > best:
        best, where = tree_base + checkpoint.size, "checkpoints.log"
    return best, where


def _last_file_checkpoint():
    """The last checkpoint of ``checkpoints.log`` if its signature verifies (cached by size and time)."""
    from audit.heads import _last_line

    path = checkpoints_path()
    try:
        status = path.stat()
    except OSError:
        return None
    stamp = (str(path), status.st_size, status.st_mtime_ns)
    if _checkpoint_file_cache["stamp"] == stamp:
        return _checkpoint_file_cache["value"]
    value = None
    try:
        raw = _last_line(path)
        if raw:
            value = open_checkpoint(str(json.loads(raw)["note"]))
    except Exception:  # an unreadable or forged line is audit_verify's to report; it moves no number
        value = None
    _checkpoint_file_cache.update(stamp=stamp, value=value)
    return value
