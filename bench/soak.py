"""Soak: the load of tests/test_load.py for a set time, watching the server's memory.

Starts `musicsync serve` (its own temp folder; --layout split: `serve auth`,
`serve file` and `serve sync` on one DATA_DIR) and runs bench/load.py's
devices against it on 127.0.0.1: each device uploads, downloads, deletes,
Diffs and lists, one call after another, until --seconds pass (or each has
made --max-steps calls). Every --sample seconds it prints the server's RSS
(VmRSS of /proc/<pid>/status; the sum over the processes when split). At the
end every device syncs once more and the server is checked against what it
acknowledged (nothing lost, duplicated or shown to another user); then it
prints calls/s, p50/p99 per RPC and the errors by status.

    python bench/soak.py [--seconds 120] [--devices 20] [--users 4] [--layout one|split]

rss_start is the RSS after the warm-up: the first minute, or the first quarter
of the run if that is shorter. Target: RSS at the end at most 20% above
rss_start, and no errors (no quota is set, so no documented limit applies;
a NOT_FOUND for a song another device deleted meanwhile is a correct answer,
counted apart). Its last line is machine-readable:
RESULT calls_per_s=<n> errors=<n> rss_start_mib=<n> rss_end_mib=<n> rss_peak_mib=<n>
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import Addresses, Load, Stats, percentile  # noqa: E402 - sibling
from transfer import KEY, Server, free_port  # noqa: E402 - sibling

WARM_UP = 60.0
RSS_GROWTH_LIMIT = 0.20
# After --seconds, the final sync and checks get this long before the bench gives up.
CHECK_SECONDS = 120.0


def start_servers(folder: str, layout: str) -> tuple[list[Server], Addresses]:
    """The server processes (not yet ready) and where each service answers."""
    ports = {service: free_port() for service in ("auth", "file", "sync")}
    env = {"SECURITY_KEY": KEY, "SECRET_KEY": secrets.token_urlsafe(32), "LOG_LEVEL": "WARNING"}
    common = [sys.executable, "-m", "musicsync.cli", "serve"]
    flags = ["--data-dir", folder, "--host", "127.0.0.1",
             *(f"--{service}-port={port}" for service, port in ports.items())]
    address = {service: f"127.0.0.1:{port}" for service, port in ports.items()}
    if layout == "one":
        return [Server([*common, *flags], env, ports["auth"])], Addresses(**address)
    return ([Server([*common, service, *flags], env, ports[service])
             for service in ("auth", "file", "sync")], Addresses(**address))


async def sample_rss(servers: list[Server], every: float, samples: list[tuple[float, float]],
                     started: float) -> None:
    """Appends (seconds since start, RSS MiB summed over the servers) every ``every`` s."""
    while True:
        rss = sum(server.rss_mib() for server in servers)
        at = time.monotonic() - started
        samples.append((at, rss))
        detail = (" (" + " + ".join(f"{s.rss_mib():.1f}" for s in servers) + ")"
                  if len(servers) > 1 else "")
        print(f"  t={at:6.1f} s  server RSS {rss:7.1f} MiB{detail}", flush=True)
        await asyncio.sleep(every)


async def main() -> None:
    parser = argparse.ArgumentParser(description="Soak test: many devices for a set time")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--layout", choices=("one", "split"), default="one")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--max-steps", type=int, default=100_000, help="calls per device at most")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    if options.seconds <= 0 or options.devices < options.users or options.users < 1:
        parser.error("--seconds must be positive and --devices at least --users (at least 1)")

    with tempfile.TemporaryDirectory(prefix="musicsync-soak-") as folder:
        servers, addresses = start_servers(folder, options.layout)
        load = Load(addresses, users=options.users, devices=options.devices, seed=options.seed,
                    strict=False)
        try:
            for server in servers:  # in order: the first creates the database
                await server.wait_ready()
            await load.start(KEY)
            print(f"{options.devices} devices of {options.users} users, layout "
                  f"{options.layout}, {options.seconds:.0f} s", flush=True)
            samples: list[tuple[float, float]] = []
            started = time.monotonic()
            sampler = asyncio.create_task(sample_rss(servers, options.sample, samples, started))
            try:
                async with asyncio.timeout(options.seconds + CHECK_SECONDS):
                    await load.run(options.max_steps, options.seconds)
                    elapsed = time.monotonic() - started
                    stats, load.stats = load.stats, Stats()  # the checks' calls apart
                    problems = await load.check()
            finally:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            end_rss = sum(server.rss_mib() for server in servers)
        finally:
            await load.close()
            logs = []
            for server in servers:
                server.log.seek(0)
                logs.append(server.log.read().decode(errors="replace"))
                server.stop()

    samples.append((elapsed, end_rss))
    warm_up = min(WARM_UP, options.seconds / 4)
    rss_start = next(rss for at, rss in samples if at >= warm_up)
    rss_peak = max(rss for _, rss in samples)
    errors = sum(stats.errors.values()) + sum(load.stats.errors.values()) + len(problems)
    calls = stats.calls
    calls_per_s = calls / elapsed

    print(f"{calls} calls in {elapsed:.1f} s (the checks after it not counted): "
          f"{calls_per_s:.1f} calls/s")
    print(f"{'RPC':<10} {'calls':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for rpc, values in sorted(stats.latencies.items()):
        print(f"{rpc:<10} {len(values):>7} {statistics.median(values) * 1000:>8.1f} "
              f"{percentile(values, 0.99) * 1000:>8.1f}")
    print(f"songs deleted by another device meanwhile (NOT_FOUND, correct): {stats.gone}")
    if stats.errors or load.stats.errors:
        for (rpc, status), count in sorted((stats.errors + load.stats.errors).items()):
            print(f"error {rpc} {status}: {count}")
    else:
        print("errors by status: none")
    for problem in problems[:20]:
        print(f"problem: {problem}")
    print(f"checks after the run: {len(problems)} problems (lost, duplicated, leaked, "
          "not converged)")
    tracebacks = sum(log.count("Traceback") for log in logs)
    print(f"server log: {tracebacks} tracebacks")
    growth = (end_rss - rss_start) / rss_start
    met = growth <= RSS_GROWTH_LIMIT and errors == 0
    print(f"RSS after {warm_up:.0f} s warm-up {rss_start:.1f} MiB, at the end {end_rss:.1f} MiB "
          f"({growth:+.1%}), peak {rss_peak:.1f} MiB")
    print(f"target (end RSS within {RSS_GROWTH_LIMIT:.0%} of the warm-up level, 0 errors): "
          f"{'met' if met else 'NOT met'}")
    print(f"RESULT calls_per_s={calls_per_s:.1f} errors={errors} rss_start_mib={rss_start:.1f} "
          f"rss_end_mib={end_rss:.1f} rss_peak_mib={rss_peak:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
