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
    handle = open(Path(path), 'a+', encoding='utf-8')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or 'another process'
        handle.close()
        return holder
    handle.seek(0)
    handle.truncate()
    handle.write(owner)
    handle.flush()
    return handle
