"""Keeps the C allocator from handing block-sized buffers back to the kernel after every batch.

Why: reading and typing a file allocates and frees buffers of a block's size (megabytes: numpy masks and
positions, Arrow columns) several times per block, on several threads. glibc's malloc gives the top of a
heap back to the kernel as soon as more than 128 KiB lies free there, so the next block's buffers were
faulted in again page by page: 800,000 page faults and about 1.5 s of kernel time on a 10M-row JSON Lines
day. Keeping up to ``TRIM_THRESHOLD_BYTES`` free (and growing a heap ``TOP_PAD_BYTES`` at a time) cut that
to 120,000 faults. Memory stays bounded: what is kept is what the previous blocks used, a few dozen MiB.

Only glibc has ``mallopt``; elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

TRIM_THRESHOLD_BYTES = 256 << 20
TOP_PAD_BYTES = 64 << 20
_M_TRIM_THRESHOLD, _M_TOP_PAD = -1, -2  # glibc's malloc.h


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc's malloc for block-sized buffers, once per process; whether it could."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and bool(mallopt(_M_TOP_PAD, TOP_PAD_BYTES))
