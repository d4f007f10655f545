"""A tiny metrics logger: TensorBoard event files plus a JSONL copy for plotting."""
import json
import logging
import math
import os
from pathlib import Path
import threading
import time
from typing import Any, Mapping

logger = logging.getLogger(__name__)


class MetricsLogger:
    """Write scalars (returns, losses, labelled share, reward latency, success) by step.

    Each ``log`` call adds one TensorBoard scalar per metric under ``<prefix>/<name>`` and one
    JSON line ``{"step", "time", "prefix", <name>: value, ...}`` to ``metrics.jsonl``. Safe to
    call from the actor and the learner threads.
    """

    def __init__(self, log_dir: str | os.PathLike, tensorboard: bool = True) -> None:
        """Create ``log_dir``; ``tensorboard=False`` writes the JSONL file only (no torch)."""
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # events reach the disk within 10 s (the default 120 s: a killed run lost them)
            self._writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=10)
        # Each line on disk when written, so a killed learner loses none (block-buffered, a
        # SIGKILL lost up to 8 KB, about 80 rewards); kept while a full disk refuses them.
        self._jsonl = LineFile(self.log_dir / 'metrics.jsonl')
        self._warned = -1e9   # when a full disk was last said
        self._lock = threading.Lock()

    def log(self, step: int, metrics: Mapping[str, Any], prefix: str = 'train') -> None:
        """Record numeric ``metrics`` at ``step``; non-numeric, non-finite values are skipped."""
        values = {name: float(value) for name, value in metrics.items()
                  if isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value)}
        values.update({name: float(value) for name, value in metrics.items()
                       if isinstance(value, bool)})
        record = {'step': int(step), 'time': time.time(), 'prefix': prefix, **values}
        with self._lock:
            if self._writer is not None:
                try:
                    for name, value in values.items():
                        self._writer.add_scalar(f'{prefix}/{name}', value, int(step))
                except Exception as exc:   # its writer thread died (a full disk), for good
                    self._drop_tensorboard(exc)
            if not self._jsonl.write(json.dumps(record) + '\n') and (
                    time.monotonic() - self._warned > 10.0):
                self._warned = time.monotonic()
                logger.warning('%s: %s; %d lines wait in memory until the disk takes them',
                               self._jsonl.path, self._jsonl.error, self._jsonl.waiting)

    def _drop_tensorboard(self, exc: Exception) -> None:
        """Stop writing TensorBoard events, which fail from now on, and say so once.

        TensorBoard's writer thread dies on its first error (ENOSPC) and every later call
        raises it again: the learner thread died of it, and each raise grew its traceback.
        """
        logger.error('TensorBoard events stopped (%s: %s); metrics go on in %s',
                     type(exc).__name__, exc, self._jsonl.path)
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except Exception:   # it is dead already
            pass

    def flush(self) -> None:
        """Push buffered scalars to disk."""
        with self._lock:
            if self._writer is not None:
                try:
                    self._writer.flush()
                except Exception as exc:
                    self._drop_tensorboard(exc)
            self._jsonl.retry()

    def close(self) -> None:
        """Flush and close both outputs."""
        with self._lock:
            if self._writer is not None:
                try:
                    self._writer.close()
                except Exception as exc:
                    logger.error('TensorBoard events not closed: %s', exc)
                self._writer = None
            self._jsonl.close()


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
        self._waiting = b'\n' if torn else b''
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
            self._waiting = self._waiting[written:]
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
