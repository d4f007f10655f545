"""Decide which frames are reward queries: a fixed stride plus the robot's own event signals.

A fixed stride alone misses brief events (a grasp, a click) between queries, which the SOLE-R1
paper names as its main failure mode. The robot knows when such things happen: the gripper
starts or stops moving, or the arm's joint velocities jump (contact, a stop). Those frames are
queried too, at most once every ``min_gap`` frames so a burst of events cannot flood the model.

Frames are counted at the robot's control rate: a camera faster than the learner (30 or 60 Hz
under a 10 Hz arm) is thinned to ``frame_rate_hz`` first, or every count and threshold below
would mean a third or a sixth of the time it says, and the reward load three to six times it.
"""
from collections import deque
from dataclasses import dataclass

import numpy as np

from sole_r1_ros.configuration import option, validate


@dataclass(frozen=True)
class QueryScheduleConfig:
    """When to query the reward model, in frames of the paired camera stream."""

    frame_rate_hz: float = option(
        0.0, "thin the paired frames to this rate before counting them: the learner's "
        'control_rate_hz on a robot whose cameras run faster (stride, min_gap and the '
        'thresholds below are per frame of the thinned stream); 0 counts every paired frame '
        '(a simulator that renders once per control step)', range=(0.0, 1000.0),
        read_only=True)
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
    max_events_per_stride: int = option(
        0, 'most event queries (gripper, motion) between two stride queries; 0 = no limit. '
        "An exploring policy's jerky motion made events of nearly every frame: queries at "
        '1/min_gap, five times the stride, which saturated a SOLE-R1 server', range=(0, 10**6),
        read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        if self.min_gap > self.stride:
            raise ValueError(f'QueryScheduleConfig: min_gap must be <= stride, got '
                             f'{self.min_gap} > {self.stride}')


class FrameThinner:
    """Keep frames at ``rate_hz`` on average, by their stamps (0 keeps them all).

    Frames are due on a grid of ``1 / rate_hz``; one is kept from half a camera period before
    it is due (the camera's period: the median of its recent intervals), so a 30 Hz camera
    keeps every third frame, one at the control rate keeps every frame through its jitter,
    and a gap in the stream restarts the grid instead of making a burst after it.
    """

    def __init__(self, rate_hz: float) -> None:
        self._period_ns = int(round(1e9 / rate_hz)) if rate_hz > 0 else 0
        self._intervals: deque = deque(maxlen=16)
        self._last_ns: int | None = None
        self.thinned = 0   # frames left out, for /diagnostics
        self.reset()

    def reset(self) -> None:
        """A new episode: its first frame is kept."""
        self._due_ns: int | None = None

    def keep(self, stamp_ns: int) -> bool:
        if not self._period_ns:
            return True
        if self._last_ns is not None and 0 < stamp_ns - self._last_ns < 2 * self._period_ns:
            self._intervals.append(stamp_ns - self._last_ns)
        self._last_ns = stamp_ns
        camera_ns = int(np.median(self._intervals)) if self._intervals else self._period_ns // 2
        slack = min(self._period_ns, camera_ns) // 2
        if self._due_ns is not None and stamp_ns < self._due_ns - slack:
            self.thinned += 1
            return False
        due = stamp_ns if self._due_ns is None else self._due_ns
        self._due_ns = max(due, stamp_ns - slack) + self._period_ns
        return True


class QueryScheduler:
    """Per-episode query decisions; call :meth:`reset` at every episode start."""

    def __init__(self, config: QueryScheduleConfig) -> None:
        self._config = config
        self._gripper_joints = tuple(config.gripper_joints)
        self.reset()

    def reset(self) -> None:
        self._last_query = 0
        self._events_since_stride = 0
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
        cap = self._config.max_events_per_stride
        if since >= self._config.stride:
            reason = 'stride'
            self._events_since_stride = 0
        elif (self._pending_event is not None and since >= self._config.min_gap
              and (not cap or self._events_since_stride < cap)):
            reason = self._pending_event
            self._events_since_stride += 1
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
