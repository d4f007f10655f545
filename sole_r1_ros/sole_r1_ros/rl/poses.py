"""End-effector poses: validation, and the few quaternion operations the safety box needs.

Quaternions are ``(x, y, z, w)``, the order of ``geometry_msgs/Quaternion``. A rotation delta is a
rotation vector (axis times angle [rad]) in the frame the pose is expressed in (the robot base
frame), applied on the left: ``q_target = exp(delta) * q_current``, as SERL's ``franka_env``
applies its rotation action and as MoveIt Servo reads an angular velocity in the command frame.

Pure numpy. A pose read from a topic is checked with ``pose_problem`` (never raises, gives the
reason) or ``checked_pose`` (raises); a pose with NaN/inf or a quaternion whose norm is off by
more than the tolerance is invalid, and the caller treats it as stale. It is never normalised
into use.
"""
from dataclasses import dataclass
import math
from typing import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray

QUATERNION_TOLERANCE = 1e-3
'''Default largest | |q| - 1 | of a pose quaternion that is still accepted (and renormalised).'''
_UNIT_EPS = 1e-6


def _frozen(values: ArrayLike, length: int) -> np.ndarray:
    array = np.array(values, dtype=np.float64).reshape(-1)
    if array.size != length:
        raise ValueError(f'expected {length} values, got {array.size}')
    array.setflags(write=False)
    return array


def pose_problem(position: ArrayLike, orientation: ArrayLike,
                 tolerance: float = QUATERNION_TOLERANCE) -> str | None:
    """Return why a pose is invalid, or None when it is valid. Never raises.

    Args:
        position: x, y, z [m].
        orientation: quaternion x, y, z, w.
        tolerance: the largest accepted | |q| - 1 |.

    >>> pose_problem([0, 0, 0.3], [0, 0, 0, 1]) is None
    True
    >>> pose_problem([0, 0, 0.3], [0, 0, 0, 0.5])
    'quaternion norm 0.5 is not 1 (tolerance 0.001)'
    """
    try:
        p = np.asarray(position, dtype=np.float64).reshape(-1)
        q = np.asarray(orientation, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        return f'not numeric: {exc}'
    if p.size != 3 or q.size != 4:
        return f'need 3 position and 4 quaternion values, got {p.size} and {q.size}'
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        return f'not finite: position {p.tolist()}, orientation {q.tolist()}'
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > tolerance:
        return f'quaternion norm {norm:.6g} is not 1 (tolerance {tolerance:g})'
    return None


@dataclass(frozen=True)
class EePose:
    """An end-effector pose in the robot base frame; arrays are read-only float64 copies.

    The constructor wants a unit quaternion (to 1e-6); build poses read from a topic with
    ``checked_pose``, which applies the configurable tolerance.
    """

    position: np.ndarray
    '''(3,) x, y, z [m].'''
    orientation: np.ndarray
    '''(4,) unit quaternion x, y, z, w.'''

    def __post_init__(self) -> None:
        object.__setattr__(self, 'position', _frozen(self.position, 3))
        object.__setattr__(self, 'orientation', _frozen(self.orientation, 4))
        problem = pose_problem(self.position, self.orientation, _UNIT_EPS)
        if problem:
            raise ValueError(f'invalid end-effector pose: {problem}')


def checked_pose(position: ArrayLike, orientation: ArrayLike,
                 tolerance: float = QUATERNION_TOLERANCE) -> EePose:
    """Build an ``EePose`` from a message's values; renormalise a quaternion within tolerance.

    Raises:
        ValueError: ``pose_problem`` finds the pose invalid (the message names the reason).
    """
    problem = pose_problem(position, orientation, tolerance)
    if problem:
        raise ValueError(f'invalid end-effector pose: {problem}')
    q = np.asarray(orientation, dtype=np.float64).reshape(-1)
    return EePose(position, q / np.linalg.norm(q))


def quat_multiply(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Hamilton product ``a * b`` of quaternions (x, y, z, w): rotate by b, then by a."""
    ax, ay, az, aw = np.asarray(a, dtype=np.float64)
    bx, by, bz, bw = np.asarray(b, dtype=np.float64)
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def quat_conjugate(q: ArrayLike) -> np.ndarray:
    """Inverse of a unit quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(q, dtype=np.float64)
    return np.array([-x, -y, -z, w])


def quat_from_rotvec(rotvec: ArrayLike) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation vector (axis * angle [rad])."""
    v = np.asarray(rotvec, dtype=np.float64).reshape(3)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    return np.concatenate([v / angle * math.sin(angle / 2), [math.cos(angle / 2)]])


def rotvec_from_quat(q: ArrayLike) -> np.ndarray:
    """Rotation vector [rad] of a unit quaternion; the angle is in [0, pi] (shortest way)."""
    x, y, z, w = np.asarray(q, dtype=np.float64)
    if w < 0:
        x, y, z, w = -x, -y, -z, -w
    s = math.sqrt(x * x + y * y + z * z)
    if s < 1e-12:
        return np.zeros(3)
    return np.array([x, y, z]) / s * 2.0 * math.atan2(s, w)


def same_hemisphere(q: ArrayLike, reference: ArrayLike | None) -> np.ndarray:
    """``q`` or ``-q`` (the same rotation), whichever is nearer ``reference``.

    A policy reads the quaternion's four numbers: a pose source that flips their sign (one
    that keeps w >= 0, with a gripper pointing down, where w is near 0) would flip the state
    with no motion. With no reference, the sign that makes the largest component positive:
    the same for the same orientation in every session.
    """
    q = np.asarray(q, dtype=np.float64)
    if reference is None:
        return -q if q[np.argmax(np.abs(q))] < 0 else q.copy()
    return -q if float(np.dot(q, reference)) < 0 else q.copy()


def yaw_of(q: ArrayLike) -> float:
    """Yaw [rad] in (-pi, pi]: the first angle of the z-y-x (yaw, pitch, roll) decomposition.

    That is tf2's ``getRPY`` yaw, the heading of the tool's x axis in the base xy plane; it is
    undefined when that axis points straight up or down (pitch +-90 degrees).
    """
    x, y, z, w = np.asarray(q, dtype=np.float64)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def wrap_angle(angle: float) -> float:
    """``angle`` [rad] wrapped into [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi
