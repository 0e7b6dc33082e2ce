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

A request refused for its size has still been taken in whole by grpc (up to 4 MiB),
in pieces its threads allocate from several glibc arenas, which keep them when freed:
a flood of 100 oversized Logins left the server at 262-412 MiB instead of 70. After
such a refusal ``trim_soon`` gives that back (malloc_trim), once per burst: the rest
went back to 72-75 MiB (bench/auth_flood.py).
"""

from __future__ import annotations

import asyncio
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


# A burst of refusals is trimmed once, this long after the first of them.
TRIM_DELAY_SECONDS = 0.5
_trim_scheduled = False


def trim_soon() -> None:
    """Returns the memory glibc keeps after freeing to the system, shortly (once per burst)."""
    global _trim_scheduled
    if not _trim_scheduled:
        _trim_scheduled = True
        asyncio.get_running_loop().call_later(TRIM_DELAY_SECONDS, trim)


def trim() -> None:
    """glibc's malloc_trim(0): freed heap memory of every arena back to the system."""
    global _trim_scheduled
    _trim_scheduled = False
    name = ctypes.util.find_library("c")
    try:
        malloc_trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        malloc_trim = None  # not glibc
    if malloc_trim is not None:
        malloc_trim(0)
