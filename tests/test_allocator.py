"""The CPU buffer reuse around long jobs: freed large buffers are reused inside, memory is returned after."""

import platform
import resource

import pytest
import torch

from jojogan_ext.allocator import large_buffers_reused

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)
MIB = 2**20


def refill_faults(mib: int = 64) -> int:
    """Minor page faults taken by filling a buffer of `mib` MiB right after one twice as large was freed."""
    torch.ones(2 * mib * MIB // 4)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(mib * MIB // 4)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / MIB


PAGES = 64 * MIB // resource.getpagesize()


@glibc_only
def test_freed_buffers_are_reused_inside_and_returned_after():
    assert refill_faults() > PAGES // 2  # glibc unmaps a large buffer on free and maps fresh zeroed pages
    with large_buffers_reused("cpu") as active:
        assert active
        assert refill_faults() < PAGES // 100  # the freed buffer's pages are reused
        kept = resident_mib()
    assert resident_mib() < kept - 64  # the kept memory went back to the system
    assert refill_faults() > PAGES // 2  # and glibc's own behaviour is back


@glibc_only
def test_nested_uses_return_memory_only_when_the_last_one_leaves():
    with large_buffers_reused("cpu"):
        with large_buffers_reused(torch.device("cpu")):
            refill_faults()
            kept = resident_mib()
        assert refill_faults() < PAGES // 100
        assert resident_mib() > kept - 64
    assert resident_mib() < kept - 64


def test_other_devices_are_left_alone():
    with large_buffers_reused("cuda") as active:
        assert not active
