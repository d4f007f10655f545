"""Pair external and wrist frames by stamp, so every query shows both views at the same moment."""
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedFrame:
    """External frame with the wrist frame closest in time (None when there is no wrist view)."""

    stamp_ns: int
    external: np.ndarray
    wrist: np.ndarray | None
    header: object = None  # the external frame's message header, passed through untouched


class FramePairer:
    """Match each external frame with the nearest wrist frame, if within ``max_skew_ns``.

    An external frame waits until a wrist frame of its moment or later has come, so the
    nearest is known; a wrist frame stays after it is used, as it may be the next external
    frame's nearest too. Used at once and let go, one lost frame had every later pair of the
    episode one frame apart (30 Hz cameras, a 50 ms skew). External frames wait at most
    ``buffer`` deep, wrist frames four times that (an external view may wait for its robot
    mask); an external frame with no wrist partner is dropped, or pushed out of the buffer
    while the wrist camera is silent; ``dropped`` counts both. With ``use_wrist=False`` every
    external frame pairs immediately.
    """

    def __init__(self, use_wrist: bool, max_skew_ns: int = 20_000_000, buffer: int = 8) -> None:
        if max_skew_ns < 0 or buffer < 1:
            raise ValueError('max_skew_ns must be >= 0 and buffer >= 1')
        self._use_wrist = use_wrist
        self._max_skew_ns = max_skew_ns
        self._external: deque = deque(maxlen=buffer)
        self._wrist: deque = deque(maxlen=4 * buffer)
        self.dropped = 0

    def add_external(self, stamp_ns: int, frame: np.ndarray, header=None) -> list[PairedFrame]:
        if not self._use_wrist:
            return [PairedFrame(stamp_ns, frame, None, header)]
        if len(self._external) == self._external.maxlen:
            self.dropped += 1   # pushed out unpaired: the wrist camera is silent or late
        self._external.append((stamp_ns, frame, header))
        return self._match()

    def add_wrist(self, stamp_ns: int, frame: np.ndarray) -> list[PairedFrame]:
        if not self._use_wrist:
            return []
        self._wrist.append((stamp_ns, frame))
        return self._match()

    def clear(self) -> None:
        self._external.clear()
        self._wrist.clear()

    def _match(self) -> list[PairedFrame]:
        pairs = []
        while self._external and self._wrist:
            stamp, frame, header = self._external[0]
            if self._wrist[-1][0] < stamp:
                break  # a nearer wrist frame may still come: wait for one of this moment
            best = min(self._wrist, key=lambda item: abs(item[0] - stamp))
            self._external.popleft()
            if abs(best[0] - stamp) <= self._max_skew_ns:
                pairs.append(PairedFrame(stamp, frame, best[1], header))
            else:
                self.dropped += 1   # none near it came, nor will
            # wrist frames before the newest one up to this moment are no later frame's nearest
            while len(self._wrist) >= 2 and self._wrist[1][0] <= stamp:
                self._wrist.popleft()
        return pairs
