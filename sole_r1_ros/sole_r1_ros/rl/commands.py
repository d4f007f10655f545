"""What each kind of controller needs from an end-effector action, after the safety box.

The policy (or a human, ``rl.teleop``) gives an action in [-1, 1]: ``dx, dy, dz, gripper``, or
``dx, dy, dz, droll, dpitch, dyaw, gripper`` with ``CommandConfig.rotation_actions``. Scaled by
``translation_scale_m`` / ``rotation_scale_rad`` it is a requested step in the base frame of the
end-effector pose; ``ee_command`` passes that step through ``safety.safe_ee_delta`` and returns
every form at once, for the node to publish the one its ``command_type`` names:

- ``twist_stamped`` (MoveIt Servo with ``command_in_type: speed_units``): ``linear_m_s``,
  ``angular_rad_s`` = safe step / period;
- ``pose_stamped`` (Cartesian impedance, cartesian_controllers): ``target`` = pose + safe step;
- ``float64_multiarray`` with an end-effector action (the simulated robot's 4-value command):
  ``normalized`` = safe step / translation_scale_m, plus the gripper value;
- joint space (``float64_multiarray``, ``joint_trajectory`` with joint actions): unchanged,
  ``safety.JointTargetAdapter``.

The gripper has its own command (``gripper_command``): closed/open with hysteresis, as a
position. ``hold_*`` give the command that keeps the arm where it is. Pure numpy, no ROS.
"""
from dataclasses import dataclass
import math
from typing import NamedTuple, Sequence

import numpy as np

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.rl.poses import EePose
from sole_r1_ros.rl.safety import apply_ee_delta, safe_ee_delta, SafeDelta, SafetyBox

ACTION_LAYOUTS = ('ee_delta', 'joint_position')
'''What a policy action means: end-effector deltas (+ gripper) or joint position offsets.'''
COMMAND_TYPES = ('twist_stamped', 'pose_stamped', 'float64_multiarray', 'joint_trajectory')
CARTESIAN_COMMAND_TYPES = ('twist_stamped', 'pose_stamped')
GRIPPER_COMMAND_TYPES = ('none', 'float64_multiarray', 'joint_trajectory')

_RO = {'read_only': True}


@dataclass(frozen=True)
class CommandConfig:
    """How actions become commands: message form, scales, frame, and the gripper."""

    command_type: str = option(
        'float64_multiarray', "arm command: 'twist_stamped' (MoveIt Servo), 'pose_stamped' "
        "(absolute Cartesian target), 'float64_multiarray' (forward command controller, or the "
        "simulated robot's 4-value end-effector command), 'joint_trajectory' (one point)",
        choices=COMMAND_TYPES, **_RO)
    frame_id: str = option('base_link', 'frame of twist and pose commands; the end-effector '
                           'pose and the safety box are in this frame too', **_RO)
    translation_scale_m: float = option(0.01, 'end-effector translation of an action of 1.0 '
                                        '[m per step] (the simulated Sawyer: 0.01)',
                                        range=(1e-6, 1.0), **_RO)
    rotation_actions: bool = option(False, 'actions carry droll, dpitch, dyaw (a rotation '
                                    'vector, base frame) between dz and the gripper: 7 values '
                                    'instead of 4', **_RO)
    rotation_scale_rad: float = option(0.05, 'rotation of an action of 1.0 [rad per step]',
                                       range=(0.0, math.pi), **_RO)
    gripper_command_type: str = option(
        'none', "gripper command on its own topic: 'float64_multiarray' (one position per "
        "joint), 'joint_trajectory' (one point), or 'none' (inside the arm command, or no "
        'gripper)', choices=GRIPPER_COMMAND_TYPES, **_RO)
    gripper_joint_names: tuple[str, ...] = option(('gripper_joint',), 'gripper joints; each '
                                                  'gets the same position', **_RO)
    gripper_close_threshold: float = option(0.5, 'a gripper action at or above this closes the '
                                            'gripper', range=(-1.0, 1.0))
    gripper_open_threshold: float = option(-0.5, 'a gripper action at or below this opens it; '
                                           'in between the gripper keeps its state '
                                           '(hysteresis)', range=(-1.0, 1.0))
    # read-only, as the joints' limits: the gripper's range is the hardware's, not a setting
    # to change on a running arm (any value of ±10 went out as it was)
    gripper_open_position: float = option(0.04, 'gripper position command when open [m or '
                                          'rad]', range=(-10.0, 10.0), **_RO)
    gripper_closed_position: float = option(0.0, 'gripper position command when closed [m or '
                                            'rad]', range=(-10.0, 10.0), **_RO)

    def __post_init__(self) -> None:
        validate(self)
        if self.gripper_open_threshold > self.gripper_close_threshold:
            raise ValueError(f'CommandConfig: gripper_open_threshold '
                             f'({self.gripper_open_threshold}) must be <= '
                             f'gripper_close_threshold ({self.gripper_close_threshold})')
        if self.gripper_command_type != 'none' and not self.gripper_joint_names:
            raise ValueError('CommandConfig.gripper_joint_names must name at least one joint '
                             f'for gripper_command_type={self.gripper_command_type!r}')
        if not self.frame_id:
            raise ValueError('CommandConfig.frame_id must not be empty')

    @property
    def action_dim(self) -> int:
        """Length of an end-effector action: 4, or 7 with rotation actions."""
        return 7 if self.rotation_actions else 4


@dataclass(frozen=True)
class JointLimits:
    """Joint-space commands: position limits and step sizes (``action_layout: joint_position``)."""

    lower: tuple[float, ...] = option((-3.0,) * 9, 'lower joint position limits, in the '
                                      'order of joint_names [rad or m]', **_RO)
    upper: tuple[float, ...] = option((3.0,) * 9, 'upper joint position limits [rad or m]',
                                      **_RO)
    max_step_rad: float = option(0.05, 'target offset from the current position for an action '
                                 'of 1.0, at most max_speed_rad_s x control period [rad or m '
                                 'per step]', range=(0.0, 1.0), **_RO)
    max_rate_rad: float = option(0.05, 'largest change of a target between two commands [rad '
                                 'or m per step], whatever the policy says', range=(0.0, 1.0),
                                 **_RO)
    max_speed_rad_s: float = option(0.5, 'largest joint speed: a target also changes by at most '
                                    'this x control period per command (so a faster control '
                                    'rate is not a faster arm) [rad or m per s]',
                                    range=(0.0, 10.0), **_RO)

    def __post_init__(self) -> None:
        validate(self)
        if len(self.lower) != len(self.upper):
            raise ValueError(f'JointLimits: lower has {len(self.lower)} values, upper '
                             f'{len(self.upper)}')

    def rate_per_command(self, period_s: float) -> float:
        """The largest change of a target between two commands ``period_s`` apart [rad or m]."""
        return min(self.max_rate_rad, self.max_speed_rad_s * period_s)


class EeCommand(NamedTuple):
    """One end-effector action in every command form, all after the same safety box."""

    linear_m_s: np.ndarray
    '''(3,) TwistStamped linear velocity [m/s] in ``frame_id``.'''
    angular_rad_s: np.ndarray
    '''(3,) TwistStamped angular velocity [rad/s] in ``frame_id`` (zero without rotation).'''
    target: EePose
    '''PoseStamped target: the current pose moved by the safe step.'''
    normalized: np.ndarray
    '''(4,) dx, dy, dz in units of ``translation_scale_m`` (in [-1, 1]) and the gripper: the
    simulated robot's Float64MultiArray command. Rotation is not part of it.'''
    gripper: float
    '''The action's gripper value in [-1, 1] (+1 closes); see ``gripper_command``.'''
    delta: SafeDelta
    '''The safe step itself and the limits that shaped it.'''


def split_action(action: Sequence[float] | np.ndarray,
                 config: CommandConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """Clip an action to [-1, 1]; return the requested (translation [m], rotation [rad], gripper).

    Raises:
        ValueError: not ``config.action_dim`` finite values.
    """
    a = np.array(action, dtype=np.float64).reshape(-1)
    if a.size != config.action_dim or not np.all(np.isfinite(a)):
        raise ValueError(f'action must be {config.action_dim} finite values, got {a.tolist()}')
    a = np.clip(a, -1.0, 1.0)
    rotation = a[3:6] * config.rotation_scale_rad if config.rotation_actions else np.zeros(3)
    return a[:3] * config.translation_scale_m, rotation, float(a[-1])


def ee_command(action: Sequence[float] | np.ndarray, pose: EePose, config: CommandConfig,
               box: SafetyBox, period_s: float,
               also_at: Sequence[float] | np.ndarray | None = None,
               also_turned: Sequence[float] | np.ndarray | None = None) -> EeCommand:
    """Turn an action at the current ``pose`` into safe commands of every form.

    Clip the action, scale it to a step, clamp the step with the safety box, then derive the
    twist (step / ``period_s``), the target pose and the normalised 4-value command.

    Args:
        pose: fresh, valid end-effector pose in ``config.frame_id`` (hold when there is none).
        period_s: control period [s]: one command per period.
        also_at: a position the step must keep in the box too (``safe_ee_delta``).
        also_turned: an orientation the yaw limit must hold at too (``safe_ee_delta``).

    Raises:
        ValueError: a bad action, or ``period_s`` <= 0.
    """
    translation, rotation, gripper = split_action(action, config)
    delta = safe_ee_delta(box, pose, translation, rotation, period_s, also_at, also_turned)
    normalized = np.append(np.clip(delta.translation_m / config.translation_scale_m, -1.0, 1.0),
                           gripper)
    return EeCommand(linear_m_s=delta.translation_m / period_s,
                     angular_rad_s=delta.rotation_rad / period_s,
                     target=apply_ee_delta(pose, delta.translation_m, delta.rotation_rad),
                     normalized=normalized, gripper=gripper, delta=delta)


def gripper_command(value: float, was_closed: bool, config: CommandConfig) -> tuple[bool, float]:
    """Return (closed, position) for a gripper action ``value`` in [-1, 1] (+1 closes).

    At or above ``gripper_close_threshold`` the gripper closes, at or below
    ``gripper_open_threshold`` it opens, in between it keeps ``was_closed``, so a value hovering
    near one threshold does not chatter. A non-finite value also keeps the state.

    >>> config = CommandConfig()
    >>> gripper_command(0.7, False, config), gripper_command(0.2, True, config)
    ((True, 0.0), (True, 0.0))
    >>> gripper_command(-0.6, True, config)
    (False, 0.04)
    """
    value = float(value)
    closed = bool(was_closed)
    if math.isfinite(value):
        if value >= config.gripper_close_threshold:
            closed = True
        elif value <= config.gripper_open_threshold:
            closed = False
    position = config.gripper_closed_position if closed else config.gripper_open_position
    return closed, position


def hold_twist() -> tuple[np.ndarray, np.ndarray]:
    """(linear [m/s], angular [rad/s]) that stop a Servo-driven arm: zeros."""
    return np.zeros(3), np.zeros(3)


def hold_pose(pose: EePose) -> EePose:
    """The target that keeps a pose-controlled arm still: the current pose (immutable)."""
    return pose


def hold_normalized(gripper: float = 0.0) -> np.ndarray:
    """The simulated robot's 4-value command that keeps the hand still; ``gripper`` unchanged.

    Pass the last gripper value sent: 0 would let the Sawyer's fingers relax. A non-finite
    ``gripper`` becomes 0.
    """
    gripper = float(gripper)
    return np.array([0.0, 0.0, 0.0, gripper if math.isfinite(gripper) else 0.0])


def hold_joints(current: Sequence[float] | np.ndarray) -> np.ndarray:
    """Joint targets that keep the arm still: a copy of the current positions.

    Raises:
        ValueError: a non-finite position (hold needs a valid joint state).
    """
    q = np.array(current, dtype=np.float64).reshape(-1)
    if q.size == 0 or not np.all(np.isfinite(q)):
        raise ValueError(f'current joint positions must be finite, got {q.tolist()}')
    return q
