"""The Merkle tree's cost, measured side by side in one run: sealing and verification with and without it.

    .venv/bin/python bench/audit_merkle_bench.py --size 100000
    scripts/with-postgres.sh .venv/bin/python bench/audit_merkle_bench.py --size 100000

Rounds alternate: ``--size`` unsealed events are inserted, then sealed by the real sealer with
the tree (each event's leaf hashed and appended to the frontier) or without it (the same code with
those two calls made no-ops); the same for a full ``verify_chain`` with and without recomputing
the tree. Then the time to sign and publish one checkpoint (file sink; and to a witness run as
its own process on this machine) after a minute's worth of events. Prints events/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from bench.audit_bench import _generate, _print, _setup_django  # noqa: E402


def _seal(with_tree: bool) -> tuple[int, float]:
    from audit import sealing

    started = time.perf_counter()
    if with_tree:
        sealed = sealing.seal_pending(batch_size=5000).sealed
    else:
        with mock.patch.object(sealing, "frontier_append"), mock.patch.object(sealing, "event_leaf"):
            sealed = sealing.seal_pending(batch_size=5000).sealed
    return sealed, time.perf_counter() - started


def _verify(with_tree: bool) -> tuple[int, float]:
    from audit import verification

    if with_tree:
        report = verification.verify_chain()
    else:
        with mock.patch.object(verification.TreeCheck, "add"):
            report = verification.verify_chain()
    return report.checked, report.elapsed_seconds


def bench_sealing(size: int, rounds: int) -> list[tuple[str, str]]:
    from django.conf import settings

    from audit.models import ChainHead

    settings.AUDIT_SEAL_MODE = "periodic"
    rates: dict[bool, list[float]] = {True: [], False: []}
    for round_number in range(rounds):
        for with_tree in (True, False) if round_number % 2 == 0 else (False, True):
            _generate(size)
            sealed, seconds = _seal(with_tree)
            rates[with_tree].append(sealed / seconds)
            if not with_tree:  # the tree was not grown: restart it at the head, as the upgrade migration does
                head = ChainHead.objects.get(pk=1)
                ChainHead.objects.filter(pk=1).update(tree_base=head.sequence, tree_size=0, tree_frontier="")
    with_rate, without_rate = statistics.median(rates[True]), statistics.median(rates[False])
    return [
        ("seal with the Merkle tree", f"{with_rate:,.0f} events/s (median of {rounds} x {size})"),
        ("seal without it", f"{without_rate:,.0f} events/s"),
        ("seal: cost of the tree", f"{without_rate / with_rate:.3f}x the time"),
    ]


def bench_verify(rounds: int) -> list[tuple[str, str]]:
    from audit.models import AuditEvent, ChainHead

    # A tree over the whole chain: restart it at 0 and compute its frontier as the sealer would.
    from audit.offline_verifier import event_leaf_hash, frontier_append

    head = ChainHead.objects.get(pk=1)
    frontier: list[bytes] = []
    size = 0
    from audit.chain import CONTENT_FIELDS

    for row in AuditEvent.objects.order_by("sequence").values("sequence", *CONTENT_FIELDS).iterator(chunk_size=5000):
        frontier_append(frontier, size, event_leaf_hash(row["sequence"], row))
        size += 1
    ChainHead.objects.filter(pk=1).update(
        tree_base=0, tree_size=size, tree_frontier=" ".join(value.hex() for value in frontier)
    )
    assert size == head.sequence
    rates: dict[bool, list[float]] = {True: [], False: []}
    for round_number in range(rounds):
        for with_tree in (True, False) if round_number % 2 == 0 else (False, True):
            checked, seconds = _verify(with_tree)
            rates[with_tree].append(checked / seconds)
    with_rate, without_rate = statistics.median(rates[True]), statistics.median(rates[False])
    return [
        ("audit_verify with the tree", f"{with_rate:,.0f} events/s (median of {rounds} x {size})"),
        ("audit_verify without it", f"{without_rate:,.0f} events/s"),
        ("verify: cost of the tree", f"{without_rate / with_rate:.3f}x the time"),
    ]


def bench_publication(per_minute: int, samples: int) -> list[tuple[str, str]]:
    from django.conf import settings

    from audit.checkpoints import checkpoint_publish, verifier_keys
    from audit.sealing import seal_pending

    results = []
    witness_dir = Path(settings.VAR_DIR) / "witness"
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "audit" / "witness.py"), "--key", verifier_keys()[0][1],
         "--state", str(witness_dir), "--port", "0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = process.stderr.readline().rsplit(":", 1)[1].strip()
        for sinks in (["file"], ["file", "witness"]):
            settings.AUDIT_CHECKPOINT_SINKS = sinks
            settings.AUDIT_WITNESS_URL = f"http://127.0.0.1:{port}"
            durations = []
            for _ in range(samples):
                _generate(per_minute)
                seal_pending(batch_size=5000)
                started = time.perf_counter()
                result = checkpoint_publish()
                durations.append(time.perf_counter() - started)
                assert result.ok, result.sinks
            durations.sort()
            p95 = durations[max(0, int(len(durations) * 0.95) - 1)]
            results.append(
                (
                    f"publish a checkpoint ({'+'.join(sinks)})",
                    f"median {statistics.median(durations) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms "
                    f"({samples} checkpoints, {per_minute} new events each)",
                )
            )
    finally:
        process.terminate()
        process.wait(timeout=10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=50000, help="Events per sealing round.")
    parser.add_argument("--rounds", type=int, default=4, help="Rounds of each variant (alternating).")
    parser.add_argument("--per-minute", type=int, default=5000, help="New events before each checkpoint.")
    parser.add_argument("--samples", type=int, default=20, help="Checkpoints published per sink set.")
    arguments = parser.parse_args()
    _setup_django()
    from django.db import connection

    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        vendor = connection.vendor
        print(f"database: {vendor}  cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")
        _print(bench_sealing(arguments.size, arguments.rounds))
        _print(bench_verify(arguments.rounds))
        _print(bench_publication(arguments.per_minute, arguments.samples))
    finally:
        connection.close()
        connection.creation.destroy_test_db(test_name, verbosity=0)


if __name__ == "__main__":
    main()
