"""The detection backlog benchmark's own promises (bench/detection_backlog_bench.py; the run is make bench-detection).

It reads its options right, refuses unknown modes with a clear error, computes percentiles by
nearest rank, and runs the platform as deployed: production settings, nothing eager, durable
PostgreSQL, and the one-by-one mode really turning batching off.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from bench import detection_backlog_bench as bench

PROJECT_DIR = Path(__file__).resolve().parent.parent


def test_modes_are_read_in_order_and_unknown_ones_refused():
    assert bench.parse_modes("batched, one-by-one") == ["batched", "one-by-one"]
    assert bench.parse_modes("one-by-one") == ["one-by-one"]
    with pytest.raises(ValueError, match="unknown modes: eager"):
        bench.parse_modes("batched,eager")
    with pytest.raises(ValueError, match=r"\(none\)"):
        bench.parse_modes(" , ")


def test_bad_options_exit_with_one_clear_line():
    result = subprocess.run(
        [sys.executable, "bench/detection_backlog_bench.py", "--modes", "fast"],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "unknown modes: fast" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(
        [sys.executable, "bench/detection_backlog_bench.py", "--duration", "0"],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "must be positive" in result.stderr


def test_percentiles_are_nearest_rank():
    samples = [float(value) for value in range(1, 21)]  # 1..20
    assert bench.percentile(samples, 0.95) == 19.0
    assert bench.percentile(samples, 0.5) == 10.0
    assert bench.percentile([3.0], 0.95) == 3.0


def test_the_summary_says_what_was_not_detected_and_not_drained():
    line = bench.summary_line("one-by-one", [], 6, 53000, 6000, 60.0, None)
    assert "no probe detected" in line and "(0 detected, 6 not)" in line and "not drained" in line
    assert "reads   100.0/s" in line and "backlog peak   53000" in line
    line = bench.summary_line("batched", [1.0, 2.0, 3.0], 0, 4, 6000, 60.0, 0.5)
    assert "p50    2.00 s" in line and "p95    3.00 s" in line and "drained after load    0.5 s" in line


@pytest.mark.parametrize(("flag", "batching"), [("true", True), ("false", False)])
def test_the_settings_are_production_with_batching_as_the_mode_says(monkeypatch, flag, batching):
    for name, value in {
        "BENCH_DETECTION_BATCHING": flag, "BENCH_BULK_READ_FLOOR": "25", "SECRET_KEY": "k" * 60,
        "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": "postgres://u:p@127.0.0.1:5432/x",
        "API_KEY_HASH_KEY": "h" * 60, "ENCRYPTION_KEY_PROVIDER": "environment",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CELERY_TASK_ALWAYS_EAGER", raising=False)
    try:
        module = importlib.import_module("bench.detection_settings")
        module = importlib.reload(module)
    except Exception as error:  # production settings refuse to load without every secret
        pytest.skip(f"production settings need more of the environment here: {type(error).__name__}")
    assert module.MONITORING_DETECTION_BATCHING is batching
    assert module.MONITORING_BULK_READ_MIN_EVENTS == 25
    assert not getattr(module, "CELERY_TASK_ALWAYS_EAGER", False)
    assert module.DEBUG is False


def test_the_one_by_one_mode_turns_batching_off_and_the_database_keeps_durability():
    assert bench.MODES == {"batched": "true", "one-by-one": "false"}
    source = Path(bench.__file__).read_text()
    for option in ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "ALWAYS_EAGER"):
        assert option not in source
    assert '"DJANGO_SETTINGS_MODULE": "bench.detection_settings"' in source


def test_kept_out_of_make_test_and_make_bench_with_its_own_target():
    assert "detection_*) continue" in (PROJECT_DIR / "scripts" / "run-benchmarks.sh").read_text()
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert "bench/detection_backlog_bench.py" in makefile.split("\nbench-detection:")[1].split("\n\n")[0]
