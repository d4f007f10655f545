"""Join one camera's frames with the robot's masks of them, so each frame is erased with its own.

A self-filter (or the simulator's ``publish_robot_masks``) publishes one mask per picture, with
the picture's stamp, on its own topic: the two streams arrive in stamp order but interleaved in
any way. A frame waits for the mask of its stamp, up to ``wait_s`` of newer frames (at most
``buffer`` frames); once a newer mask has come, no mask of an older frame will, and that frame
is dropped and counted. The wait is in time, not frames: a self-filter that waits for joint
states and renders takes 100-200 ms, which 8 frames of a 60 Hz camera (133 ms) did not cover.
"""
from collections import deque

import numpy as np


class MaskJoin:
    """Pair frames and masks of the same stamp (exactly: the mask is made from the frame)."""

    def __init__(self, buffer: int = 32, wait_s: float = 0.5) -> None:
        if buffer < 1:
            raise ValueError(f'buffer must be >= 1, got {buffer}')
        self._frames: deque = deque()
        self._masks: deque = deque()
        self._buffer = buffer
        self._wait_ns = int(wait_s * 1e9)
        self.dropped = 0
        '''Frames that never got their mask (dropped, never queried).'''
        self.mask_lag_ns = 0
        '''The most a mask came after the newest frame's stamp (how late masks are).'''

    def add_frame(self, stamp_ns: int, frame: np.ndarray) -> list[tuple[int, np.ndarray,
                                                                        np.ndarray]]:
        """Queue a frame; return every (stamp, frame, mask) that is now complete."""
        self._frames.append((stamp_ns, frame))
        while len(self._frames) > self._buffer or (
                self._frames[-1][0] - self._frames[0][0] > self._wait_ns):
            self._frames.popleft()
            self.dropped += 1
        return self._match()

    def add_mask(self, stamp_ns: int, mask: np.ndarray) -> list[tuple[int, np.ndarray,
                                                                      np.ndarray]]:
        """Queue a mask; return every (stamp, frame, mask) that is now complete."""
        if self._frames:
            self.mask_lag_ns = max(self.mask_lag_ns, self._frames[-1][0] - stamp_ns)
        self._masks.append((stamp_ns, mask))
        if len(self._masks) > self._buffer:
            self._masks.popleft()
        return self._match()

    def clear(self) -> None:
        self._frames.clear()
        self._masks.clear()

    def _match(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        joined = []
        while self._frames and self._masks:
            stamp, frame = self._frames[0]
            while self._masks and self._masks[0][0] < stamp:
                self._masks.popleft()   # its frame came and went, or never came
            if not self._masks:
                break
            if self._masks[0][0] == stamp:
                joined.append((stamp, frame, self._masks.popleft()[1]))
            else:
                self.dropped += 1   # a newer mask is here: this frame's will not come
            self._frames.popleft()
        return joined


def with_mask_channel(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The RGB ``frame`` with its robot mask as a 4th channel, robot 255, the rest 0.

    Any non-zero mask value is robot; a self-filter's 0/1 mask would otherwise be averaged
    away where the frame is shrunk to a tile (a 1 px arm edge left in the erased frame).

    Raises:
        ValueError: the mask is not the frame's size.
    """
    if mask.shape != frame.shape[:2]:
        raise ValueError(f'robot mask of {mask.shape[1]}x{mask.shape[0]} px for a '
                         f'{frame.shape[1]}x{frame.shape[0]} px picture')
    return np.dstack([frame, np.where(mask > 0, 255, 0).astype(np.uint8)])
