"""The SIEM export (``audit_siem_export``) against reading the same events, side by side.

    .venv/bin/python bench/siem_bench.py [N]
    scripts/with-postgres.sh .venv/bin/python bench/siem_bench.py 200000

N (default 50,000) events are generated and sealed in a scratch database. Then, in one run,
each timed twice (the best of two):

1. read: iterate the sealed events in sequence order, in the exporter's batches, doing nothing
   with them (the floor: what the database and the ORM cost);
2. OCSF: the same, mapped to OCSF and written as JSON lines to a discarded stream;
3. ECS: the same for ECS.

It prints events per second for each and the ratio of each export to the read. No absolute
target: the export should stay a small multiple of reading the rows it exports.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from bench.audit_bench import _generate, _setup_django  # noqa: E402
from bench.support import scratch_database  # noqa: E402


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def _best(run) -> float:
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    description, cleanup = scratch_database("siem-bench")
    _setup_django()
    try:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from audit import siem
        from audit.services import audit_chain_seal

        _generate(size)
        audit_chain_seal()
        exported = siem.siem_export(output=_Discard(), schema="ocsf").exported
        assert exported == size, f"{exported} of {size} events sealed and exported"

        def read() -> None:
            for _event in siem.sealed_events_after(0):
                pass

        timings = {"read": _best(read)}
        for schema in siem.FORMATS:
            timings[schema] = _best(lambda schema=schema: siem.siem_export(output=_Discard(), schema=schema))
        print(f"SIEM export, {size:,} sealed events, {description}")
        for name, seconds in timings.items():
            ratio = "" if name == "read" else f"  {seconds / timings['read']:.2f}x the read"
            print(f"  {name:5} {size / seconds:>12,.0f} events/s{ratio}")
    finally:
        cleanup()


if __name__ == "__main__":
    main()
