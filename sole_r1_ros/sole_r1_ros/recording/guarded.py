"""A bag that stops, closed and readable, before its disk is full, and goes on when there is room.

The checkpoints are the run; the bag is its largest writer (two 64-px cameras and their
rewards: about 8 GB an hour in simulation), so it is what fills the disk the checkpoints need.
At the first ENOSPC the bag stopped for good and no one was told. Here it stops when the
disk's free space falls under a reserve (``min_free_bytes``), closed so that it is whole
(``metadata.yaml`` written), or at a failed write; what comes while it is stopped is counted,
not kept; once the free space is back above twice the reserve it goes on in a new part, a
bag folder beside the first (``<bag>-part2``, ...). Each part is a bag of its own for
``score-bag``, so a new part begins with the last message of each ``carried`` topic (the
episode marks: the latched one came once, and the running episode's frames in the new part
had no episode to be scored in).
"""
import os
from pathlib import Path
import shutil
import time
from typing import Callable

from sole_r1_ros.recording.bag import BagWriter


class GuardedBag:
    """``BagWriter`` parts with a free-space reserve; not thread-safe (one executor thread)."""

    def __init__(self, path: str | os.PathLike, min_free_bytes: int,
                 free_bytes: Callable[[Path], int] | None = None,
                 check_every_s: float = 2.0,
                 carried: Callable[[str], bool] = lambda topic: False) -> None:
        """Open the first part.

        Args:
            path: the first part's bag folder; later parts go beside it.
            min_free_bytes: the free space the bag leaves its disk.
            free_bytes: the free space of the disk holding a folder (default: what the OS
                says); given in tests.
            check_every_s: how often ``tick`` looks at the free space.
            carried: the topics whose last message each new part begins with.
        """
        self._first = Path(path)
        self._min_free = int(min_free_bytes)
        self._free = free_bytes or (lambda folder: shutil.disk_usage(folder).free)
        self._check_every_s = check_every_s
        self._checked_s = -1e9
        self.parts: list[Path] = []
        self._closed_count = 0
        self.dropped = 0
        self.stopped = ''
        '''Why the bag is stopped; '' while it records.'''
        self._carried = carried
        self._last: dict[str, tuple[str, int, bytes]] = {}   # carried topic -> its last
        self._writer: BagWriter | None = None
        self._open()

    @property
    def count(self) -> int:
        """Messages written, in all parts."""
        return self._closed_count + (self._writer.count if self._writer is not None else 0)

    @property
    def path(self) -> Path:
        """The part being written (the last one while stopped)."""
        return self.parts[-1]

    def write(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """Write one message, or count it dropped while the bag is stopped."""
        if self._carried(topic):
            self._last[topic] = (msgtype, stamp_ns, data)
        if self._writer is None:
            self.dropped += 1
            return
        try:
            self._writer.write(topic, msgtype, stamp_ns, data)
        except OSError as exc:   # a full disk: the part is closed as it is on disk
            self.dropped += 1
            self._stop(f'a write failed ({exc})')

    def tick(self) -> None:
        """Flush when due, and stop or go on by the free space (call from a timer)."""
        now = time.monotonic()
        if now - self._checked_s >= self._check_every_s:
            self._checked_s = now
            free = self._free(self.path.parent)
            if self._writer is not None and free < self._min_free:
                self._stop(f'{free / 1e9:.2f} GB free on its disk, under the '
                           f'{self._min_free / 1e9:g} GB kept for checkpoints')
            elif self._writer is None and free >= 2 * self._min_free:
                self._open()
        if self._writer is not None:
            self._writer.flush_if_due()
            if self._writer.error is not None:
                self._stop(f'a write failed ({self._writer.error})')

    def close(self) -> None:
        """Finish the part being written; safe to call twice."""
        if self._writer is not None:
            self._closed_count += self._writer.count
            self._writer.close()
            self._writer = None

    def _stop(self, why: str) -> None:
        self.close()
        self.stopped = why

    def _open(self) -> None:
        number = len(self.parts) + 1
        path = self._first if number == 1 else self._first.with_name(
            f'{self._first.name}-part{number}')
        self._writer = BagWriter(path)
        self.parts.append(path)
        self.stopped = ''
        for topic, (msgtype, stamp_ns, data) in self._last.items():
            self.write(topic, msgtype, stamp_ns, data)
