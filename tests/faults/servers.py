"""Servers a fault test can stop and start again on the same address."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

from tests.support.servers import free_port, wait_for_port


class RestartableRedis:
    """A private ``redis-server`` on a fixed loopback port that a test may stop and start again.

    The data are kept in memory only: a restart starts empty, as a broker lost with its host would.
    """

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs Debian's redis-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = tempfile.mkdtemp(prefix="ninaivalaigal-redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> RestartableRedis:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RestartableRedis:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()
