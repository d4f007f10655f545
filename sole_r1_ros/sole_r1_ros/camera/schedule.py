"""Decide which frames are reward queries: a fixed stride plus the robot's own event signals.

A fixed stride alone misses brief events (a grasp, a click) between queries, which the SOLE-R1
paper names as its main failure mode. The robot knows when such things happen: the gripper
starts or stops moving, or the arm's joint velocities jump (contact, a stop). Those frames are
queried too, at most once every ``min_gap`` frames so a burst of events cannot flood the model.
"""
from dataclasses import dataclass

import numpy as np

from sole_r1_ros.configuration import option, validate


@dataclass(frozen=True)
class QueryScheduleConfig:
    """When to query the reward model, in frames of the paired camera stream."""

    stride: int = option(10, "query every N paired frames (10 at a 10 Hz camera: the authors' "
                         'client rate of 1 Hz)', range=(1, 10**6), read_only=True)
    min_gap: int = option(2, 'fewest frames between two queries; an event closer than this is '
                          'deferred, not dropped', range=(1, 10**6), read_only=True)
    gripper_joints: tuple[str, ...] = option(
        ('r_close', 'l_close'), 'gripper joint names: the gripper starting or stopping to move '
        'triggers a query', read_only=True)
    gripper_speed_threshold: float = option(
        1e-3, 'gripper speed counted as moving [position units per frame]; closing on an '
        'object stops it', range=(0.0, 10.0), read_only=True)
    motion_jump_threshold: float = option(
        0.05, "change of the arm's joint-velocity vector between two frames that counts as a "
        'jump (contact, a sudden stop) [rad per frame, L2]; 0 disables motion events',
        range=(0.0, 10.0), read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        if self.min_gap > self.stride:
            raise ValueError(f'QueryScheduleConfig: min_gap must be <= stride, got '
                             f'{self.min_gap} > {self.stride}')


class QueryScheduler:
    """Per-episode query decisions; call :meth:`reset` at every episode start."""

    def __init__(self, config: QueryScheduleConfig) -> None:
        self._config = config
        self._gripper_joints = tuple(config.gripper_joints)
        self.reset()

    def reset(self) -> None:
        self._last_query = 0
        self._pending_event: str | None = None
        self._previous: dict[str, float] | None = None
        self._previous_arm_velocity: np.ndarray | None = None
        self._gripper_moving = False

    def decide(self, step: int, joints: dict[str, float] | None = None) -> str | None:
        """Return why ``step`` is a query ('stride', 'gripper', 'motion') or None.

        Step 0 is never a query (its progress is 0 by definition). ``joints`` maps joint names
        to positions at this frame; without it only the stride applies.
        """
        event = self._event(joints) if joints else None
        if step == 0:
            return None
        self._pending_event = event or self._pending_event
        since = step - self._last_query
        if since >= self._config.stride:
            reason = 'stride'
        elif self._pending_event is not None and since >= self._config.min_gap:
            reason = self._pending_event
        else:
            return None
        self._last_query = step
        self._pending_event = None
        return reason

    def _event(self, joints: dict[str, float]) -> str | None:
        previous, self._previous = self._previous, dict(joints)
        if previous is None or previous.keys() != joints.keys():
            self._previous_arm_velocity = None
            return None
        event = None
        gripper = [n for n in joints if n in self._gripper_joints]
        if gripper:
            speed = max(abs(joints[n] - previous[n]) for n in gripper)
            moving = speed > self._config.gripper_speed_threshold
            if moving != self._gripper_moving:
                event = 'gripper'
            self._gripper_moving = moving
        arm = [n for n in joints if n not in self._gripper_joints]
        velocity = np.array([joints[n] - previous[n] for n in arm])
        if self._previous_arm_velocity is not None and self._config.motion_jump_threshold > 0:
            jump = float(np.linalg.norm(velocity - self._previous_arm_velocity))
            if jump > self._config.motion_jump_threshold and event is None:
                event = 'motion'
        self._previous_arm_velocity = velocity
        return event
