"""The production settings with what ``bench/detection_backlog_bench.py`` varies (bench only).

``BENCH_DETECTION_BATCHING`` (true/false) sets ``MONITORING_DETECTION_BATCHING``: false is the
path before issue #17 (every read handed off alone, its window re-aggregated).
``BENCH_BULK_READ_FLOOR`` sets ``MONITORING_BULK_READ_MIN_EVENTS``, so a probe user's short
burst is a bulk read whose time to detection can be measured while the load runs.
"""

import os

from config.settings.production import *  # noqa: F403

MONITORING_DETECTION_BATCHING = os.environ.get("BENCH_DETECTION_BATCHING", "true") == "true"
MONITORING_BULK_READ_MIN_EVENTS = int(os.environ.get("BENCH_BULK_READ_FLOOR", "20"))
