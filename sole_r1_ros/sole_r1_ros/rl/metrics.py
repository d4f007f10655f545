"""A tiny metrics logger: TensorBoard event files plus a JSONL copy for plotting."""
import json
import logging
import math
import os
from pathlib import Path
import threading
import time
from typing import Any, Mapping

from sole_r1_ros.line_file import LineFile

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
