"""Keep the memory torch frees on the CPU in the process, instead of giving it back each time.

A DrQ-v2 update at the demo's shapes allocates and frees about 150 MB of activations and
gradients, in blocks of up to 30 MB (60 MB at batch 256). glibc's default malloc gives the free
top of its heap back to the kernel once it passes twice its (self-adjusting) mmap threshold,
which a freed 30 MB block has raised only to 30 MB, so nearly all of it goes back after every
update and the next update faults it in again page by page: 20,000 to 37,000 page faults and a
quarter of every update spent in the kernel (``make bench-allocator``). A fixed mmap threshold
above the largest such block and a high trim threshold keep that memory in the process for the
next update; the peak memory the update needs stays the same, since the same blocks are used
again. PyTorch's CPU performance guide gets this by preloading jemalloc or tcmalloc; these two
settings need nothing beside glibc, and elsewhere (another C library, another OS) nothing is
changed.

The price: memory freed after a rare large allocation (a checkpoint that copies the whole
replay) stays with the process, above all in a thread's own malloc arena, which is never
trimmed at this threshold. ``release_freed_memory`` gives it back; the learner calls it after
such a checkpoint.
"""
import ctypes
import logging

_LOG = logging.getLogger(__name__)

# mallopt's parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Above an update's largest block: 30 MB at batch 128, 60 MB at 256 (up to about batch 540).
MMAP_THRESHOLD_BYTES = 128 << 20
# What glibc before 2.35 accepts at most (HEAP_MAX_SIZE / 2 on 64 bits): batch 128 only.
_OLD_GLIBC_MMAP_MAX = 32 << 20
# Free memory at the top of the heap kept before any is given back.
TRIM_THRESHOLD_BYTES = 512 << 20


def _libc_function(name: str):
    """The C library's function ``name`` in this process, or None (not glibc, not POSIX)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD_BYTES,
                      trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Set glibc malloc's trim and mmap thresholds for this process; True when both are set.

    Call it once, early, in a process that trains or runs torch networks on the CPU (the
    learner and reward nodes). Setting either threshold turns glibc's own adjustment of both
    off. A glibc older than 2.35 refuses an mmap threshold above 32 MB: that is set instead.
    """
    mallopt = _libc_function('mallopt')
    if mallopt is None:
        _LOG.debug('no mallopt in this process: malloc settings left as they are')
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    trimmed = mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    mapped = (mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
              or mallopt(_M_MMAP_THRESHOLD, min(int(mmap_threshold), _OLD_GLIBC_MMAP_MAX)) == 1)
    if not (trimmed and mapped):
        _LOG.warning('mallopt refused the trim threshold %d or the mmap threshold %d: torch '
                     'on the CPU pays for page faults', trim_threshold, mmap_threshold)
    return trimmed and mapped


def release_freed_memory() -> bool:
    """Give the memory freed so far back to the system, from every malloc arena.

    For after a rare large allocation; the next update faults in what it needs again (about
    one update's worth of page faults). True when glibc gave some back.
    """
    malloc_trim = _libc_function('malloc_trim')
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = (ctypes.c_size_t,)
    malloc_trim.restype = ctypes.c_int
    return malloc_trim(0) == 1
