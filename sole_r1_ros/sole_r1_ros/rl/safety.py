"""Safety applied last, just before a command is published.

Limits, rate limits, a workspace box, a stale-observation watchdog, and the mapping from policy
outputs in [-1, 1] to commands.

Pure numpy, no torch and no ROS. Every function returns a new array and rejects NaN/inf and
wrong lengths with ``ValueError``; the order follows SERL's ``franka_env`` (clip the action, then
the target to the safety box), without its in-place edits.
"""
from dataclasses import dataclass
import time
from typing import Callable, Mapping, Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def _vector(name: str, values: ArrayLike, length: int | None = None) -> np.ndarray:
    """``values`` as a new 1-D float64 array; ValueError if not finite or not ``length`` long."""
    array = np.array(values, dtype=np.float64, copy=True)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f'{name} must be 1-D, got shape {array.shape}')
    if length is not None and array.size != length:
        raise ValueError(f'{name} must have {length} values, got {array.size}')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{name} must be finite, got {array}')
    return array


def _bound(name: str, bound: float | ArrayLike, length: int) -> np.ndarray:
    """Broadcast a scalar or per-element bound to ``length`` values."""
    array = np.array(bound, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(length, float(array))
    return _vector(name, array, length)


def clamp_to_limits(values: ArrayLike, lower: float | ArrayLike,
                    upper: float | ArrayLike) -> np.ndarray:
    """Clip each value to [lower_i, upper_i] (joint position or command limits).

    Raises:
        ValueError: non-finite input, mismatched lengths, or lower > upper.
    """
    x = _vector('values', values)
    lo, hi = _bound('lower', lower, x.size), _bound('upper', upper, x.size)
    if np.any(lo > hi):
        raise ValueError(f'lower must be <= upper, got {lo} and {hi}')
    return np.clip(x, lo, hi)


def rate_limit(values: ArrayLike, previous: ArrayLike, max_delta: float | ArrayLike) -> np.ndarray:
    """Move from ``previous`` towards ``values`` by at most ``max_delta`` per element and call.

    Raises:
        ValueError: non-finite input, mismatched lengths, or a negative ``max_delta``.
    """
    x = _vector('values', values)
    prev = _vector('previous', previous, x.size)
    step = _bound('max_delta', max_delta, x.size)
    if np.any(step < 0):
        raise ValueError(f'max_delta must be >= 0, got {step}')
    return prev + np.clip(x - prev, -step, step)


def clamp_to_workspace(position: ArrayLike, box_lower: ArrayLike,
                       box_upper: ArrayLike) -> np.ndarray:
    """Clip a Cartesian position (3 values, m) to the axis-aligned safety box.

    Raises:
        ValueError: non-finite input, not 3 values, or box_lower > box_upper.
    """
    p = _vector('position', position, 3)
    return clamp_to_limits(p, _vector('box_lower', box_lower, 3),
                           _vector('box_upper', box_upper, 3))


def clamp_delta_to_workspace(position: ArrayLike, delta: ArrayLike, box_lower: ArrayLike,
                             box_upper: ArrayLike) -> np.ndarray:
    """Cut the part of a Cartesian step ``delta`` (m) that would leave the safety box.

    Per axis the step may go towards the box and, inside it, up to its face; motion further
    out is cut to zero, so a position already outside the box is never pushed further out and
    never jerked back in by more than ``delta`` asks for.

    >>> clamp_delta_to_workspace([0.0, 0.0, 0.29], [0.1, 0.0, 0.05], [-1, -1, 0], [1, 1, 0.3])
    array([0.1 , 0.  , 0.01])
    """
    p = _vector('position', position, 3)
    d = _vector('delta', delta, 3)
    lo, hi = _vector('box_lower', box_lower, 3), _vector('box_upper', box_upper, 3)
    if np.any(lo > hi):
        raise ValueError(f'box_lower must be <= box_upper, got {lo} and {hi}')
    return np.clip(d, np.minimum(0.0, lo - p), np.maximum(0.0, hi - p))


class StaleWatchdog:
    """Reports observation sources (cameras, joint states) not heard from within their timeout.

    A source that was never touched is stale, so the robot holds until every input has arrived.
    """

    def __init__(self, timeouts_s: Mapping[str, float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``timeouts_s``: seconds of silence after which each named source is stale."""
        if not timeouts_s:
            raise ValueError('timeouts_s must name at least one source')
        for source, timeout in timeouts_s.items():
            if not np.isfinite(timeout) or timeout <= 0:
                raise ValueError(f'timeout of {source!r} must be > 0 s, got {timeout}')
        self._timeouts = dict(timeouts_s)
        self._clock = clock
        self._last: dict[str, float] = {}

    def touch(self, source: str, now: float | None = None) -> None:
        """Record that ``source`` delivered fresh data (at ``now``, default: the clock)."""
        if source not in self._timeouts:
            raise ValueError(f'unknown source {source!r}; known: {sorted(self._timeouts)}')
        self._last[source] = self._clock() if now is None else float(now)

    def stale_sources(self, now: float | None = None) -> list[str]:
        """Return the sources, sorted, silent longer than their timeout (or never heard)."""
        now = self._clock() if now is None else float(now)
        return sorted(source for source, timeout in self._timeouts.items()
                      if source not in self._last or now - self._last[source] > timeout)

    def is_stale(self, now: float | None = None) -> bool:
        """Tell whether any source is stale; the learner then holds the robot."""
        return bool(self.stale_sources(now))


@dataclass(frozen=True)
class EeDeltaAdapter:
    """Policy output [dx, dy, dz, gripper] in [-1, 1] -> end-effector delta command in [-1, 1].

    The simulator (and a Cartesian controller) moves the end effector by ``action * ee_step_m``
    per step. The command is clamped to [-1, 1], rate limited against the previous command
    (when given), and last the part of the step that would leave the safety box is cut (so the
    box wins over the rate limit). The gripper element passes through the first two steps only.
    """

    box_lower: tuple[float, float, float]
    '''Lower corner of the end-effector safety box [m], in the robot base frame.'''
    box_upper: tuple[float, float, float]
    '''Upper corner of the end-effector safety box [m].'''
    ee_step_m: float = 0.01
    '''End-effector motion of a command of 1.0 [m per step] (Meta-World: 1/100).'''
    max_command_delta: float = 2.0
    '''Largest change of any command element between two steps (2.0 = no rate limit).'''

    def __post_init__(self) -> None:
        lo, hi = _vector('box_lower', self.box_lower, 3), _vector('box_upper', self.box_upper, 3)
        if np.any(lo > hi):
            raise ValueError(f'box_lower must be <= box_upper, got {lo} and {hi}')
        if not self.ee_step_m > 0 or not self.max_command_delta >= 0:
            raise ValueError(f'ee_step_m must be > 0 and max_command_delta >= 0, got '
                             f'{self.ee_step_m}, {self.max_command_delta}')

    def command(self, action: ArrayLike, ee_position: ArrayLike,
                previous_command: ArrayLike | None = None) -> np.ndarray:
        """Safe 4-element command for the end effector at ``ee_position`` [m]."""
        a = clamp_to_limits(_vector('action', action, 4), -1.0, 1.0)
        if previous_command is not None:
            a = rate_limit(a, clamp_to_limits(_vector('previous_command', previous_command, 4),
                                              -1.0, 1.0), self.max_command_delta)
        delta = clamp_delta_to_workspace(ee_position, a[:3] * self.ee_step_m, self.box_lower,
                                         self.box_upper)
        a[:3] = np.clip(delta / self.ee_step_m, -1.0, 1.0)
        return a


@dataclass(frozen=True)
class JointTargetAdapter:
    """Policy output in [-1, 1]^J -> joint position targets for a forward_command_controller.

    target = clamp(current + action * max_step_rad, lower, upper), then rate limited against the
    previous target; ``joint_names`` is the command order (also for a one-point JointTrajectory).
    """

    joint_names: tuple[str, ...]
    '''Commanded joints, in command order.'''
    lower: tuple[float, ...]
    '''Lower joint position limits [rad or m], one per joint.'''
    upper: tuple[float, ...]
    '''Upper joint position limits [rad or m], one per joint.'''
    max_step_rad: float | tuple[float, ...] = 0.05
    '''Target offset from the current position for an action of 1.0 [rad or m per step].'''
    max_rate_rad: float | tuple[float, ...] = 0.05
    '''Largest change of a target between two commands [rad or m per step].'''

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if n == 0 or len(set(self.joint_names)) != n:
            raise ValueError(f'joint_names must be unique and non-empty, got {self.joint_names}')
        lo, hi = _vector('lower', self.lower, n), _vector('upper', self.upper, n)
        if np.any(lo > hi):
            raise ValueError(f'lower must be <= upper, got {lo} and {hi}')
        for name in ('max_step_rad', 'max_rate_rad'):
            if np.any(_bound(name, getattr(self, name), n) < 0):
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')

    def positions_in_order(self, names: Sequence[str], positions: ArrayLike) -> np.ndarray:
        """Reorder a JointState's (names, positions) into ``joint_names`` order.

        Raises:
            ValueError: a commanded joint is missing, or lengths differ.
        """
        values = _vector('positions', positions, len(names))
        lookup = dict(zip(names, values))
        missing = [name for name in self.joint_names if name not in lookup]
        if missing:
            raise ValueError(f'joint state lacks commanded joints {missing}')
        return np.array([lookup[name] for name in self.joint_names])

    def command(self, action: ArrayLike, current: ArrayLike,
                previous_target: ArrayLike | None = None) -> np.ndarray:
        """Safe joint targets (``joint_names`` order) from ``action`` at positions ``current``."""
        n = len(self.joint_names)
        a = clamp_to_limits(_vector('action', action, n), -1.0, 1.0)
        q = _vector('current', current, n)
        target = q + a * _bound('max_step_rad', self.max_step_rad, n)
        target = clamp_to_limits(target, self.lower, self.upper)
        if previous_target is not None:
            target = rate_limit(target, previous_target, self.max_rate_rad)
            target = clamp_to_limits(target, self.lower, self.upper)
        return target
