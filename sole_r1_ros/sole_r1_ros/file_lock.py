"""One process at a time on something, by an flock on a file the kernel lets go at its end."""
import fcntl
import os
from pathlib import Path
from typing import TextIO


def try_lock(path: str | os.PathLike, owner: str) -> TextIO | str:
    """Hold an exclusive lock on ``path``: the open file (keep it open), or who holds it.

    The lock lasts while the returned file stays open: closing it, or the process ending,
    a kill included, releases it, so a crashed holder never blocks the next. ``owner`` is
    written into the file for the next one's message.
    """
    for _ in range(3):
        handle = open(Path(path), 'a+', encoding='utf-8')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or 'another process'
            handle.close()
            return holder
        if _still_named(path, handle):
            break
        handle.close()   # unlocked and removed by its holder as we opened it: again
    else:
        return 'another process (the lock file keeps changing)'
    handle.seek(0)
    handle.truncate()
    handle.write(owner)
    handle.flush()
    return handle


def _still_named(path: str | os.PathLike, handle: TextIO) -> bool:
    """Whether ``path`` still names the file ``handle`` locked (``release`` removes it)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def release(path: str | os.PathLike, handle: TextIO) -> None:
    """Let go of a lock ``try_lock`` gave, removing its file.

    Each run directory left one in /tmp for ever otherwise. The next ``try_lock`` checks that
    it locked the file the path still names, so a removal as it opens the old one is safe.
    """
    try:
        if _still_named(path, handle):
            os.unlink(path)
    finally:
        handle.close()
