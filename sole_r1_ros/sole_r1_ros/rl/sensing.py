"""The newest robot observation, assembled from sensors that arrive on their own schedules.

Camera frames, joint states and the end-effector pose (and, for the privileged simulator
baseline only, the simulator state) arrive on different topics and threads. ``Sensors`` keeps
the newest of each under one lock and hands the control loop one consistent ``Sensed`` bundle:
the camera views of one moment (stamps within ``max_skew_s``) with proprioception that is fresh.
Each ``add_*`` checks its input and returns why it was rejected instead of raising (they run in
message callbacks); anything missing, rejected or older than its timeout makes ``take`` return
None with the reasons, so the loop holds the robot. No ROS here.

"Older" is judged two ways, and either makes an input stale: by when it *arrived* (a silent
sensor), and by its header *stamp* against the newest stamp of the other inputs (a message
delivered late, or the same TF transform looked up again after its publisher died: it arrives
now but says an old moment). The stamp check needs the sensors' stamps on one clock, as any
pairing of camera frames with joint states does; a source stamped on another clock (or not at
all) holds the robot with a reason that says so.
"""
import collections
from dataclasses import dataclass
import logging
import threading
import time
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.rl.poses import checked_pose, EePose, pose_problem, same_hemisphere

_LOG = logging.getLogger(__name__)

OBSERVATIONS = ('proprio', 'sim_state_privileged')
POSE_SIZE = 7   # x, y, z, qx, qy, qz, qw


_MAX_STALE_S = 5.0
'''The longest any input may be silent or behind before the robot holds: a limit a setting
cannot loosen (a camera at 1 Hz needs about 1 s).'''


@dataclass(frozen=True)
class SensingConfig:
    """What the policy observes and how fresh each input must be."""

    observation: str = option(
        'proprio', "'proprio': joint positions and velocities plus the end-effector pose, what "
        "a real arm publishes; 'sim_state_privileged': the simulator's state vector with object "
        'and goal poses, a privileged baseline for simulated checks only', choices=OBSERVATIONS,
        read_only=True)
    joint_names: tuple[str, ...] = option(
        ('right_j0', 'right_j1', 'right_j2', 'right_j3', 'right_j4', 'right_j5', 'right_j6',
         'r_close', 'l_close'), 'joints in proprioception order (read from joint_states by '
        'name)', read_only=True)
    views: tuple[str, ...] = option(('external', 'wrist'), 'camera views of one observation; '
                                    'the first one paces the actor', read_only=True)
    use_ee_pose: bool = option(True, 'the end-effector pose is part of the observation and '
                               'must be fresh (needed by end-effector commands)', read_only=True)
    max_skew_s: float = option(0.05, 'largest stamp difference of the views of one moment [s]: '
                               'half a frame period of cameras not synced in hardware (0.05 at '
                               '10 Hz)', range=(0.0, 1.0), read_only=True)
    proprio_wait_s: float = option(0.05, 'after the views of a moment, wait at most this long '
                                   'for joint states and pose at least as new as them [s]',
                                   range=(0.0, 1.0), read_only=True)
    camera_timeout_s: float = option(0.5, 'camera frames that arrived longer ago, or are '
                                     'stamped this much before the newest input, make the '
                                     'robot hold [s]', range=(0.001, _MAX_STALE_S))
    joint_timeout_s: float = option(0.5, 'joint states that arrived longer ago, or are stamped '
                                    'this much before the newest input, make the robot hold '
                                    '[s]', range=(0.001, _MAX_STALE_S))
    pose_timeout_s: float = option(0.5, 'an end-effector pose that arrived longer ago, or is '
                                   'stamped this much before the newest input, makes the '
                                   'robot hold [s]', range=(0.001, _MAX_STALE_S))
    quaternion_tolerance: float = option(1e-3, 'a pose whose quaternion norm is further from 1 '
                                         'is invalid and counts as stale (the one tolerance '
                                         'of the pose: the safety box reads this pose)',
                                         range=(0.0, 0.1))

    def __post_init__(self) -> None:
        validate(self)
        if not self.views:
            raise ValueError('SensingConfig.views must name at least one camera view')
        if not self.joint_names:
            raise ValueError('SensingConfig.joint_names must name at least one joint')

    def state_dim(self, sim_state_size: int | None = None) -> int:
        """Length of the state vector the policy gets."""
        if self.observation == 'sim_state_privileged':
            if sim_state_size is None:
                raise ValueError('the privileged baseline needs the simulator state size')
            return sim_state_size
        return 2 * len(self.joint_names) + (POSE_SIZE if self.use_ee_pose else 0)


class Sensed(NamedTuple):
    """One observation of the robot, as the control loop uses it."""

    stamp_ns: int
    '''Stamp of the first view's frame: the moment a reward will name.'''
    state: np.ndarray
    '''float32 state vector: joint positions, velocities, pose; or the simulator state.'''
    views: Mapping[str, np.ndarray]
    '''H x W x 3 uint8 RGB frames by view name.'''
    joint_positions: np.ndarray
    '''float64 joint positions in ``joint_names`` order (joint-space commands start here).'''
    pose: EePose | None
    '''The end-effector pose (None when ``use_ee_pose`` is off).'''
    pose_stamp_ns: int | None = None
    '''The pose's own stamp: a velocity command counts the motion sent since then.'''
    pose_arrived_s: float | None = None
    '''When the pose arrived, on ``time.monotonic``: its age when a command is sent is its
    least possible one, for a stamp ahead of this clock (another host's, skewed), which had
    counted no motion at all. An age taken with the moment missed the policy's inference.'''


class _Stamped(NamedTuple):
    stamp_ns: int
    arrived_s: float   # when this stamp first came
    value: object
    heard_s: float = 0.0   # when any message last came (the same stamp again included)


def _newer(old: '_Stamped | None', stamp_ns: int, now: float, value: object) -> _Stamped:
    """Return the stored input after a message; a repeated stamp keeps its first arrival.

    A repeat is not news: a TF lookup returns the last transform again and again.
    """
    stamp_ns = int(stamp_ns)
    if old is not None and old.stamp_ns == stamp_ns:
        return _Stamped(stamp_ns, old.arrived_s, value, now)
    return _Stamped(stamp_ns, now, value, now)


_FRAMES_KEPT = 8
'''Recent frames kept per view to pair views of one moment: a camera delivered later than
another (USB beside GigE, a compressed republish) is paired with the other's earlier frames.'''


class Sensors:
    """Newest sensor data under one lock; ``wait_ready``/``take`` give the loop whole moments."""

    def __init__(self, config: SensingConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._ready = threading.Condition()
        self._frames: dict[str, _Stamped] = {}
        self._recent: dict[str, collections.deque] = {}   # (stamp_ns, frame), newest last
        self._joints: _Stamped | None = None
        self._pose: _Stamped | None = None
        self._state: dict[int, np.ndarray] = {}
        self._taken_ns = -1
        self._orientation_reference: np.ndarray | None = None   # the first pose's quaternion
        self.rejected: dict[str, int] = {}
        self._refused: dict[str, tuple[int, str]] = {}   # by input: (count, last reason)
        self.clock_jumps = 0   # times the camera stamps went back past a camera timeout

    # -- inputs (message callbacks; they never raise) --------------------------------------
    def add_frame(self, view: str, stamp_ns: int, frame: np.ndarray) -> str | None:
        """Store a camera frame; returns why it was rejected, or None."""
        if view not in self.config.views:
            return None   # a view this policy does not use
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
                and frame.dtype == np.uint8 and frame.size):
            return self._reject(view, f'{view} frame must be H x W x 3 uint8')
        with self._ready:
            self._frames[view] = _newer(self._frames.get(view), stamp_ns, self._clock(), frame)
            self._recent.setdefault(view, collections.deque(maxlen=_FRAMES_KEPT)).append(
                (int(stamp_ns), frame))
            if self._complete():
                self._ready.notify_all()
        return None

    def add_joints(self, stamp_ns: int, names: Sequence[str], positions: Sequence[float],
                   velocities: Sequence[float]) -> str | None:
        """Store joint states (matched by name; missing velocities count as 0)."""
        if len(positions) != len(names) or (velocities and len(velocities) != len(names)):
            return self._reject('joints', f'joint_states has {len(names)} names, '
                                f'{len(positions)} positions and {len(velocities)} velocities')
        lookup = dict(zip(names, positions))
        speeds = dict(zip(names, velocities)) if velocities else {}
        missing = [n for n in self.config.joint_names if n not in lookup]
        if missing:
            return self._reject('joints', f'joint_states lacks {missing}')
        try:
            values = np.array([lookup[n] for n in self.config.joint_names]
                              + [speeds.get(n, 0.0) for n in self.config.joint_names],
                              np.float64)
        except (TypeError, ValueError) as exc:
            return self._reject('joints', f'joint_states is not numeric: {exc}')
        if not np.all(np.isfinite(values)):
            return self._reject('joints', 'joint_states holds NaN or inf')
        with self._ready:
            self._joints = _newer(self._joints, stamp_ns, self._clock(), values)
            self._ready.notify_all()
        return None

    def add_pose(self, stamp_ns: int, position: Sequence[float],
                 orientation: Sequence[float]) -> str | None:
        """Store the end-effector pose; an invalid one is rejected and so becomes stale."""
        problem = pose_problem(position, orientation, self.config.quaternion_tolerance)
        if problem:
            return self._reject('pose', f'end-effector pose rejected: {problem}')
        pose = checked_pose(position, orientation, self.config.quaternion_tolerance)
        with self._ready:
            self._pose = _newer(self._pose, stamp_ns, self._clock(), pose)
            self._ready.notify_all()
        return None

    def add_sim_state(self, stamp_ns: int, state: Sequence[float]) -> str | None:
        """Store the simulator state of one frame (the privileged baseline only)."""
        values = np.asarray(state, np.float64).reshape(-1)
        if not values.size or not np.all(np.isfinite(values)):
            return self._reject('sim_state', 'simulator state is empty or not finite')
        with self._ready:
            self._state[int(stamp_ns)] = values
            while len(self._state) > 8:
                self._state.pop(min(self._state))
            if self._complete():
                self._ready.notify_all()
        return None

    def note_rejection(self, source: str, reason: str) -> None:
        """A message of input ``source`` refused (``Firewall`` names: 'camera/<view>', ...).

        An input whose every message was refused said 'never received', and the person looked
        for a robot that was not up while the log blamed the pose's frame.
        """
        name = 'ee_pose' if source == 'tf' else source   # a tf lookup is the pose's source
        with self._ready:
            count = self._refused.get(name, (0, ''))[0]
            self._refused[name] = (count + 1, reason)

    def _reject(self, source: str, reason: str) -> str:
        with self._ready:
            self.rejected[source] = self.rejected.get(source, 0) + 1
        return reason

    # -- the control loop's side ----------------------------------------------------------
    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until a moment not yet taken has all its views (and state); True if so.

        Then wait a little (``proprio_wait_s``) for joint states and pose of that moment, which
        travel on other topics; after that the newest ones are used.
        """
        with self._ready:
            if not self._ready.wait_for(self._complete, timeout=timeout_s):
                return False
            self._ready.wait_for(self._proprio_synced, timeout=self.config.proprio_wait_s)
            return True

    def _proprio_synced(self) -> bool:
        first = self._frames[self.config.views[0]].stamp_ns - self.config.max_skew_s * 1e9
        joints_ok = (self.config.observation != 'proprio'
                     or (self._joints is not None and self._joints.stamp_ns >= first))
        pose_ok = (not self.config.use_ee_pose
                   or (self._pose is not None and self._pose.stamp_ns >= first))
        return joints_ok and pose_ok

    def clear_frames(self) -> None:
        """Forget frames: the ones from before an episode start belong to no episode."""
        with self._ready:
            self._frames.clear()
            self._recent.clear()
            self._state.clear()
            self._taken_ns = -1   # a simulator's time reset: frames stamped before the last

    def stale_sources(self) -> list[str]:
        """Inputs that are missing or older than their timeout, now."""
        return list(self.stale_reasons())

    def stale_reasons(self) -> dict[str, str]:
        """Say why each input is stale now, by source name; empty when all are fresh.

        Missing, silent for longer than its timeout, or stamped that much before the newest
        input.
        """
        now, c = self._clock(), self.config
        with self._ready:
            inputs = {f'camera/{v}': (self._frames.get(v), c.camera_timeout_s) for v in c.views}
            if c.observation == 'proprio':
                inputs['joint_states'] = (self._joints, c.joint_timeout_s)
            if c.use_ee_pose:
                inputs['ee_pose'] = (self._pose, c.pose_timeout_s)
        present = [(name, item) for name, (item, _) in inputs.items() if item is not None]
        newest_name, newest = max(present, key=lambda kv: kv[1].stamp_ns, default=(None, None))
        reasons = {}
        for name, (item, timeout_s) in inputs.items():
            if item is None:
                count, why = self._refused.get(name, (0, ''))
                reasons[name] = (f'{count} received, every one rejected: {why}' if count
                                 else 'never received')
                continue
            silent_s, behind_s = now - item.arrived_s, (newest.stamp_ns - item.stamp_ns) * 1e-9
            if silent_s > timeout_s and now - item.heard_s <= timeout_s:
                reasons[name] = (f'nothing new for {silent_s:.2f} s, though messages keep '
                                 f'coming: all stamped {item.stamp_ns * 1e-9:.3f} s (a driver '
                                 'that does not stamp them, or a tf lookup whose publisher '
                                 'stopped)')
            elif silent_s > timeout_s:
                reasons[name] = f'nothing new for {silent_s:.2f} s'
            elif behind_s > timeout_s:
                reasons[name] = (f'stamped {behind_s:.2f} s before {newest_name}: delivered '
                                 'late, or stamped on another clock (or not at all)')
        return reasons

    def measured(self, since_s: float = float('-inf')) -> tuple[np.ndarray | None, object]:
        """Joint positions and pose as measured now: what a hold keeps the arm at.

        Each is None when stale, or when it arrived before ``since_s`` (this clock's time).
        """
        now, c = self._clock(), self.config
        with self._ready:
            joints, pose = self._joints, self._pose

        def fresh(item: _Stamped | None, timeout_s: float) -> bool:
            return item is not None and item.arrived_s >= since_s and (
                now - item.arrived_s) <= timeout_s
        return ((joints.value[:len(c.joint_names)].copy()
                 if fresh(joints, c.joint_timeout_s) else None),
                pose.value if fresh(pose, c.pose_timeout_s) else None)

    @property
    def now_s(self) -> float:
        """This sensor store's clock (arrival times are on it)."""
        return self._clock()

    def unpaired_reason(self) -> str:
        """Why the newest views make no moment although each is fresh ('' when they do)."""
        c = self.config
        with self._ready:
            frames = [self._frames.get(view) for view in c.views]
        if len(frames) < 2 or any(frame is None for frame in frames):
            return ''
        apart_s = (max(f.stamp_ns for f in frames) - min(f.stamp_ns for f in frames)) * 1e-9
        if apart_s <= c.max_skew_s:
            return ''
        late = min(frames, key=lambda f: f.stamp_ns)
        return (f'the newest {" and ".join(c.views)} frames are {1e3 * apart_s:.0f} ms apart, '
                f'more than max_skew_s ({1e3 * c.max_skew_s:.0f} ms), and none of the last '
                f'{_FRAMES_KEPT} of each pair up: {c.views[frames.index(late)]} comes that much '
                'later or is stamped on another clock (cameras not synced in hardware need '
                'max_skew_s of about half a frame period)')

    def take(self) -> Sensed | None:
        """The newest complete moment, marked taken; None when something is stale or missing."""
        if self.stale_sources():
            return None
        c = self.config
        with self._ready:
            self._follow_a_clock_jump()
            moment = self._moment()
            if moment is None:
                return None
            first_ns, views = moment
            self._taken_ns = first_ns
            joints = (self._joints.value if self._joints is not None
                      else np.zeros(2 * len(c.joint_names)))
            pose = self._pose.value if (c.use_ee_pose and self._pose is not None) else None
            pose_stamp_ns = self._pose.stamp_ns if pose is not None else None
            pose_arrived_s = (time.monotonic() - (self._clock() - self._pose.arrived_s)
                              if pose is not None else None)
            if c.observation == 'sim_state_privileged':
                state = self._state[first_ns]
            else:
                parts = [joints]
                if pose is not None:   # the quaternion's sign kept continuous (poses.py)
                    orientation = same_hemisphere(pose.orientation, self._orientation_reference)
                    if self._orientation_reference is None:
                        self._orientation_reference = orientation
                    parts += [pose.position, orientation]
                state = np.concatenate(parts)
        return Sensed(first_ns, state.astype(np.float32), views,
                      joints[:len(c.joint_names)].copy(), pose, pose_stamp_ns, pose_arrived_s)

    def _follow_a_clock_jump(self) -> None:
        """Take frames again after the stamps went back in time (call under the lock).

        A simulator restarted under sim time, a looped bag or a stepped clock stamps the new
        frames before the last one taken: none was ever newer again, and the arm held for as
        long as the jump (hours) with no stale input to say why.
        """
        recent = self._recent.get(self.config.views[0])
        if not recent:
            return
        back_s = (self._taken_ns - recent[-1][0]) * 1e-9
        if back_s > self.config.camera_timeout_s:
            self.clock_jumps += 1
            _LOG.warning('the camera stamps went back %.1f s (a simulator restarted, a bag '
                         'looped, the clock stepped): taking frames from the new time on',
                         back_s)
            self._taken_ns = -1

    def _complete(self) -> bool:
        """Views of one moment, newer than the last taken (call under the lock)."""
        self._follow_a_clock_jump()
        return self._moment() is not None

    def _moment(self) -> tuple[int, dict[str, np.ndarray]] | None:
        """The newest moment not yet taken: the first view's stamp and a frame of each view.

        The first view's newest frame with, in every other view's recent frames, one within
        ``max_skew_s`` (the nearest). Call under the lock.
        """
        c = self.config
        skew_ns = c.max_skew_s * 1e9
        for stamp_ns, frame in reversed(self._recent.get(c.views[0], ())):
            if stamp_ns <= self._taken_ns:
                return None
            if c.observation == 'sim_state_privileged' and stamp_ns not in self._state:
                continue
            views = {c.views[0]: frame}
            for view in c.views[1:]:
                near = min(self._recent.get(view, ()), default=None,
                           key=lambda item: abs(item[0] - stamp_ns))
                if near is None or abs(near[0] - stamp_ns) > skew_ns:
                    break
                views[view] = near[1]
            else:
                return stamp_ns, views
        return None
