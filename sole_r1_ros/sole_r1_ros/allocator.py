"""Keep the memory torch frees on the CPU in the process, instead of giving it back each time.

A DrQ-v2 update at the demo's shapes allocates and frees about 150 MB of activations and
gradients. With glibc's default malloc, blocks that large are mapped for each allocation and
unmapped when freed, and the next update faults the same memory in again page by page: 20,000
to 37,000 page faults and a quarter of every update spent in the kernel
(``make bench-allocator``). A fixed mmap threshold above the largest such block and a high trim
threshold keep that memory in the process's heap for the next update; the peak memory the
update needs stays the same, since the same blocks are used again. PyTorch's CPU performance
guide gets this by preloading jemalloc or tcmalloc; these two settings need nothing beside
glibc, and elsewhere (another C library, another OS) nothing is changed.
"""
import ctypes
import logging

_LOG = logging.getLogger(__name__)

# mallopt's parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Above the largest block of an update: a 4-layer conv encoder's activations at batch 128 x 2
# views are 32 MB in float32 (64 MB at batch 256 is mapped anew each time, as before).
MMAP_THRESHOLD_BYTES = 64 << 20
# Free memory at the top of the heap kept before any is given back.
TRIM_THRESHOLD_BYTES = 512 << 20


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD_BYTES,
                      trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Set glibc malloc's mmap and trim thresholds for this process; True when both are set.

    Call it once, early, in a process that trains or runs torch networks on the CPU (the
    learner and reward nodes). Setting either threshold turns glibc's own adjustment of both
    off, so they are set together.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # not glibc: its allocator is left as it is
        _LOG.debug('no mallopt in this process: malloc settings left as they are')
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = (mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
            and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1)
    if not done:
        _LOG.warning('mallopt refused the mmap threshold %d or the trim threshold %d: torch '
                     'on the CPU pays for page faults', mmap_threshold, trim_threshold)
    return done
