"""How late a camera's stamps are against the joint states': measured from a moving arm.

A camera driver that stamps a frame when it arrives, not when it was exposed, is late by its
transfer latency; a self-filter drawing the arm at the frame's stamp then draws it where it
will be, not where it was (``robot_mask_node.camera_delay_s``). Between two frames of a moving
arm the pixels that change are, mostly, where the arm left and where it came: the symmetric
difference of its two masks. The delay that makes the drawn masks' symmetric differences
agree best with the pixels that changed is the camera's delay. ROS-free: frames, stamps and
joint positions in, one number and its score curve out.
"""
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

# A pixel changed between two frames when its gray level moved by more than this (0-255):
# above sensor noise and JPEG ringing, below an arm against a table.
CHANGE_THRESHOLD = 12.0


@dataclass(frozen=True)
class DelayEstimate:
    """The best delay [s] and, per candidate delay, the agreement (IoU) it scored."""

    delay_s: float
    candidates_s: tuple[float, ...]
    agreement: tuple[float, ...]
    frame_pairs: int


class JointTrack:
    """Joint positions over time, read between samples by linear interpolation."""

    def __init__(self, stamps_s: Sequence[float], positions: Sequence[Mapping[str, float]]
                 ) -> None:
        """Joint states in time order (the names of the first are kept).

        Raises:
            ValueError: fewer than two samples, stamps not increasing, or a sample missing a
                joint of the first.
        """
        if len(stamps_s) < 2 or len(stamps_s) != len(positions):
            raise ValueError(f'a joint track needs two or more stamped samples, got '
                             f'{len(stamps_s)} stamps and {len(positions)} positions')
        self.stamps_s = np.asarray(stamps_s, dtype=np.float64)
        if np.any(np.diff(self.stamps_s) <= 0):
            raise ValueError('joint state stamps must increase')
        self.names = tuple(positions[0])
        try:
            self.values = np.array([[float(p[n]) for n in self.names] for p in positions])
        except KeyError as exc:
            raise ValueError(f'a joint state lacks joint {exc.args[0]!r}') from exc

    def covers(self, time_s: float) -> bool:
        return bool(self.stamps_s[0] <= time_s <= self.stamps_s[-1])

    def at(self, time_s: float) -> dict[str, float]:
        """The joint positions at ``time_s`` (inside the track)."""
        return {name: float(np.interp(time_s, self.stamps_s, self.values[:, j]))
                for j, name in enumerate(self.names)}


def changed_pixels(before: np.ndarray, after: np.ndarray,
                   threshold: float = CHANGE_THRESHOLD) -> np.ndarray:
    """H×W bool: where the gray level of two RGB frames differs by more than ``threshold``."""
    return np.abs(before.astype(np.float32).mean(axis=2)
                  - after.astype(np.float32).mean(axis=2)) > threshold


def estimate_camera_delay(frames: Sequence[np.ndarray], frame_stamps_s: Sequence[float],
                          joints: JointTrack,
                          draw_mask: Callable[[Mapping[str, float]], np.ndarray],
                          candidates_s: Sequence[float]) -> DelayEstimate:
    """The candidate delay whose drawn arm motion agrees best with the frames' changes.

    For each candidate d, frame k is drawn at the joints of its stamp minus d; the agreement
    is the IoU, pooled over consecutive frame pairs, of the changed pixels and the symmetric
    difference of the two masks. Frames whose stamp minus d leaves the joint track are
    skipped for every candidate (the same pairs are compared throughout).

    Args:
        draw_mask: joint positions -> H×W mask (nonzero on the robot), the frames' size.

    Raises:
        ValueError: no candidates, frames and stamps of different lengths, or no pair of
            frames inside the joint track for every candidate.
    """
    candidates = [float(c) for c in candidates_s]
    if not candidates:
        raise ValueError('no candidate delays to try')
    if len(frames) != len(frame_stamps_s):
        raise ValueError(f'{len(frames)} frames but {len(frame_stamps_s)} stamps')
    usable = {k for k, stamp in enumerate(frame_stamps_s)
              if all(joints.covers(stamp - d) for d in candidates)}
    pairs = sorted(k for k in usable if k - 1 in usable)
    if not pairs:
        raise ValueError('no two consecutive frames lie inside the joint states for every '
                         f'candidate delay ({min(candidates)} to {max(candidates)} s): record '
                         'the arm moving, with joint_states, and try a narrower range')
    changes = {k: changed_pixels(frames[k - 1], frames[k]) for k in pairs}
    agreement = []
    for delay in candidates:
        masks = {k: draw_mask(joints.at(frame_stamps_s[k] - delay)) > 0
                 for k in sorted({*pairs, *(k - 1 for k in pairs)})}
        both = either = 0
        for k in pairs:
            swept = masks[k] ^ masks[k - 1]
            both += int(np.count_nonzero(swept & changes[k]))
            either += int(np.count_nonzero(swept | changes[k]))
        agreement.append(both / either if either else 0.0)
    best = int(np.argmax(agreement))
    return DelayEstimate(candidates[best], tuple(candidates), tuple(agreement), len(pairs))
