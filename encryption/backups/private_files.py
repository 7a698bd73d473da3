"""Files and folders only this user can read: a dump, a scratch copy or a ``.pgpass`` file.

Decrypted scratch data (a verification's or a restore's copy of the database, a ``.pgpass``)
lives only in run folders under one private scratch root, ``ENCRYPTION_SCRATCH_DIR`` (default
``VAR_DIR/scratch``, mode 0700), never in the system's shared temporary folder. Each run holds an
exclusive lock on its folder's ``.owner.lock`` while it lives; a run killed with ``kill -9``
cannot remove its folder, so every backup, verification and restore first removes the folders
whose lock nobody holds (their owner died), and drops the scratch PostgreSQL database such a
folder names (``scratch-database``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from django.conf import settings

from encryption import conf

logger = logging.getLogger("encryption.backups")

OWNER_LOCK = ".owner.lock"
# The name of the scratch PostgreSQL database a run created (written before it is created).
SCRATCH_DATABASE_FILE = "scratch-database"
# A folder without a lock file is left alone this long: its run may be starting right now.
UNLOCKED_GRACE_SECONDS = 60


def scratch_root() -> Path:
    """The private folder of every run's scratch data: ``ENCRYPTION_SCRATCH_DIR`` or ``VAR_DIR/scratch``."""
    configured = conf.get("ENCRYPTION_SCRATCH_DIR") or ""
    return Path(configured) if configured else Path(settings.VAR_DIR) / "scratch"


def _private_root() -> Path:
    root = scratch_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (root.stat().st_mode & 0o777) != 0o700:
        os.chmod(root, 0o700)
    return root


@contextlib.contextmanager
def private_directory(prefix: str) -> Iterator[Path]:
    """A run folder only this user can enter (0700) under the scratch root, removed with everything in it.

    The run holds the folder's lock until it ends, so a later run can tell a dead run's
    leftovers (lock free) from a live one's (lock held).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=_private_root()))
    lock = None
    try:
        os.chmod(path, 0o700)
        lock = os.open(path / OWNER_LOCK, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(lock, f"{os.getpid()}\n".encode("ascii"))
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def _owner_alive(folder: Path) -> bool:
    lock_path = folder / OWNER_LOCK
    try:
        descriptor = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        # No lock yet: a run between creating its folder and its lock, or one that died there.
        try:
            return time.time() - folder.stat().st_mtime < UNLOCKED_GRACE_SECONDS
        except FileNotFoundError:
            return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def scratch_leftovers_remove(*, drop_database: Callable[[str], None] | None = None) -> list[str]:
    """Remove the run folders of dead runs (and the scratch databases they name); return their names.

    ``drop_database(name)`` drops a scratch PostgreSQL database; if it fails (the server is
    unreachable), the folder's decrypted files go but the folder and its database name stay,
    so the next run tries again.
    """
    root = scratch_root()
    if not root.is_dir():
        return []
    removed = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.is_symlink() or _owner_alive(folder):
            continue
        database_file = folder / SCRATCH_DATABASE_FILE
        keep_folder = False
        if database_file.exists():
            name = database_file.read_text(encoding="ascii", errors="replace").strip()
            try:
                if drop_database is None:
                    raise RuntimeError("no PostgreSQL server configured")
                drop_database(name)
            except Exception as error:
                keep_folder = True
                logger.warning(
                    "could not drop the scratch database %s of a dead backup run (%s); trying again next run",
                    name,
                    type(error).__name__,
                )
        if keep_folder:
            for child in folder.iterdir():
                if child.name not in (SCRATCH_DATABASE_FILE, OWNER_LOCK):
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
        logger.warning("removed the scratch folder of a backup run that died: %s", folder.name)
    return removed


def open_private(path: Path) -> IO[bytes]:
    """Create ``path`` with mode 0600 (and fail if it exists), opened for binary writing."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(descriptor, "wb")
