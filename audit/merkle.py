"""The RFC 6962 Merkle tree over sealed events, on the database side.

The hashing, proofs and checkpoint format are in ``audit.offline_verifier`` (standalone, so an
auditor runs the very same code); this module reads and writes the tree's state.

State kept, and why it is enough
--------------------------------
``ChainHead`` holds ``tree_base`` (the chain's length when the tree began), ``tree_size`` and the
*frontier*: one hash per set bit of ``tree_size`` (at most 64), the roots of the largest perfect
subtrees covering the tree, left to right. The sealer appends each event's leaf to the frontier in
the transaction that seals it (amortised one extra SHA-256 per event), so a checkpoint's root is
read off the frontier without touching a single event. Each ``AuditCheckpoint`` keeps the frontier
at its size, and a consistency proof from checkpoint *m* to *n* needs only that frontier and the
leaves of the events sealed in between (``consistency_proof``). An inclusion proof reads the
leaves of the checkpoint's tree (``inclusion_proof``): the one place the whole table is read, on
demand, for one proof.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit import offline_verifier as tlog
from audit.chain import CONTENT_FIELDS


class TreeDataMissing(Exception):
    """Events the tree needs are not in the database (deleted, or purged by retention)."""


def parse_frontier(text: str) -> list[bytes]:
    """The frontier stored as space-separated hex hashes."""
    return [bytes.fromhex(value) for value in text.split()]


def format_frontier(frontier: list[bytes]) -> str:
    return " ".join(value.hex() for value in frontier)


def event_leaf(sequence: int, content: bytes) -> bytes:
    """The leaf hash of the event at ``sequence`` whose canonical content is ``content``."""
    return tlog.leaf_hash(tlog.event_leaf_data(sequence, content))


def leaf_hashes(first_sequence: int, last_sequence: int, *, chunk_size: int = 5000) -> list[bytes]:
    """The leaf hashes of the events ``first_sequence``..``last_sequence``; ``TreeDataMissing`` on a gap."""
    from audit.models import AuditEvent, AuditSkippedSequence

    # Numbers the sealer stepped over have a "skipped" leaf; a forged row that holds one is not a leaf.
    skipped = set(
        AuditSkippedSequence.objects.filter(sequence__gte=first_sequence, sequence__lte=last_sequence).values_list(
            "sequence", flat=True
        )
    )
    hashes: list[bytes] = []
    cursor = first_sequence - 1

    def step_over_skips() -> None:
        nonlocal cursor
        while cursor + 1 in skipped and cursor < last_sequence:
            cursor += 1
            hashes.append(tlog.skipped_leaf_hash(cursor))

    while cursor < last_sequence:
        step_over_skips()
        rows = list(
            AuditEvent.objects.filter(sequence__gt=cursor, sequence__lte=last_sequence)
            .order_by("sequence")
            .values("sequence", *CONTENT_FIELDS)[:chunk_size]
        )
        if not rows:
            break
        for row in rows:
            step_over_skips()
            if row["sequence"] in skipped:
                continue
            if row["sequence"] != cursor + 1:
                raise TreeDataMissing(f"event #{cursor + 1} is not in the database (deleted or purged)")
            hashes.append(tlog.event_leaf_hash(row["sequence"], row))
            cursor = row["sequence"]
    step_over_skips()
    if cursor < last_sequence:
        raise TreeDataMissing(f"event #{cursor + 1} is not in the database (deleted or purged)")
    return hashes


@dataclass(frozen=True)
class InclusionProof:
    sequence: int
    leaf_index: int
    tree_size: int
    path: list[bytes]


def inclusion_proof(*, sequence: int, tree_base: int, tree_size: int) -> InclusionProof:
    """The inclusion proof of the event at ``sequence`` in the tree of ``tree_size`` leaves."""
    index = sequence - tree_base - 1
    if not 0 <= index < tree_size:
        raise ValueError(f"event #{sequence} is not in the tree of {tree_size} events after #{tree_base}")
    leaves = leaf_hashes(tree_base + 1, tree_base + tree_size)
    return InclusionProof(
        sequence=sequence,
        leaf_index=index,
        tree_size=tree_size,
        path=tlog.inclusion_proof(index, tree_size, tlog.list_hasher(leaves)),
    )


def consistency_proof(*, old_size: int, old_frontier: list[bytes], new_size: int, tree_base: int) -> list[bytes]:
    """The consistency proof from ``old_size`` to ``new_size``, reading only the events in between."""
    leaves = leaf_hashes(tree_base + old_size + 1, tree_base + new_size) if new_size > old_size else []
    return tlog.consistency_proof(old_size, new_size, tlog.frontier_hasher(old_size, old_frontier, leaves))
