"""``manage.py audit_proof EVENT`` / ``--consistency OLD NEW``: proofs as JSON, for the offline verifier."""

from __future__ import annotations

import base64
import json

from django.core.management.base import BaseCommand, CommandError

from audit import offline_verifier as tlog
from audit.chain import CONTENT_FIELDS
from audit.merkle import TreeDataMissing, consistency_proof, inclusion_proof, parse_frontier
from audit.models import AuditCheckpoint, AuditEvent


def event_document(values: dict) -> dict:
    """An event's sequence and content fields as JSON values (what its leaf is computed from)."""
    document = {"sequence": values["sequence"]}
    for name in CONTENT_FIELDS:
        value = values[name]
        if name == "uuid":
            value = str(value)
        elif name == "timestamp":
            value = value.isoformat()
        document[name] = value
    return document


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(value).decode("ascii") for value in values]


class Command(BaseCommand):
    help = (
        "Print, as JSON, the inclusion proof of the audit event with sequence EVENT against a signed checkpoint "
        "(the latest that covers it, or --checkpoint SIZE), or with --consistency OLD NEW the consistency proof "
        "between the checkpoints of those tree sizes. Check either with audit/offline_verifier.py and the public key."
    )

    def add_arguments(self, parser):
        parser.add_argument("event", nargs="?", type=int, help="The sequence number of the event.")
        parser.add_argument("--checkpoint", type=int, help="The tree size of the checkpoint to prove against.")
        parser.add_argument(
            "--consistency", nargs=2, type=int, metavar=("OLD", "NEW"), help="Tree sizes of two checkpoints."
        )

    def handle(self, *args, event=None, checkpoint=None, consistency=None, **options):
        try:
            document = self._consistency(*consistency) if consistency else self._inclusion(event, checkpoint)
        except TreeDataMissing as error:
            raise CommandError(f"The proof needs events that are no longer in the database: {error}.") from None
        self.stdout.write(json.dumps(document, indent=2, sort_keys=True))

    def _inclusion(self, sequence: int | None, size: int | None) -> dict:
        if sequence is None:
            raise CommandError("Name the event by its sequence number (or use --consistency OLD NEW).")
        values = AuditEvent.objects.filter(sequence=sequence).values("sequence", *CONTENT_FIELDS).first()
        if values is None:
            raise CommandError(f"No sealed audit event has sequence {sequence}.")
        # The tree epoch that holds the event (a reconcile after a restore starts a new one).
        checkpoints = AuditCheckpoint.objects.filter(tree_base__lt=sequence)
        if size is not None:
            checkpoints = checkpoints.filter(tree_size=size)
        stored = checkpoints.order_by("-epoch", "-tree_size").first()
        if stored is None:
            missing = f"No checkpoint of tree size {size}." if size else "No checkpoint yet: run audit_checkpoint."
            raise CommandError(missing)
        if not stored.tree_base < sequence <= stored.tree_base + stored.tree_size:
            raise CommandError(
                f"Event #{sequence} is not in the checkpoint of {stored.tree_size} events after #{stored.tree_base}"
                + (" (run audit_checkpoint once it is sealed)." if sequence > stored.tree_base else ".")
            )
        proof = inclusion_proof(sequence=sequence, tree_base=stored.tree_base, tree_size=stored.tree_size)
        return {
            "format": tlog.PROOF_FORMAT,
            "sequence": sequence,
            "leaf_index": proof.leaf_index,
            "tree_size": stored.tree_size,
            "tree_base": stored.tree_base,
            "event": event_document(values),
            "inclusion_path": _b64(proof.path),
            "checkpoint": stored.note,
        }

    def _consistency(self, old_size: int, new_size: int) -> dict:
        if not 0 < old_size <= new_size:
            raise CommandError("OLD and NEW are tree sizes of checkpoints, 0 < OLD <= NEW.")
        found: dict[int, dict[int, AuditCheckpoint]] = {}
        for item in AuditCheckpoint.objects.filter(tree_size__in=[old_size, new_size]):
            found.setdefault(item.epoch, {})[item.tree_size] = item
        # Both in one tree epoch, the latest that has them (sizes start again in each epoch).
        epoch = next(
            (epoch for epoch in sorted(found, reverse=True) if {old_size, new_size} <= set(found[epoch])),
            None,
        )
        if epoch is None:
            for size in (old_size, new_size):
                if not any(size in sizes for sizes in found.values()):
                    raise CommandError(f"No checkpoint of tree size {size}.")
            raise CommandError(f"No tree epoch has checkpoints of both {old_size} and {new_size}.")
        old, new = found[epoch][old_size], found[epoch][new_size]
        proof = consistency_proof(
            old_size=old_size, old_frontier=parse_frontier(old.frontier), new_size=new_size, tree_base=new.tree_base
        )
        return {
            "format": tlog.CONSISTENCY_FORMAT,
            "old_checkpoint": old.note,
            "new_checkpoint": new.note,
            "consistency_path": _b64(proof),
        }
