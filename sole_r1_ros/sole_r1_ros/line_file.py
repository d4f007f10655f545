"""Files of JSON lines that lose nothing: to a kill, or to a disk that is full for a while."""
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class LineFile:
    """A text file lines are appended to, none lost while its disk is full.

    Each line goes out with one ``os.write`` on an append-only descriptor, so it is on disk
    (in the page cache) when written and a killed process loses none. What the disk refuses
    (ENOSPC, a short write) waits in memory, in order, and goes out with the next line or
    ``retry``: a full disk stopped the run monitor's thread, and the run with it. A killed
    run's half last line is ended first, so the next line starts its own. ``error`` says why
    the last write failed (None once everything is written).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        torn = (self.path.exists() and self.path.stat().st_size > 0
                and not ends_with_newline(self.path))
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # a bytearray: appended to and cut from the front in place, where bytes were copied
        # whole by each line a full disk made wait (quadratic over a long outage)
        self._waiting = bytearray(b'\n' if torn else b'')
        self.error: str | None = None

    @property
    def waiting(self) -> int:
        """Lines (or their ends) waiting for the disk."""
        return self._waiting.count(b'\n')

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, text: str) -> bool:
        """Append ``text`` (whole lines); False while the disk refuses it (it waits)."""
        self._waiting += text.encode('utf-8')
        return self.retry()

    def retry(self) -> bool:
        """Write what waits; True when nothing does."""
        while self._waiting and self._fd is not None:
            try:
                written = os.write(self._fd, self._waiting)
            except OSError as exc:
                self.error = f'{type(exc).__name__}: {exc}'
                return False
            del self._waiting[:written]
        self.error = None
        return not self._waiting

    def close(self) -> None:
        """Write what waits, if the disk takes it, and close."""
        if self._fd is not None:
            if not self.retry():
                logger.error('%s: %d lines lost at close (%s)', self.path, self.waiting,
                             self.error)
            os.close(self._fd)
            self._fd = None


def ends_with_newline(path: Path) -> bool:
    """Whether a non-empty file's last byte ends a line (a killed writer leaves half a line)."""
    with open(path, 'rb') as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b'\n'
