"""The allocator setting that lets a server give back what its biggest calls used.

A maximal Diff passes some 20 MB of request messages through the allocator in
pieces of about 1.7 MB. glibc's threshold for serving a piece from its own
mapping (returned to the system when freed) starts at 128 KiB and rises to the
size of each mapped piece freed, so after the first few such pieces come from
its heaps, where freed memory stays with the process: measured with
bench/diff_memory.py, RSS grew from 78 to 132 MiB over 30 rounds of big and
rejected Diffs, though Python held none of it (malloc_trim did not help).
A fixed threshold of 1.5 MiB keeps those pieces mapped (RSS 71 -> 72 MiB over
the same rounds), while the 1 MiB blocks of downloads and uploads, freed and
reused thousands of times a second, still come from the heap as before (a
128 KiB threshold cost 64 KiB uploads a third of their speed).
Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 1536 * 1024
# glibc raised its trim threshold along with the mmap threshold (to twice it) while
# adapting; fixed, it no longer moves, so set it to where that rule puts it.
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def tune_allocator() -> None:
    """Fixes glibc's mmap and trim thresholds (once per process is enough)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return  # not glibc
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        log.debug("mallopt refused a threshold; memory is given back less eagerly")
