"""Configuration and command interface of the simulated Sawyer robot (no MuJoCo needed here)."""
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.sim.tasks import TASK_GOALS

COMMAND_LAYOUT: tuple[str, ...] = ('ee_dx', 'ee_dy', 'ee_dz', 'gripper')
'''Meaning of the 4 command values, each in [-1, 1].

``ee_d*`` move the end-effector target by up to 1 cm per Meta-World step (12.5 ms) along the
world axes (y points away from the robot base, z up); ``gripper`` +1 closes, -1 opens.
'''

CAMERAS: tuple[str, ...] = (
    'corner', 'corner2', 'corner3', 'corner4', 'topview', 'behindGripper', 'gripperPOV')
'''Cameras every Meta-World v3 scene has; corner views are returned upright.'''

# Meta-World's control period: frame_skip 5 × MuJoCo timestep 2.5 ms.
_ENV_STEP_S = 0.0125
_MAX_IMAGE_SIDE = 1024


def clamp_command(
    values: Sequence[float] | np.ndarray, limit: float | Sequence[float] | np.ndarray = 1.0
) -> np.ndarray:
    """Validate a command and clip it to symmetric per-component limits.

    Args:
        values: 4 numbers in ``COMMAND_LAYOUT`` order.
        limit: the largest magnitude allowed, one number for all components or 4, each in
            [0, 1]; a lower limit slows the arm without turning it, 0 holds that axis still.

    Returns:
        A new float64 array of shape (4,).

    Raises:
        ValueError: wrong length, a NaN or infinite value, or a limit outside [0, 1].

    >>> clamp_command([0.5, -2.0, 0.0, 1.0], limit=0.8).tolist()
    [0.5, -0.8, 0.0, 0.8]
    """
    command = np.array(values, dtype=np.float64).reshape(-1)
    if command.shape != (len(COMMAND_LAYOUT),):
        raise ValueError(
            f'a command has {len(COMMAND_LAYOUT)} values {COMMAND_LAYOUT}, got {command.size}')
    if not np.all(np.isfinite(command)):
        raise ValueError(f'command values must be finite, got {command.tolist()}')
    bound = np.array(limit, dtype=np.float64).reshape(-1)
    if bound.size == 1:
        bound = np.full(command.shape, bound[0])
    # NaN limits fail both comparisons and are rejected too.
    if bound.shape != command.shape or not np.all((bound >= 0.0) & (bound <= 1.0)):
        raise ValueError(f'limit must be 1 or {command.size} values in [0, 1], got {limit}')
    return np.clip(command, -bound, bound)


@dataclass(frozen=True)
class SimConfig:
    """Settings of one simulated Meta-World robot; fixed for the robot's lifetime."""

    task: str = option('drawer-close-v3', 'Meta-World v3 task id (one of TASK_GOALS)',
                       choices=tuple(TASK_GOALS), read_only=True)
    image_width: int = option(128, 'camera image width [px]', range=(1, _MAX_IMAGE_SIDE),
                              read_only=True)
    image_height: int = option(128, 'camera image height [px]', range=(1, _MAX_IMAGE_SIDE),
                               read_only=True)
    render: bool = option(True, 'render camera images; False creates no GL context at all '
                          '(fast state-only stepping)', read_only=True)
    external_camera: str = option(
        'corner4', 'third-person camera; corner4 shows the whole work area of every task from '
        'the front right with little occlusion by the arm', choices=CAMERAS, read_only=True)
    wrist_camera: str = option(
        'gripperPOV', "camera that moves with the hand ('' = none); gripperPOV looks down past "
        'the fingers at the object being handled', choices=('',) + CAMERAS, read_only=True)
    seed: int = option(0, "seed of the task's 50 object/goal variations and of the variation "
                       'picked at each unseeded reset', range=(0, 2**31 - 1), read_only=True)
    max_episode_steps: int = option(
        200, 'robot steps per episode before truncated; the scripted experts solve most tasks '
        'in 30 to 120 steps at action_repeat 1, bin-picking and push-back sometimes need 360',
        range=(1, 10**9), read_only=True)
    action_repeat: int = option(1, 'Meta-World steps (12.5 ms each) one command is held for',
                                range=(1, 20), read_only=True)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def control_period_s(self) -> float:
        """Simulated seconds per robot step."""
        return _ENV_STEP_S * self.action_repeat

    @property
    def goal(self) -> str:
        """The task's language goal."""
        return TASK_GOALS[self.task]
