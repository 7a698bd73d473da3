"""Encrypted backup and verification throughput (MB/s) against the unencrypted floor.

    .venv/bin/python bench/backup_bench.py [--size-mb 200] [--rounds 3]
    scripts/with-postgres.sh .venv/bin/python bench/backup_bench.py --size-mb 200   # on PostgreSQL

Fills a scratch database with ``--size-mb`` of encrypted memories (``testapp.EncryptedMemory``,
64 kB of random text each), then measures, in interleaved rounds (median):

- ``backup_create``: snapshot or ``pg_dump``, streamed through AES-256-GCM chunks into the file;
- the same dump without encryption (SQLite: the online backup API into a file, then read back;
  PostgreSQL: ``pg_dump --format=custom`` into /dev/null): the floor the encryption adds to;
- the chunked encryption and the SHA-256 alone over the dump's bytes in memory (their own cost);
- ``backup_verify``: decrypt, restore into a scratch database, count rows, decrypt a sample.

MB/s is dump megabytes (2**20 bytes of the plaintext dump) per second of wall time, and peak
RSS growth shows that memory does not follow the database's size.

Uses the test settings and a scratch database of its own: a temporary SQLite file, or, when
DATABASE_URL names a PostgreSQL server, a temporary database on that server (dropped at the end).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
os.environ.setdefault("DATABASE_POOL", "false")

from bench.support import run_in_scratch_database  # noqa: E402  (after the path and settings)

MIB = 1024 * 1024


def _fill(size_mb: int) -> int:
    """Insert encrypted memories until the table holds about ``size_mb`` MiB of tokens."""
    from tests.testapp.models import EncryptedMemory

    # A token is ~4/3 of its plaintext (base64 of the ciphertext), and ciphertext does not compress,
    # so pg_dump's compression cannot shrink the figures whatever the text is.
    rows = max(1, int(size_mb * MIB / (65_536 * 4 / 3)))
    for start in range(0, rows, 50):
        EncryptedMemory.objects.bulk_create(
            EncryptedMemory(title=f"m{index}", content=os.urandom(32_768).hex(), metadata={"i": index})
            for index in range(start, min(start + 50, rows))
        )
    return rows


def _dump_floor(private: Path) -> int:
    """The dump without encryption; return its size in bytes."""
    from django.db import connection

    from encryption.backups.postgresql import pg_dump_options, pg_environment, pg_program, server_settings

    if connection.vendor == "sqlite":
        import sqlite3

        target_path = private / "plain.sqlite3"
        source = sqlite3.connect(f"{Path(connection.settings_dict['NAME']).resolve().as_uri()}?mode=ro", uri=True)
        target = sqlite3.connect(target_path)
        source.backup(target, pages=-1)
        target.close()
        source.close()
        size = 0
        with open(target_path, "rb") as handle:
            while chunk := handle.read(MIB):
                size += len(chunk)
        target_path.unlink()
        return size
    server = server_settings()
    environment = pg_environment(server, dbname=server["NAME"], private=private)
    process = subprocess.Popen(
        [pg_program("pg_dump"), "--format=custom", "--no-password", *pg_dump_options()],
        env=environment,
        stdout=subprocess.PIPE,
    )
    size = 0
    while chunk := process.stdout.read(MIB):  # read and dropped, as /dev/null would
        size += len(chunk)
    process.stdout.close()
    assert process.wait() == 0
    (private / "pgpass").unlink()
    return size


def _encrypt_only(dump: bytes) -> None:
    from encryption.backups import BackupWriter
    from encryption.keyring import get_key_ring

    writer = BackupWriter(io.BytesIO(), key=get_key_ring("backup").primary, database="bench")
    view = memoryview(dump)
    for offset in range(0, len(dump), MIB):
        writer.write(view[offset : offset + MIB])
    writer.finish({})


def _median(times: list[float]) -> float:
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mb", type=int, default=200, help="encrypted memories to back up, in MiB (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per figure (default 3)")
    args = parser.parse_args()

    run_in_scratch_database("backup-bench", lambda kind: _run(kind, args))


def _run(kind: str, args) -> None:
    from django.core.management import call_command

    from encryption.backups import BackupReader, backup_create, backup_verify

    call_command("migrate", verbosity=0, interactive=False)
    logging.getLogger("audit").setLevel(logging.WARNING)
    logging.getLogger("encryption").setLevel(logging.WARNING)
    started = time.perf_counter()
    rows = _fill(args.size_mb)
    print(
        f"Backup benchmark on {kind}: {rows} memories of 64 kB (~{args.size_mb} MiB), filled in "
        f"{time.perf_counter() - started:.1f} s; {args.rounds} interleaved rounds, medians"
    )

    backup_times, verify_times, floor_times, cipher_times = [], [], [], []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory(prefix="backup-bench-out-") as folder:
        folder = Path(folder)
        dump_bytes = file_bytes = floor_bytes = 0
        for round_number in range(args.rounds):
            path = folder / f"bench-{round_number}.nvbak"
            steps = ["floor", "backup"] if round_number % 2 == 0 else ["backup", "floor"]
            for step in steps:
                began = time.perf_counter()
                if step == "floor":
                    floor_bytes = _dump_floor(folder)
                    floor_times.append(time.perf_counter() - began)
                else:
                    created = backup_create(output=path)
                    backup_times.append(time.perf_counter() - began)
                    dump_bytes, file_bytes = created.dump_bytes, created.file_bytes
            began = time.perf_counter()
            backup_verify(path=path)
            verify_times.append(time.perf_counter() - began)
            if round_number < args.rounds - 1:
                path.unlink()
        rss_backup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(path, "rb") as stream:
            dump = b"".join(BackupReader(stream).chunks())
        for _ in range(args.rounds):
            began = time.perf_counter()
            _encrypt_only(dump)
            cipher_times.append(time.perf_counter() - began)

    megabytes = dump_bytes / MIB
    backup, verify, floor, cipher = map(_median, (backup_times, verify_times, floor_times, cipher_times))
    print(
        f"  dump {megabytes:8.1f} MiB, file {file_bytes / MIB:.1f} MiB "
        f"(overhead {100 * (file_bytes - dump_bytes) / dump_bytes:.3f} %)"
    )
    print(f"  {'dump without encryption (floor)':<36} {floor:7.2f} s  {floor_bytes / MIB / floor:8.1f} MB/s")
    print(
        f"  {'backup_create (dump + encryption)':<36} {backup:7.2f} s  {megabytes / backup:8.1f} MB/s   "
        f"ratio to floor {backup / floor:.2f}x"
    )
    print(f"  {'AES-256-GCM chunks + SHA-256 (memory)':<36} {cipher:7.2f} s  {megabytes / cipher:8.1f} MB/s")
    print(f"  {'backup_verify (decrypt+restore+check)':<36} {verify:7.2f} s  {megabytes / verify:8.1f} MB/s")
    print(f"  peak RSS growth over all backups and verifications: {(rss_backup - rss_before) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
