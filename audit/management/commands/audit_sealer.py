"""``manage.py audit_sealer``: the sealer process, chaining committed events until stopped."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_sealer_run


class Command(BaseCommand):
    help = (
        "Run the sealer process: chain committed audit events as they arrive, until SIGTERM or SIGINT. "
        "Run web processes with AUDIT_SEAL_MODE=periodic beside it, so no request process seals."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval",
            type=float,
            default=0.2,
            help="seconds between looks for new events (default 0.2; between 0.01 and 60)",
        )

    def handle(self, *args, interval: float, **options):
        if not 0.01 <= interval <= 60:
            raise CommandError(f"--interval must be between 0.01 and 60 seconds (got {interval:g}).")
        stop = threading.Event()

        def request_stop(signum, frame):
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, request_stop)
        self.stdout.write(f"Audit sealer started: looking for committed events every {interval:g} s.")
        self.stdout.flush()
        sealed = audit_sealer_run(interval=interval, should_stop=stop.is_set, sleep=stop.wait)
        self.stdout.write(f"Audit sealer stopped after sealing {sealed} event(s).")
