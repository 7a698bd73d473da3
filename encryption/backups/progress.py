"""Progress of a backup or a verification: the callback the services call, and the commands' bar."""

from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm

# Called as progress(stage, bytes_done_since_last_call, total_bytes_or_None).
ProgressCallback = Callable[[str, int, "int | None"], None]

STAGE_NAMES = {
    "encrypt": "encrypting",
    "dump": "dumping",
    "decrypt": "decrypting",
    "authenticate": "authenticating",
    "restore": "restoring",
    "check": "checking",
}


def emit(progress: ProgressCallback | None, stage: str, done: int, total: int | None) -> None:
    """Report to ``progress`` if the caller gave one."""
    if progress is not None:
        progress(stage, done, total)


class ProgressBar:
    """One bar per stage: ``update(stage, bytes_done, total_or_None)`` as the services call it."""

    def __init__(self, stream, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def update(self, stage: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            if stage == "check":  # quick queries on the restored copy: no byte count to show
                return
            self.bar = tqdm(
                total=total,
                desc=STAGE_NAMES.get(stage, stage),
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=getattr(self.stream, "_out", self.stream),
                dynamic_ncols=True,
            )
        if self.bar is not None and done:
            if total and self.bar.total != total:
                self.bar.total = total
            self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
