"""Learn a policy online from late progress rewards, and drive the robot safely meanwhile.

Subscribes ``joint_states``, ``camera/external/image_raw`` (+ wrist for pixels), ``ground_truth``
(simulator only) and ``sole_r1/progress``; publishes commands on ``command_topic``
(Float64MultiArray or a one-point JointTrajectory) and ``episode``; serves ``~/reset``,
``~/pause`` and the ``~/evaluate`` action. An actor thread acts at the control rate and never
waits on rewards or learning; a learner thread runs DrQ-v2 updates; safety is applied last.
"""
import dataclasses
import threading
import time
import uuid

import numpy as np
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import Node as LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from sole_r1_interfaces.action import Evaluate
from sole_r1_interfaces.msg import Episode, ProgressReward, TaskState
from sole_r1_ros.nodes.conversions import image_to_rgb, ImageConversionError
from sole_r1_ros.nodes.learner_core import OnlineLearner, proprio_state
from sole_r1_ros.nodes.learner_episodes import EpisodeClock, Evaluation
from sole_r1_ros.configuration import from_mapping
from sole_r1_ros.nodes.params import declare, Param
from sole_r1_ros.nodes.spin import run_node
from sole_r1_ros.rl import (
    DrQConfig, EeDeltaAdapter, JointTargetAdapter, prepare_observation,
    ReplayConfig, StaleWatchdog)

_SIM_JOINTS = ['right_j0', 'right_j1', 'right_j2', 'right_j3', 'right_j4', 'right_j5',
               'right_j6', 'r_close', 'l_close']
PARAMS = [
    Param('observation', 'joint_states', "'joint_states' (proprioception) or 'sim_state' "
          '(the simulator state vector, for simulated checks only)', read_only=True),
    Param('joint_names', _SIM_JOINTS, 'joints in proprioception / command order',
          read_only=True),
    Param('action_layout', 'ee_delta', "'ee_delta' (dx, dy, dz, gripper) or 'joint_position'",
          read_only=True),
    Param('command_type', 'float64_multiarray', "'float64_multiarray' (forward command "
          "controller) or 'joint_trajectory' (one point)", read_only=True),
    Param('command_topic', 'forward_command_controller/commands', 'where commands go',
          read_only=True),
    Param('joint_lower', [-3.0] * 9, 'joint position limits [rad or m]', read_only=True),
    Param('joint_upper', [3.0] * 9, 'joint position limits [rad or m]', read_only=True),
    Param('max_joint_step', 0.05, 'target offset for an action of 1 [rad/step]', (0.0, 1.0),
          read_only=True),
    Param('max_joint_rate', 0.05, 'largest target change per step [rad/step]', (0.0, 1.0),
          read_only=True),
    Param('workspace_lower', [-0.5, 0.35, 0.05], 'end-effector safety box [m]', read_only=True),
    Param('workspace_upper', [0.5, 0.95, 0.35], 'end-effector safety box [m]', read_only=True),
    Param('control_rate_hz', 10.0, 'actor rate [Hz]', (0.5, 200.0), read_only=True),
    Param('episode_length', 100, 'steps per episode', (2, 100000)),
    Param('camera_timeout_s', 0.5, 'older camera frames stop the robot [s]', (0.01, 60.0)),
    Param('joint_timeout_s', 0.5, 'older joint states stop the robot [s]', (0.01, 60.0)),
    Param('reward_timeout_s', 30.0, 'learning pauses when no reward came for this long [s]',
          (0.1, 3600.0)),
    Param('reset_service', 'sim_robot_node/reset',
          "Trigger service that resets the robot ('' = none)", read_only=True),
    Param('run_dir', 'runs/learner', 'checkpoints and logs go here', read_only=True),
    Param('checkpoint_every_s', 60.0, 'seconds between checkpoints', (1.0, 86400.0)),
    Param('resume', True, 'continue from the newest valid checkpoint in run_dir',
          read_only=True),
    Param('updates_per_round', 8, 'most updates per learner-thread round', (1, 1000)),
    Param('autostart', True, 'configure and activate at start (launch files drive the '
          'lifecycle themselves and set this false)', read_only=True),
]


def _dataclass_params(prefix: str, cls) -> list[Param]:
    params = []
    for field in dataclasses.fields(cls):
        default = field.default
        if isinstance(default, tuple):
            default = list(default)
        params.append(Param(f'{prefix}.{field.name}', default, f'{cls.__name__}.{field.name}',
                            read_only=True))
    return params


AGENT_PARAMS = _dataclass_params('agent', DrQConfig)
REPLAY_PARAMS = _dataclass_params('replay', ReplayConfig)
ALL_PARAMS = PARAMS + AGENT_PARAMS + REPLAY_PARAMS
_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
_NOT_YET = object()   # observations of one moment are still arriving


class LearnerNode(LifecycleNode):
    """Actor + learner threads around an ``OnlineLearner``; commands stop when inactive."""

    def __init__(self, **kwargs) -> None:
        super().__init__('learner_node', **kwargs)
        self._p = declare(self, ALL_PARAMS)
        self.learner: OnlineLearner | None = None
        self._lock = threading.Lock()
        self._joints: JointState | None = None
        self._truth: TaskState | None = None
        self._images: dict[str, tuple[int, np.ndarray]] = {}
        self._new_frame = threading.Event()
        self._running = threading.Event()
        self._paused = threading.Event()
        self._threads: list[threading.Thread] = []
        self._episode_clock = EpisodeClock()
        self._evaluation: Evaluation | None = None
        self._last_reward_s = time.monotonic()
        self._previous_command: np.ndarray | None = None
        self._command_pub = self._episode_pub = None
        self._metrics = None

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        p = self._p
        try:
            agent_config = from_mapping(DrQConfig, self._section(AGENT_PARAMS))
            replay_config = from_mapping(ReplayConfig, self._section(REPLAY_PARAMS))
            self._adapter = self._make_adapter()
            state_dim = 39 if p['observation'] == 'sim_state' else 2 * len(p['joint_names'])
            self.learner = OnlineLearner(
                agent_config, replay_config, state_dim, self._action_dim(),
                checkpoint_dir=f"{p['run_dir']}/checkpoints",
                stamp_tolerance_s=0.5 / p['control_rate_hz'])
        except (ValueError, ImportError) as exc:
            self.get_logger().error(f'cannot configure the learner: {exc}')
            return TransitionCallbackReturn.FAILURE
        if p['resume'] and self.learner.resume():
            self.get_logger().info(f'resumed from checkpoint: {self.learner.counters()}')
        from sole_r1_ros.rl import MetricsLogger
        self._metrics = MetricsLogger(f"{p['run_dir']}/logs")
        self._watchdog = StaleWatchdog(
            {'joints': self._param('joint_timeout_s'), 'camera': self._param('camera_timeout_s')})
        self._create_entities()
        return TransitionCallbackReturn.SUCCESS

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _section(self, params: list[Param]) -> dict:
        return {p.name.split('.', 1)[1]: self._param(p.name) for p in params}

    def _action_dim(self) -> int:
        return 4 if self._p['action_layout'] == 'ee_delta' else len(self._p['joint_names'])

    def _make_adapter(self):
        p = self._p
        if p['action_layout'] == 'ee_delta':
            return EeDeltaAdapter(tuple(p['workspace_lower']), tuple(p['workspace_upper']))
        if p['action_layout'] == 'joint_position':
            return JointTargetAdapter(tuple(p['joint_names']), tuple(p['joint_lower']),
                                      tuple(p['joint_upper']), p['max_joint_step'],
                                      p['max_joint_rate'])
        raise ValueError(f"action_layout must be 'ee_delta' or 'joint_position', "
                         f"got {p['action_layout']!r}")

    def _create_entities(self) -> None:
        p = self._p
        msg_type = {'float64_multiarray': Float64MultiArray,
                    'joint_trajectory': JointTrajectory}[p['command_type']]
        self._command_pub = self.create_publisher(msg_type, p['command_topic'], 10)
        self._episode_pub = self.create_publisher(Episode, 'episode', _LATCHED)
        self.create_subscription(JointState, 'joint_states', self._joint_states_callback, 10)
        self.create_subscription(TaskState, 'ground_truth', self._ground_truth_callback, 10)
        self.create_subscription(Image, 'camera/external/image_raw',
                                 lambda m: self._image_callback('external', m),
                                 qos_profile_sensor_data)
        if self.learner.agent.config.variant == 'pixels':
            self.create_subscription(Image, 'camera/wrist/image_raw',
                                     lambda m: self._image_callback('wrist', m),
                                     qos_profile_sensor_data)
        self.create_subscription(ProgressReward, 'sole_r1/progress', self._progress_callback,
                                 50)
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, '~/reset', self._reset_callback, callback_group=services)
        self.create_service(SetBool, '~/pause', self._pause_callback, callback_group=services)
        self._reset_client = (self.create_client(Trigger, p['reset_service'],
                                                 callback_group=ReentrantCallbackGroup())
                              if p['reset_service'] else None)
        ActionServer(self, Evaluate, '~/evaluate', execute_callback=self._evaluate_callback,
                     cancel_callback=lambda goal: CancelResponse.ACCEPT,
                     callback_group=ReentrantCallbackGroup())

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._running.set()
        self._threads = [threading.Thread(target=self._act_loop, name='actor', daemon=True),
                         threading.Thread(target=self._learn_loop, name='learner', daemon=True)]
        for thread in self._threads:
            thread.start()
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_threads()
        self._hold()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._stop_threads()
        self.save_checkpoint()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_threads()
        self._hold()
        self.save_checkpoint()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._stop_threads()
        if self._metrics is not None:
            self._metrics.close()
        super().destroy_node()

    def _stop_threads(self) -> None:
        self._running.clear()
        self._new_frame.set()
        for thread in self._threads:
            thread.join(timeout=10.0)
        self._threads = []

    def save_checkpoint(self) -> None:
        if self.learner is not None:
            path = self.learner.save()
            if path is not None:
                self.get_logger().info(f'checkpoint {path}')

    # -- inputs -------------------------------------------------------------------------------
    def _joint_states_callback(self, msg: JointState) -> None:
        self._joints = msg
        self._watchdog.touch('joints', time.monotonic())

    def _ground_truth_callback(self, msg: TaskState) -> None:
        self._truth = msg
        evaluation = self._evaluation
        if evaluation is not None:
            evaluation.saw_ground_truth(msg.success)
        if self._p['observation'] == 'sim_state':
            self._new_frame.set()   # the simulator publishes its state after the frames

    def _image_callback(self, view: str, msg: Image) -> None:
        try:
            frame = image_to_rgb(msg)
        except ImageConversionError as exc:
            self.get_logger().error(f'skipping malformed {view} image: {exc}',
                                    throttle_duration_sec=2.0)
            return
        self._images[view] = (Time.from_msg(msg.header.stamp).nanoseconds, frame)
        if view == 'external':
            self._watchdog.touch('camera', time.monotonic())
            self._new_frame.set()

    def _progress_callback(self, msg: ProgressReward) -> None:
        self._last_reward_s = time.monotonic()
        stamp = Time.from_msg(msg.header.stamp).nanoseconds
        evaluation = self._evaluation
        if evaluation is not None:
            evaluation.saw_progress(msg.episode_id, msg.progress)
        outcome = self.learner.label(msg.episode_id, stamp, msg.progress)
        if outcome is not None:
            self._metrics.log(self.learner.env_steps, {'progress': msg.progress,
                                                       'reward_latency_s': msg.latency},
                              prefix='reward')

    def _reset_callback(self, request, response):
        self._episode_clock.request_reset()
        response.success, response.message = True, 'a new episode starts at the next step'
        return response

    def _pause_callback(self, request, response):
        if request.data:
            self._paused.set()
            self._hold()
        else:
            self._paused.clear()
        response.success, response.message = True, 'paused' if request.data else 'running'
        return response

    # -- actor --------------------------------------------------------------------------------
    def _observe(self):
        """(observation, frame stamp ns) from the newest messages, or None while stale."""
        if self._watchdog.is_stale(time.monotonic()) or 'external' not in self._images:
            return None
        stamp, _ = self._images['external']
        views = {k: v[1] for k, v in self._images.items()}
        if self._p['observation'] == 'sim_state':
            truth = self._truth
            if truth is None or len(truth.state) != 39:
                return None
            if Time.from_msg(truth.header.stamp).nanoseconds != stamp:
                return _NOT_YET   # state and frame of different moments: wait for the pair
            state = np.asarray(truth.state, np.float32)
        else:
            joints = self._joints
            state = proprio_state(list(joints.name), list(joints.position),
                                  list(joints.velocity), tuple(self._p['joint_names']))
        return prepare_observation(state, views, self.learner.agent.config), stamp

    def _act_loop(self) -> None:
        period = 1.0 / self._p['control_rate_hz']
        last_action = 0.0
        while self._running.is_set():
            timeout = min(self._param('camera_timeout_s'), self._param('joint_timeout_s'))
            self._new_frame.wait(timeout=timeout)
            self._new_frame.clear()
            if not self._running.is_set():
                break
            if time.monotonic() - last_action < 0.8 * period:
                continue   # a camera faster than the control rate: act on every k-th frame
            try:
                outcome = self._step()
                if outcome is _NOT_YET:
                    continue    # wait for the rest of this moment's observations
                if outcome is False:
                    self._hold()
                last_action = time.monotonic()
            except Exception as exc:  # never leave the robot moving on an error
                self._hold()
                self.get_logger().error(f'actor: {type(exc).__name__}: {exc}',
                                        throttle_duration_sec=2.0)

    def _step(self):
        """One control step: True acted, False must hold, _NOT_YET wait for more input."""
        if self._paused.is_set():
            return False
        if self._episode_clock.needs_new_episode(self.learner.step, self._param('episode_length')):
            self._finish_episode()
            self._begin_episode()
            return True
        observed = self._observe()
        if observed is _NOT_YET:
            return _NOT_YET
        if observed is None:
            self.get_logger().warning(f'stale observations {self._watchdog.stale_sources()}: '
                                      'holding', throttle_duration_sec=2.0)
            return False
        obs, stamp = observed
        evaluating = self._evaluation is not None
        action = self.learner.agent.act(obs, explore=not evaluating)
        if self.learner.step >= self._param('episode_length'):
            self.learner.record(obs, None, stamp) if not evaluating else None
            self._episode_clock.episode_over()
            return False
        if not evaluating:
            self.learner.record(obs, action, stamp)
        else:
            self.learner.step += 1
        self._publish_command(action)
        return True

    def _publish_episode(self, name: str) -> None:
        msg = Episode(episode_id=name)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._episode_pub.publish(msg)

    def _begin_episode(self) -> None:
        """End the running episode, reset the robot, start the next one.

        The end is announced before the reset, so frames of the reset itself belong to no
        episode and the camera node's last query of an episode shows its real last frame.
        """
        self._publish_episode('')
        self._hold()
        if self._reset_client is not None:
            if not self._reset_client.wait_for_service(timeout_sec=5.0):
                self.get_logger().error('reset service unavailable; continuing without reset')
            else:
                future = self._reset_client.call_async(Trigger.Request())
                deadline = time.monotonic() + 30.0
                while not future.done() and time.monotonic() < deadline:
                    time.sleep(0.01)
        name = f'episode-{uuid.uuid4().hex[:8]}'
        self._publish_episode(name)
        self._images.clear()      # frames from before this moment belong to no episode
        self._previous_command = None
        self._hold()              # a lock-step simulator renders the first frame on a command
        if self._evaluation is not None:
            self._evaluation.episode_started(name)
            self.learner.episode_name, self.learner.step = name, 0
        else:
            self.learner.start_episode(name)
        self._episode_clock.episode_started()

    def _finish_episode(self) -> None:
        if self.learner.episode_name is None:
            return
        if self._evaluation is not None:
            self._evaluation.episode_finished()
        elif self.learner.step > 0:
            stats = self.learner.stats()
            self._metrics.log(self.learner.env_steps, {
                'episodes': stats['episodes_done'], 'labelled_share': stats['labelled_share'],
                'updates': stats['updates'], 'pending': stats['pending']}, prefix='episode')

    def _publish_command(self, action: np.ndarray) -> None:
        if self._p['action_layout'] == 'ee_delta':
            ee = np.asarray(self._truth.state[:3]) if self._truth is not None else None
            if ee is None or len(ee) != 3:
                command = np.clip(action, -1.0, 1.0)   # no pose known: limits only
            else:
                command = self._adapter.command(action, ee, self._previous_command)
        else:
            joints = self._joints
            current = self._adapter.positions_in_order(list(joints.name), list(joints.position))
            command = self._adapter.command(action, current, self._previous_command)
        self._previous_command = command
        self._send(command)

    def _send(self, values: np.ndarray) -> None:
        if self._command_pub is None:
            return
        if self._p['command_type'] == 'joint_trajectory':
            msg = JointTrajectory(joint_names=list(self._p['joint_names']))
            point = JointTrajectoryPoint(positions=[float(v) for v in values])
            point.time_from_start.nanosec = int(1e9 / self._p['control_rate_hz'])
            msg.points = [point]
        else:
            msg = Float64MultiArray(data=[float(v) for v in values])
        self._command_pub.publish(msg)

    def _hold(self) -> None:
        """Command no motion: zero deltas, or the current joint positions."""
        try:
            if self._p['action_layout'] == 'ee_delta':
                self._send(np.zeros(4))
            elif self._joints is not None:
                self._send(self._adapter.positions_in_order(list(self._joints.name),
                                                            list(self._joints.position)))
        except (ValueError, AttributeError) as exc:
            self.get_logger().error(f'cannot hold: {exc}', throttle_duration_sec=2.0)

    # -- learner ------------------------------------------------------------------------------
    def _learn_loop(self) -> None:
        last_checkpoint, last_logged = time.monotonic(), -50
        while self._running.is_set():
            if self._paused.is_set() or self._evaluation is not None:
                time.sleep(0.1)
                continue
            if time.monotonic() - self._last_reward_s > self._param('reward_timeout_s'):
                self.get_logger().warning('no progress rewards lately: learning paused',
                                          throttle_duration_sec=10.0)
                time.sleep(0.2)
                continue
            metrics = self.learner.learn(self._param('updates_per_round'))
            if metrics is None:
                time.sleep(0.05)
            elif self.learner.agent.updates >= last_logged + 50:
                last_logged = self.learner.agent.updates
                self._metrics.log(last_logged, metrics, prefix='train')
            if time.monotonic() - last_checkpoint > self._param('checkpoint_every_s'):
                self.save_checkpoint()
                last_checkpoint = time.monotonic()

    # -- evaluation ---------------------------------------------------------------------------
    def _evaluate_callback(self, goal_handle):
        request = goal_handle.request
        episodes = max(1, int(request.episodes))
        evaluation = Evaluation(threshold=float(request.progress_threshold or 90.0))
        self._evaluation = evaluation
        self._episode_clock.request_reset()
        result = Evaluate.Result()
        try:
            while len(evaluation.finished) < episodes:
                if goal_handle.is_cancel_requested:
                    goal_handle.canceled()
                    return evaluation.result(Evaluate.Result)
                if not evaluation.wait_episode(timeout=0.5):
                    continue
                done = evaluation.finished[-1]
                goal_handle.publish_feedback(Evaluate.Feedback(
                    episode_index=len(evaluation.finished) - 1,
                    final_progress=done.final_progress, success_progress=done.success_progress,
                    success_ground_truth=done.success_ground_truth,
                    has_ground_truth=done.has_ground_truth, episode_return=done.episode_return))
            goal_handle.succeed()
            result = evaluation.result(Evaluate.Result)
        finally:
            self._evaluation = None
            self._episode_clock.request_reset()
        return result


def _stop_and_save(node: LearnerNode) -> None:
    node._stop_threads()
    node._hold()
    node.save_checkpoint()


def main(args: list[str] | None = None) -> None:
    run_node(LearnerNode, args, on_exit=_stop_and_save)


if __name__ == '__main__':
    main()
