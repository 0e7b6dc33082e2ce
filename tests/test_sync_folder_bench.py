"""bench/client_sync.py still runs and prints its machine-readable line (figures not judged
here, except what holds at any speed: a no-change re-sync hashes nothing and reads far
less than a listing)."""

from __future__ import annotations

from .test_benchmarks import result_line


def test_client_sync_benchmark_prints_its_result_line():
    figures = result_line("bench/client_sync.py", "--files", "40", "--watch-repeat", "1")
    assert set(figures) == {"first_files_per_s", "resync_s", "resync_bytes", "getsync_bytes",
                            "resync_hashed", "watch_delay_s"}
    assert figures["resync_hashed"] == 0
    assert figures["resync_bytes"] * 100 < figures["getsync_bytes"]
