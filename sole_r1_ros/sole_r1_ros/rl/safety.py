"""Safety applied last, just before a command is published.

Limits, rate limits, a workspace box, a stale-observation watchdog, the mapping from policy
outputs in [-1, 1] to commands, and the end-effector ``SafetyBox`` that every Cartesian command
(the policy's and a human's) passes through (``safe_ee_delta``, ``safe_ee_target``).

Pure numpy, no torch and no ROS. Every function returns a new array and rejects NaN/inf and
wrong lengths with ``ValueError``; the order follows SERL's ``franka_env`` (clip the action, then
the target to the safety box), without its in-place edits.
"""
from dataclasses import dataclass
import math
import time
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.rl.poses import (
    EePose, quat_from_rotvec, quat_multiply, wrap_angle, yaw_of)

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
    previous target and kept within max_step_rad of current; ``joint_names`` is the command
    order (also for a one-point JointTrajectory).
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
        # A joint measured outside its limits may come back by a step, never jump the gap.
        lower = np.minimum(_bound('lower', self.lower, n), q)
        upper = np.maximum(_bound('upper', self.upper, n), q)
        target = clamp_to_limits(q + a * _bound('max_step_rad', self.max_step_rad, n),
                                 lower, upper)
        # From the last target, or after a hold (none) from where the arm is.
        target = rate_limit(target, q if previous_target is None else previous_target,
                            self.max_rate_rad)
        # Never more than a step from where the arm is: a last target far from it (a joint
        # reading that wrapped by 2 pi, an arm moved by hand) pulled this one 6.2 rad away.
        step = _bound('max_step_rad', self.max_step_rad, n)
        target = clamp_to_limits(target, q - step, q + step)
        return clamp_to_limits(target, lower, upper)


@dataclass(frozen=True)
class SafetyBox:
    """Limits every end-effector command obeys, in the robot base frame of the pose topic.

    Defaults fit the simulated Sawyer (Meta-World world frame); set them for a real arm.
    """

    box_lower: tuple[float, ...] = option((-0.5, 0.35, 0.05), 'lower corner x, y, z of the '
                                          'workspace box [m], base frame', length=3)
    box_upper: tuple[float, ...] = option((0.5, 0.95, 0.35), 'upper corner x, y, z of the '
                                          'workspace box [m], base frame', length=3)
    yaw_centre_rad: float = option(0.0, 'centre of the allowed tool yaw (z-y-x yaw of the pose '
                                   'quaternion) [rad]', range=(-math.pi, math.pi))
    yaw_half_range_rad: float = option(math.pi, 'allowed yaw is centre +- this, wrapping '
                                       'through +-pi [rad]; pi = no yaw limit',
                                       range=(0.0, math.pi))
    max_translation_m: float = option(0.02, 'largest translation of one command (Euclidean '
                                      'norm) [m per step]', range=(0.0, 1.0))
    max_rotation_rad: float = option(0.1, 'largest rotation angle of one command [rad per step]',
                                     range=(0.0, math.pi))
    max_speed_m_s: float = option(0.25, 'largest end-effector speed: the translation of one '
                                  'command is also capped at speed x control period [m/s]',
                                  range=(0.0, 10.0))
    max_angular_speed_rad_s: float = option(
        1.0, 'largest tool turning rate: the rotation of one command is also capped at this x '
        'control period (so a faster control rate is not a faster turn) [rad/s]',
        range=(0.0, 10.0))

    def __post_init__(self) -> None:
        validate(self)
        if any(lo > hi for lo, hi in zip(self.box_lower, self.box_upper)):
            raise ValueError(f'SafetyBox: box_lower must be <= box_upper, got '
                             f'{self.box_lower} and {self.box_upper}')

    @property
    def yaw_limited(self) -> bool:
        """Whether the yaw limit is on (half range below pi)."""
        return self.yaw_half_range_rad < math.pi


class SafeDelta(NamedTuple):
    """An end-effector step after the safety box, in the base frame."""

    translation_m: np.ndarray
    '''(3,) dx, dy, dz [m].'''
    rotation_rad: np.ndarray
    '''(3,) rotation vector [rad], applied on the left of the current orientation.'''
    limits: tuple[str, ...]
    '''The limits that changed the request, in the order applied: 'translation', 'speed',
    'rotation', 'angular speed', 'box', 'yaw' (empty: passed unchanged); for logs and
    counters.'''


def apply_ee_delta(pose: EePose, translation_m: ArrayLike, rotation_rad: ArrayLike) -> EePose:
    """Return the pose moved by ``translation_m`` [m] and rotated by ``rotation_rad`` (left)."""
    q = quat_multiply(quat_from_rotvec(_vector('rotation_rad', rotation_rad, 3)),
                      pose.orientation)
    return EePose(pose.position + _vector('translation_m', translation_m, 3),
                  q / np.linalg.norm(q))


def safe_ee_delta(box: SafetyBox, pose: EePose, translation_m: ArrayLike,
                  rotation_rad: ArrayLike | None = None, period_s: float = 0.1,
                  also_at: ArrayLike | None = None,
                  also_turned: ArrayLike | None = None) -> SafeDelta:
    """Clamp a requested end-effector step so the command it becomes is safe.

    In order: the translation norm is capped at ``min(max_translation_m, max_speed_m_s *
    period_s)`` and the rotation angle at ``min(max_rotation_rad, max_angular_speed_rad_s *
    period_s)`` (directions kept); then the part
    of the translation that would leave the box is cut per axis, and the yaw change that would
    leave the allowed yaw arc is cut. Like ``clamp_delta_to_workspace``, a pose already outside
    the box or the arc may move back in but never further out. The box comes last, so it wins.

    Args:
        pose: the current end-effector pose (fresh and valid: hold instead when it is not).
        translation_m: requested dx, dy, dz [m], base frame.
        rotation_rad: requested rotation vector [rad], base frame; None = no rotation.
        period_s: control period [s], for the speed limit.
        also_at: a second position [m] the step must keep in the box too: where a velocity
            command's arm is by now, with the motion sent since the pose's stamp (the step
            is cut for both, so it can only get shorter).
        also_turned: likewise a second orientation (x, y, z, w) the yaw limit must hold at:
            the measured one turned by the rotation sent since its stamp.

    Raises:
        ValueError: non-finite or wrong-length input, or ``period_s`` <= 0.
    """
    if not (math.isfinite(period_s) and period_s > 0):
        raise ValueError(f'period_s must be > 0, got {period_s}')
    limits = []
    dp = _vector('translation_m', translation_m, 3)
    dr = np.zeros(3) if rotation_rad is None else _vector('rotation_rad', rotation_rad, 3)
    cap = min(box.max_translation_m, box.max_speed_m_s * period_s)
    norm = float(np.linalg.norm(dp))
    if norm > cap:
        limits.append('translation' if cap == box.max_translation_m else 'speed')
        dp = dp * (cap / norm)
    angle = float(np.linalg.norm(dr))
    turn = min(box.max_rotation_rad, box.max_angular_speed_rad_s * period_s)
    if angle > turn:
        limits.append('rotation' if turn == box.max_rotation_rad else 'angular speed')
        dr = dr * (turn / angle)
    inside = clamp_delta_to_workspace(pose.position, dp, box.box_lower, box.box_upper)
    if also_at is not None:
        inside = clamp_delta_to_workspace(also_at, inside, box.box_lower, box.box_upper)
    if not np.array_equal(inside, dp):
        limits.append('box')
    if box.yaw_limited and angle > 0:
        dr, cut = _cut_yaw(box, pose.orientation, dr)
        if also_turned is not None:
            dr, cut_ahead = _cut_yaw(box, _vector('also_turned', also_turned, 4), dr)
            cut = cut or cut_ahead
        if cut:
            limits.append('yaw')
    return SafeDelta(inside, dr, tuple(limits))


def safe_ee_target(box: SafetyBox, pose: EePose, translation_m: ArrayLike,
                   rotation_rad: ArrayLike | None = None,
                   period_s: float = 0.1) -> tuple[EePose, SafeDelta]:
    """Absolute target pose = ``pose`` + ``safe_ee_delta(...)``; returns (target, delta)."""
    delta = safe_ee_delta(box, pose, translation_m, rotation_rad, period_s)
    return apply_ee_delta(pose, delta.translation_m, delta.rotation_rad), delta


def _cut_yaw(box: SafetyBox, orientation: np.ndarray,
             rotation: np.ndarray) -> tuple[np.ndarray, bool]:
    """Shorten ``rotation`` so the yaw stays in the allowed arc (wrap-safe); never lengthen it.

    The rotation is scaled down, not corrected about the base z axis: near a vertical tool
    axis yaw is ill-conditioned, and a correction there was a turn of up to pi in one step.
    Bisection on the scale, which keeps the step inside the rotation limit already applied.
    """
    half = box.yaw_half_range_rad
    before = wrap_angle(yaw_of(orientation) - box.yaw_centre_rad)
    lowest, highest = min(0.0, -half - before), max(0.0, half - before)

    def allowed(scale: float) -> bool:
        target = quat_multiply(quat_from_rotvec(scale * rotation), orientation)
        return lowest <= wrap_angle(yaw_of(target) - yaw_of(orientation)) <= highest
    if allowed(1.0):
        return rotation, False
    inside, outside = 0.0, 1.0
    for _ in range(30):
        middle = 0.5 * (inside + outside)
        inside, outside = (middle, outside) if allowed(middle) else (inside, middle)
    return inside * rotation, True
