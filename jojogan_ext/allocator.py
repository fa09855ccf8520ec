"""Reuse large CPU buffers while a long CPU job runs (glibc's allocator only; elsewhere a no-op).

glibc hands every allocation above its mmap threshold (at most 32 MiB) a fresh mapping and unmaps it when
freed, so each 128 MiB activation of a 1024 px generator is page-faulted and zeroed again at every layer
and every step: about a third of a CPU training iteration. While `large_buffers_reused()` is active the
mmap and trim thresholds are raised so freed buffers stay in the heap and are reused; on leaving they are
set back to what glibc's dynamic rule settles on and `malloc_trim` returns the free memory to the system.
"""

import contextlib
import ctypes
import ctypes.util
import platform
import threading
from collections.abc import Iterator

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers in glibc's malloc.h
RAISED = 2**31 - 1  # mallopt takes an int: buffers up to 2 GiB come from the heap and stay there
# on leaving: the values glibc's own dynamic rule reaches on 64-bit systems (mmap 32 MiB, trim twice that)
RESTORED = {M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 64 * 2**20}


class _Glibc:
    """The two glibc calls, reference-counted so overlapping jobs restore the threshold only once."""

    def __init__(self):
        self.lock, self.users = threading.Lock(), 0
        self.libc = None
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            with contextlib.suppress(OSError):
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
                    self.libc = libc

    def enter(self) -> None:
        with self.lock:
            self.users += 1
            if self.users == 1:
                for parameter in RESTORED:
                    self.libc.mallopt(parameter, ctypes.c_int(RAISED))

    def leave(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                for parameter, value in RESTORED.items():
                    self.libc.mallopt(parameter, ctypes.c_int(value))
                self.libc.malloc_trim(ctypes.c_size_t(0))


_GLIBC = _Glibc()


@contextlib.contextmanager
def large_buffers_reused(device: torch.device | str) -> Iterator[bool]:
    """Inside the block, large freed CPU buffers are reused instead of re-mapped; yields whether it applies."""
    if torch.device(device).type != "cpu" or _GLIBC.libc is None:
        yield False
        return
    _GLIBC.enter()
    try:
        yield True
    finally:
        _GLIBC.leave()
