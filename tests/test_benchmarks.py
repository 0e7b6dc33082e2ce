"""The benchmarks still run and print their machine-readable line (figures not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def result_line(*command: str) -> dict[str, float]:
    run = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT "), run.stdout
    return {key: float(value) for key, value in
            (pair.split("=") for pair in last.removeprefix("RESULT ").split())}


def test_diff_benchmark_prints_its_result_line():
    figures = result_line("bench/diff.py", "--songs", "3000", "--repeat", "2")
    assert set(figures) == {"diff_p50_ms", "diff_p95_ms", "diff_bytes", "getsync_bytes",
                            "changes_ms", "watch_ms"}
    # 2,900 of the device's hashes go up as 32 raw bytes; GetSync would send them as hex.
    assert figures["getsync_bytes"] > figures["diff_bytes"] > 3000 * 32


def test_transfer_benchmark_prints_its_result_line():
    figures = result_line("bench/transfer.py", "--size-mb", "4", "--big-mb", "8", "--repeat", "1")
    assert set(figures) == {"up64k", "up1m", "down64k", "down1m", "rss_growth_mib",
                            "base_rss_growth_mib"}
    assert all(figures[key] > 0 for key in ("up64k", "up1m", "down64k", "down1m"))


def test_diff_memory_benchmark_prints_its_result_line():
    figures = result_line("bench/diff_memory.py", "--rounds", "1")
    assert set(figures) == {"peak_growth_mib", "rss_start_mib", "rss_end_mib", "end_ratio",
                            "max_diff_ms"}
    assert figures["rss_end_mib"] > 0 and figures["max_diff_ms"] > 0


def test_soak_benchmark_prints_its_result_line():
    figures = result_line("bench/soak.py", "--seconds", "3", "--sample", "1", "--devices", "4",
                          "--users", "2")
    assert set(figures) == {"calls_per_s", "errors", "rss_start_mib", "rss_end_mib",
                            "rss_peak_mib"}
    assert figures["calls_per_s"] > 0 and figures["rss_peak_mib"] > 0


def test_small_uploads_benchmark_prints_its_result_line():
    figures = result_line("bench/small_uploads.py", "--uploads", "40", "--streams", "4")
    assert set(figures) == {"uploads_per_s", "p50_ms", "cpu_ms_per_upload",
                            "worker_cpu_ms_per_upload", "ratio", "resumable_uploads_per_s",
                            "resumable_p50_ms", "resumable_cpu_ms_per_upload"}
    assert figures["uploads_per_s"] > 0 and figures["cpu_ms_per_upload"] > 0
    assert figures["resumable_uploads_per_s"] > 0


def test_library_benchmark_prints_its_result_line():
    figures = result_line("bench/library.py", "--songs", "300", "--repeat", "3")
    assert set(figures) == {"albums_ms", "search_ms", "stats_ms", "playlist_edit_ms",
                            "plays_batch_ms", "art_cached_ms"}
    assert figures["albums_ms"] > 0 and figures["search_ms"] > 0 and figures["stats_ms"] > 0
