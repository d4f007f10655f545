"""Twist and pose commands for the simulated Sawyer, turned into its 4-value command.

The Sawyer's end effector follows a MuJoCo mocap target that each command moves by
``value * EE_STEP_M`` per Meta-World step along the world axes (``COMMAND_LAYOUT``); one robot
tick holds the command for ``action_repeat`` steps. So a robot tick moves the target by
``command * EE_STEP_M * action_repeat`` [m], and these functions solve that for the command:

- a twist (``geometry_msgs/TwistStamped`` as MoveIt Servo gets it): velocity [m/s] times the
  tick period [s];
- an absolute pose target (``geometry_msgs/PoseStamped``): target minus the current position.

The Meta-World mocap keeps a fixed hand orientation, so angular velocity and target orientation
are checked (finite, unit quaternion) but otherwise ignored. Results are clipped to
``[-limit, limit]``; the gripper value (+1 closes, -1 opens) comes from the gripper's own topic
(``gripper_from_position``). Pure numpy; invalid input raises ``ValueError`` before anything
reaches MuJoCo.
"""
from typing import Sequence

import numpy as np

from sole_r1_ros.sim.config import clamp_command

ArrayLike = Sequence[float] | np.ndarray

EE_STEP_M = 0.01
'''Mocap target motion of a command of 1.0 per Meta-World step [m] (Meta-World's
``action_scale`` of 1/100).'''
_QUATERNION_TOLERANCE = 1e-3


def _finite(name: str, values: ArrayLike, length: int) -> np.ndarray:
    array = np.array(values, dtype=np.float64).reshape(-1)
    if array.size != length or not np.all(np.isfinite(array)):
        raise ValueError(f'{name} must be {length} finite values, got {array.tolist()}')
    return array


def _check_step(tick_period_s: float, action_repeat: int) -> None:
    if not (np.isfinite(tick_period_s) and tick_period_s > 0):
        raise ValueError(f'tick_period_s must be > 0, got {tick_period_s}')
    if isinstance(action_repeat, bool) or not isinstance(action_repeat, int) or action_repeat < 1:
        raise ValueError(f'action_repeat must be an int >= 1, got {action_repeat!r}')


def command_from_twist(linear_m_s: ArrayLike, angular_rad_s: ArrayLike | None = None,
                       gripper: float = 0.0, tick_period_s: float = 0.1,
                       action_repeat: int = 1, limit: float = 1.0) -> np.ndarray:
    """4-value command that moves the hand ``linear_m_s * tick_period_s`` in one tick.

    Args:
        linear_m_s: velocity x, y, z [m/s] in the world frame.
        angular_rad_s: checked, then ignored (the mocap orientation is fixed).
        gripper: the gripper value to send along, in [-1, 1].
        tick_period_s: the time one command stands for [s]: the sim node's ``1 / rate_hz``.
        action_repeat: Meta-World steps per tick (``SimConfig.action_repeat``).
        limit: per-element clip, in [0, 1] (``clamp_command``).

    Raises:
        ValueError: non-finite or wrong-length input, or a bad period or repeat.

    >>> command_from_twist([0.05, 0.0, -0.2], gripper=1.0).round(6).tolist()
    [0.5, 0.0, -1.0, 1.0]
    """
    _check_step(tick_period_s, action_repeat)
    velocity = _finite('linear_m_s', linear_m_s, 3)
    if angular_rad_s is not None:
        _finite('angular_rad_s', angular_rad_s, 3)
    motion = velocity * tick_period_s / (EE_STEP_M * action_repeat)
    return clamp_command(np.append(motion, float(gripper)), limit)


def command_from_pose(target_position: ArrayLike, current_position: ArrayLike,
                      target_orientation: ArrayLike | None = None, gripper: float = 0.0,
                      action_repeat: int = 1, limit: float = 1.0) -> np.ndarray:
    """4-value command that moves the hand towards an absolute target position in one tick.

    A target further than one tick can reach (``EE_STEP_M * action_repeat * limit`` per axis)
    is approached at that speed over several ticks.

    Args:
        target_position: x, y, z [m], world frame.
        current_position: where the motion starts [m]: ``MetaWorldRobot.ee_target_position``
            (the mocap target) makes the target an exact set point; the measured hand position
            (``Observation.ee_position``) lags it by up to a few centimetres while moving.
        target_orientation: quaternion x, y, z, w; checked (finite, unit), then ignored.

    Raises:
        ValueError: non-finite or wrong-length input, a non-unit quaternion, a bad repeat.
    """
    _check_step(1.0, action_repeat)
    target = _finite('target_position', target_position, 3)
    current = _finite('current_position', current_position, 3)
    if target_orientation is not None:
        q = _finite('target_orientation', target_orientation, 4)
        if abs(np.linalg.norm(q) - 1.0) > _QUATERNION_TOLERANCE:
            raise ValueError(f'target_orientation must be a unit quaternion, got {q.tolist()}')
    motion = (target - current) / (EE_STEP_M * action_repeat)
    return clamp_command(np.append(motion, float(gripper)), limit)


def gripper_from_position(position: float, open_position: float,
                          closed_position: float) -> float:
    """Map a gripper position command to the Sawyer's gripper value: closed +1, open -1.

    Linear in between and clipped outside, so the sim accepts the same position commands as
    ``rl.commands.gripper_command`` sends to a real gripper.

    Raises:
        ValueError: a non-finite value, or ``open_position == closed_position``.

    >>> gripper_from_position(0.0, open_position=0.04, closed_position=0.0)
    1.0
    """
    values = _finite('gripper positions', [position, open_position, closed_position], 3)
    position, open_position, closed_position = values
    if open_position == closed_position:
        raise ValueError('open_position and closed_position must differ')
    fraction_closed = (position - open_position) / (closed_position - open_position)
    return float(np.clip(2.0 * fraction_closed - 1.0, -1.0, 1.0))
