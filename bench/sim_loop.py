"""The learner's control loop around a simulator and a reward model called directly, no ROS.

``DirectSimRobot`` is ``rl.loop.Robot`` on a ``MetaWorldRobot`` (observe reads the newest
observation, send steps the simulator, lock-step like the sim node's 'on_command' mode);
``DirectRewarder`` is the camera node and the reward node in one object (the same query
schedule, the same tiles, the same ``RewardEngine``), labelling the learner straight away. The
benchmarks run ``rl.ControlLoop`` on these: the same loop the learner node runs, with its I/O
replaced by calls. Shared by ``bench_loop.py`` (the graph's speed limit) and ``bench_rl.py``.
"""
from typing import Callable

import numpy as np

from sole_r1_ros.camera import (
    decode_tile, encode_tile, QueryScheduleConfig, QueryScheduler, shrink_to_tile)
from sole_r1_ros.reward import EpisodeTracker, RewardEngine
from sole_r1_ros.rl import (
    CommandConfig, ee_command, hold_normalized, OnlineLearner, SafetyBox, Sensed)
from sole_r1_ros.rl.poses import checked_pose
from sole_r1_ros.sim import MetaWorldRobot

STEP_NS = 25_000_000   # frame stamps advance 25 ms per step (the demo's control period)


class DirectSimRobot:
    """``rl.loop.Robot`` on a simulator in this thread; every command is one tick."""

    def __init__(self, robot: MetaWorldRobot, command: CommandConfig, box: SafetyBox,
                 period_s: float, state: str = 'proprio',
                 on_step: Callable[[str, int, object, object], None] | None = None,
                 reset_seed: Callable[[], int | None] = lambda: None) -> None:
        """Args:
            state: 'proprio' (joints + pose, as the node) or 'sim_state_privileged'.
            on_step: called with (episode id, '' between episodes; frame stamp [ns];
                observation; step info or None) after every tick and reset, as the camera
                node would see the frame.
        """
        self.robot, self._command, self._box = robot, command, box
        self._period_s, self._state, self._on_step = period_s, state, on_step
        self._reset_seed = reset_seed
        self._gripper = 0.0
        self.stamp_ns = 0
        self.episode = ''
        self.observation = robot.reset(seed=reset_seed())
        self.info = None

    def _tick(self, command: np.ndarray) -> None:
        self.observation, self.info = self.robot.step(command)
        self._published()

    def _published(self) -> None:
        self.stamp_ns += STEP_NS
        if self._on_step is not None:
            self._on_step(self.episode, self.stamp_ns, self.observation, self.info)

    def observe(self) -> Sensed:
        o = self.observation
        joints = np.concatenate([o.joint_positions, o.joint_velocities])
        pose = checked_pose(o.ee_position, o.ee_orientation)
        if self._state == 'sim_state_privileged':
            state = o.state
        else:
            state = np.concatenate([joints, pose.position, pose.orientation])
        return Sensed(self.stamp_ns, state.astype(np.float32),
                      {'external': o.external, 'wrist': o.wrist}, o.joint_positions, pose)

    def send(self, action: np.ndarray, sensed: Sensed) -> None:
        command = ee_command(action, sensed.pose, self._command, self._box, self._period_s)
        self._gripper = command.gripper
        self._tick(command.normalized)

    def hold(self) -> None:
        self._tick(hold_normalized(self._gripper))

    def reset(self) -> bool:
        self.observation, self.info = self.robot.reset(seed=self._reset_seed()), None
        self._published()
        return True

    def announce(self, episode_id: str, evaluation: bool = False,
                 since_ns: int | None = None) -> None:
        self.episode = episode_id

    def episode_finished(self, summary) -> None:
        pass


class DirectRewarder:
    """The camera node and the reward node for one robot, called once per simulator tick.

    Frames are shrunk and PNG-round-tripped like the camera node's tiles; queries follow the
    same ``QueryScheduler`` (stride, gripper and motion events) plus a final query at each
    episode's end; answers label the learner by episode id and stamp, as ``ProgressReward``
    messages would.
    """

    def __init__(self, engine: RewardEngine, goal: str, learner: OnlineLearner,
                 schedule: QueryScheduleConfig, tile_format: str = 'png') -> None:
        self._engine, self._goal, self._learner = engine, goal, learner
        self._schedule = QueryScheduler(schedule)
        self._format = tile_format
        self._episode = ''
        self._tracker: EpisodeTracker | None = None
        self._last: tuple | None = None   # (frames, stamp, step, queried)
        self._step = 0
        self.queries = 0

    def frame(self, episode_id: str, stamp_ns: int, observation, info=None) -> None:
        """One paired frame of episode ``episode_id`` ('' between episodes); fits
        ``DirectSimRobot``'s ``on_step``."""
        if episode_id != self._episode:
            self._close()
            self._episode, self._step = episode_id, 0
            self._tracker = EpisodeTracker(episode_id, self._goal) if episode_id else None
            self._schedule.reset()
        if self._tracker is None:
            return
        frames = (self._tile(observation.external), self._tile(observation.wrist))
        joints = dict(zip(observation.joint_names, observation.joint_positions.tolist()))
        reason = self._schedule.decide(self._step, joints)
        self._tracker.add_frame(*frames, step=self._step)
        if reason is not None:
            self._query(stamp_ns)
        self._last = (frames, stamp_ns, self._step, reason is not None)
        self._step += 1

    def _tile(self, frame: np.ndarray) -> np.ndarray:
        return decode_tile(encode_tile(shrink_to_tile(frame), self._format))

    def _query(self, stamp_ns: int) -> None:
        result = self._tracker.score(self._engine)
        self.queries += 1
        self._learner.label(self._episode, stamp_ns, float(result.progress))

    def _close(self) -> None:
        """The final query of an episode: its real last frame, if not already asked."""
        if self._tracker is not None and self._last and not self._last[3] and self._last[2]:
            self._query(self._last[1])
        self._last = None
