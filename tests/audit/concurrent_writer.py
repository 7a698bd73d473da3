"""A writer process for the concurrency test: ``python -m tests.audit.concurrent_writer LABEL COUNT START_AT``.

Records COUNT events in small transactions — some holding their transaction open a while, some
recording two events, every fifth rolled back — starting at the wall-clock time START_AT so all
writers overlap. Prints the number of events it committed.
"""

from __future__ import annotations

import os
import random
import sys
import time


def main() -> int:
    label, count, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction

    settings.AUDIT_STRICT_CONTEXT = False  # the contexts are the test's markers (writer, n, part)

    import audit

    class Rollback(Exception):
        pass

    generator = random.Random(label)
    committed = 0
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    for number in range(count):
        try:
            with transaction.atomic():
                audit.record(action=audit.Action.MEMORY_READ, context={"writer": label, "n": number, "part": 0})
                if number % 3 == 0:
                    time.sleep(generator.uniform(0, 0.01))  # hold the transaction open while others commit
                if number % 4 == 0:
                    audit.record(action=audit.Action.MEMORY_LIST, context={"writer": label, "n": number, "part": 1})
                if number % 5 == 4:
                    raise Rollback
            committed += 2 if number % 4 == 0 else 1
        except Rollback:
            pass
    print(committed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
