"""Files and folders only this user can read: a dump, a scratch copy or a ``.pgpass`` file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def private_directory(prefix: str) -> Iterator[Path]:
    """A temporary folder only this user can enter (0700), removed with everything in it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        os.chmod(path, 0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def open_private(path: Path) -> IO[bytes]:
    """Create ``path`` with mode 0600 (and fail if it exists), opened for binary writing."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(descriptor, "wb")
