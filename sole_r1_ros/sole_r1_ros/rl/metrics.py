"""A tiny metrics logger: TensorBoard event files plus a JSONL copy for plotting."""
import json
import math
import os
from pathlib import Path
import threading
import time
from typing import Any, Mapping


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
        path = self.log_dir / 'metrics.jsonl'
        torn = path.exists() and path.stat().st_size > 0 and not ends_with_newline(path)
        # Line-buffered: each line is on disk when written, so a killed learner loses none
        # (block-buffered, a SIGKILL lost up to 8 KB, about 80 rewards).
        self._jsonl = open(path, 'a', encoding='utf-8', buffering=1)
        if torn:   # a killed run's half line: the next one starts on its own line
            self._jsonl.write('\n')
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
                for name, value in values.items():
                    self._writer.add_scalar(f'{prefix}/{name}', value, int(step))
            self._jsonl.write(json.dumps(record) + '\n')

    def flush(self) -> None:
        """Push buffered scalars to disk."""
        with self._lock:
            if self._writer is not None:
                self._writer.flush()
            self._jsonl.flush()

    def close(self) -> None:
        """Flush and close both outputs."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if not self._jsonl.closed:
                self._jsonl.close()


def ends_with_newline(path: Path) -> bool:
    """Whether a non-empty file's last byte ends a line (a killed writer leaves half a line)."""
    with open(path, 'rb') as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b'\n'
