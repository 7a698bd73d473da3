"""Encrypted fields against plain fields, the field against raw AES-GCM, and rotation throughput.

    .venv/bin/python bench/encryption_bench.py [--rows 20000] [--rounds 5]
    scripts/with-postgres.sh .venv/bin/python bench/encryption_bench.py   # on PostgreSQL

Every figure is measured side by side in this one run (interleaved rounds, median per round):

- read and write of ``testapp.EncryptedMemory`` (encrypted content + metadata) against its plain
  twin ``testapp.PlainMemory`` at 1 kB and 64 kB of content: a read by primary key, a read of
  100 rows, and a create;
- the field's own encryption and decryption against ``cryptography``'s AESGCM on the same bytes
  (the floor);
- rotation of ``--rows`` memories to a new key, the batched writer against the row-by-row one:
  rows per second, their ratio and peak memory growth.

It uses the test settings and a scratch database of its own: a temporary SQLite file, or, when
DATABASE_URL names a PostgreSQL server, a temporary database on that server (dropped at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import resource
import secrets
import statistics
import string
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
os.environ.setdefault("DATABASE_POOL", "false")

from bench.support import run_in_scratch_database  # noqa: E402  (after the path and settings)


def _text(size: int) -> str:
    alphabet = string.ascii_letters + string.digits + "     .,\n"
    return "".join(secrets.choice(alphabet) for _ in range(size))


def _per_call(function, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - start) / repeat


def _compare(label: str, plain, encrypted, *, repeat: int, rounds: int) -> tuple[float, float]:
    """Interleave the two sides ``rounds`` times; report medians and the ratio."""
    plain_times, encrypted_times = [], []
    plain()
    encrypted()  # warm caches and connections
    for round_number in range(rounds):
        # Alternate which side goes first, so periodic work (a WAL checkpoint, autovacuum) does
        # not always land on the same side.
        if round_number % 2:
            encrypted_times.append(_per_call(encrypted, repeat))
            plain_times.append(_per_call(plain, repeat))
        else:
            plain_times.append(_per_call(plain, repeat))
            encrypted_times.append(_per_call(encrypted, repeat))
    p, e = statistics.median(plain_times), statistics.median(encrypted_times)
    print(f"  {label:<34} plain {p * 1e6:9.1f} us   encrypted {e * 1e6:9.1f} us   ratio {e / p:5.2f}x")
    return p, e


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=20_000, help="memories to rotate (default 20000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per figure (default 5)")
    args = parser.parse_args()

    run_in_scratch_database("encryption-bench", lambda kind: _run(kind, args))


def _bench_size(size: int, repeat: int, *, rounds: int, metadata: dict) -> None:
    """Encrypted against plain memories with ``size`` characters of content."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from django.db import connection

    from encryption.keyring import get_key_ring
    from tests.testapp.models import EncryptedMemory, PlainMemory

    content = _text(size)
    print(f"\n{size // 1024} kB of memory content")
    plain_rows = [PlainMemory.objects.create(title="t", content=content, metadata=metadata).pk for _ in range(100)]
    encrypted_rows = [
        EncryptedMemory.objects.create(title="t", content=content, metadata=metadata).pk for _ in range(100)
    ]
    positions = {"plain": 0, "encrypted": 0}

    def get_plain(rows=plain_rows):
        positions["plain"] = (positions["plain"] + 1) % len(rows)
        return PlainMemory.objects.get(pk=rows[positions["plain"]])

    def get_encrypted(rows=encrypted_rows):
        positions["encrypted"] = (positions["encrypted"] + 1) % len(rows)
        return EncryptedMemory.objects.get(pk=rows[positions["encrypted"]])

    _compare("read one row by pk", get_plain, get_encrypted, repeat=repeat, rounds=rounds)
    _compare(
        "read 100 rows (one query)",
        lambda: list(PlainMemory.objects.filter(pk__in=plain_rows)),
        lambda: list(EncryptedMemory.objects.filter(pk__in=encrypted_rows)),
        repeat=max(repeat // 50, 3),
        rounds=rounds,
    )
    _compare(
        "create one row",
        lambda: PlainMemory.objects.create(title="t", content=content, metadata=metadata),
        lambda: EncryptedMemory.objects.create(title="t", content=content, metadata=metadata),
        repeat=repeat,
        rounds=rounds,
    )

    # The field alone against raw AES-GCM on the same bytes and associated data.
    field = EncryptedMemory._meta.get_field("content")
    key = get_key_ring("field").primary
    aesgcm = AESGCM(key.material)
    data = content.encode()
    nonce = os.urandom(12)
    sealed = aesgcm.encrypt(nonce, data, field.associated_data)
    token = field.get_db_prep_value(content, connection)
    _compare(
        "encrypt: AESGCM vs field",
        lambda: aesgcm.encrypt(nonce, data, field.associated_data),
        lambda: field.get_db_prep_value(content, connection),
        repeat=repeat * 10,
        rounds=rounds,
    )
    _compare(
        "decrypt: AESGCM vs field",
        lambda: aesgcm.decrypt(nonce, sealed, field.associated_data),
        lambda: field.from_db_value(token, None, connection),
        repeat=repeat * 10,
        rounds=rounds,
    )
    PlainMemory.objects.all().delete()
    EncryptedMemory.objects.all().delete()


def _run(kind: str, args) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from encryption.crypto import token_key_id
    from encryption.keyring import format_key, get_key_ring
    from encryption.services import encryption_keys_rotate
    from tests.testapp.models import EncryptedMemory

    call_command("migrate", verbosity=0, interactive=False)
    logging.getLogger("audit").setLevel(logging.WARNING)  # the two rotation events, not per-figure noise
    print(f"Encryption benchmark on {kind}, {args.rounds} interleaved rounds, medians")
    metadata = {"source": "bench", "tags": ["a", "b"], "score": 0.5}

    for size, repeat in ((1024, 400), (65_536, 100)):
        _bench_size(size, repeat, rounds=args.rounds, metadata=metadata)

    # Rotation throughput: the batched writer against the row-by-row one (the fallback it keeps
    # for refused rows), each rewriting every row to a new key, alternating which goes first.
    print(f"\nRotation of {args.rows} memories (1 kB content) to a new key, batches of 500")
    content = _text(1024)
    batch = 2000
    for start in range(0, args.rows, batch):
        EncryptedMemory.objects.bulk_create(
            EncryptedMemory(title=f"m{index}", content=content, metadata=metadata)
            for index in range(start, min(start + batch, args.rows))
        )
    rates: dict[str, list[float]] = {"row by row": [], "batched": []}
    ring_text = ",".join(format_key(key.id, key.material) for key in get_key_ring("field"))
    for round_number in range(2):
        order = ("row by row", "batched") if round_number % 2 == 0 else ("batched", "row by row")
        for writer in order:
            key_id = f"bench-{round_number}-{writer.replace(' ', '-')}"
            ring_text = f"{format_key(key_id, secrets.token_bytes(32))},{ring_text}"
            patch = _row_by_row_writes() if writer == "row by row" else contextlib.nullcontext()
            with override_settings(ENCRYPTION_FIELD_KEYS=ring_text), patch:
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                started = time.perf_counter()
                result = encryption_keys_rotate(batch_size=500)
                elapsed = time.perf_counter() - started
                rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                sample = EncryptedMemory.objects.order_by("?").values_list("pk", flat=True)[:1]
                with connection.cursor() as cursor:
                    cursor.execute("SELECT content FROM testapp_encryptedmemory WHERE id = %s", [sample[0]])
                    assert token_key_id(cursor.fetchone()[0]) == key_id
            rotated = next(item for item in result.models if item.label == "testapp.EncryptedMemory")
            assert rotated.rows_updated == args.rows, rotated
            rates[writer].append(rotated.rows_updated / elapsed)
            print(
                f"  round {round_number + 1} {writer:<10} {rotated.rows_updated} rows in {elapsed:.2f} s: "
                f"{rotated.rows_updated / elapsed:,.0f} rows/s, "
                f"peak RSS growth {(rss_after - rss_before) / 1024:.1f} MiB"
            )
    row_rate, batch_rate = statistics.median(rates["row by row"]), statistics.median(rates["batched"])
    print(
        f"  median: row by row {row_rate:,.0f} rows/s, batched {batch_rate:,.0f} rows/s, "
        f"batched / row by row {batch_rate / row_rate:.2f}x (goal: 5,000 rows/s)"
    )


def _row_by_row_writes():
    """Make rotation write each row in its own statement and savepoint (the writer before batching)."""
    from unittest import mock

    from encryption import services

    def row_by_row(model, changes, *, stats, using, result=None):
        connection = services.connections[using]
        with services.transaction.atomic(using=using), connection.cursor() as cursor:
            services._apply_rows(cursor, connection, model, changes, stats=stats, using=using, result=result)

    return mock.patch.object(services, "_apply", row_by_row)


if __name__ == "__main__":
    main()
