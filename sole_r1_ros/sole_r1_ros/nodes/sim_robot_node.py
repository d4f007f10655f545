"""Simulated robot that looks like a ros2_control arm: cameras, joint states, a pose, commands.

Publishes ``camera/external/image_raw`` and ``camera/wrist/image_raw`` (rgb8, sensor-data QoS)
with their ``camera_info`` (the intrinsics, as a camera driver does),
``joint_states``, ``ee_pose`` (PoseStamped, as an arm driver would) and the privileged
``ground_truth`` (evaluation only). Takes end-effector commands in every form the learner
sends: ``forward_command_controller/commands`` (Float64MultiArray: dx, dy, dz, gripper),
``servo_node/delta_twist_cmds`` (TwistStamped, MoveIt Servo's) and ``target_pose``
(PoseStamped), with the gripper on ``gripper_controller/commands``; serves ``~/reset``.
With ``expert_joy_episodes`` > 0 it also publishes ``joy``: Meta-World's scripted expert as a
person on a SpaceMouse in some of the learner's training episodes, which it counts on
``episode`` (a simulated human, privileged: simulation only; evaluation episodes are left alone).
Physics and rendering run on one dedicated thread (GL contexts are thread-bound).
"""
from dataclasses import dataclass
import dataclasses
import os
import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
import numpy as np
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState, Joy
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from sole_r1_interfaces.msg import Episode, TaskState
from sole_r1_ros.camera.pinhole import PinholeCamera
from sole_r1_ros.configuration import option, validate
from sole_r1_ros.image_msgs import array_to_image
from sole_r1_ros.nodes.firewall import Firewall, status_message
from sole_r1_ros.nodes.params import NodeConfigs
from sole_r1_ros.nodes.spin import run_node
from sole_r1_ros.sim import (
    clamp_command, command_from_pose, command_from_twist, COMMAND_LAYOUT,
    gripper_from_position, MetaWorldRobot, SimConfig)
from sole_r1_ros.sim.simulated_human import SimulatedHuman


@dataclass(frozen=True)
class SimRobotNodeConfig:
    """The node's stepping and command settings (the robot itself: ``SimConfig``)."""

    rate_hz: float = option(10.0, 'control rate: one physics tick per period [Hz]',
                            range=(0.1, 1000.0), read_only=True)
    camera_every_n_ticks: int = option(1, 'render and publish the cameras every N ticks',
                                       range=(1, 1000))
    step_mode: str = option('realtime', "'realtime': fixed-rate ticks, as a driver's "
                            'controllers run: a delta array moves the hand once, a twist is a '
                            'velocity kept until command_timeout_s, a target pose a set point '
                            "kept until replaced, no command = hold still; 'on_command': one "
                            'tick per command (faster than real time, for simulated learning)',
                            choices=('realtime', 'on_command'), read_only=True)
    command_timeout_s: float = option(
        0.15, "'realtime': a twist is acted on every tick until a new command comes or it is "
        "this old (MoveIt Servo's incoming_command_timeout), then the arm holds",
        range=(0.0, 10.0))
    fixed_reset: bool = option(False, 'reset to the same task variation every time',
                               read_only=True)
    command_limit: float = option(1.0, 'commands are clamped to [-limit, limit] per element',
                                  range=(0.01, 1.0))
    frame_id: str = option('world', 'frame of ee_pose and of pose / twist commands',
                           read_only=True)
    gripper_open_position: float = option(0.04, 'gripper position command meaning open '
                                          '(gripper_controller/commands)', range=(-10.0, 10.0))
    gripper_closed_position: float = option(0.0, 'gripper position command meaning closed',
                                            range=(-10.0, 10.0))
    expert_joy_episodes: int = option(
        0, "simulated human (sim.simulated_human): Meta-World's scripted expert takes over N "
        "of the learner's training episodes (counted on episode; evaluation episodes are "
        'left alone) through sensor_msgs/Joy on joy, as a person on a SpaceMouse would, with '
        "the learner's default teleop mapping. It reads the hidden state: simulation only. "
        'The learner needs teleop: true', range=(0, 1000000), read_only=True)
    expert_joy_every: int = option(1, 'the simulated human drives training episodes 1, 1 + K, '
                                   '1 + 2K, ... (1: the first N in a row)', range=(1, 1000000),
                                   read_only=True)
    publish_ground_truth: bool = option(
        True, "publish the simulator's progress, success and state on ground_truth (for "
        'evaluation and the oracle reward; off: the graph has exactly what a real arm has)',
        read_only=True)
    publish_robot_masks: bool = option(
        False, "also publish each camera's mask of the robot on camera/<view>/robot_mask "
        "(mono8, 255 on the robot, the picture's stamp and frame): what a self-filter gives "
        'a real arm, for a camera node that erases the robot (its erase_robot)', read_only=True)
    publish_depth: bool = option(
        False, "also publish each camera's depth image on camera/<view>/depth/image_raw "
        "(32FC1 metres, aligned to the picture, its stamp and frame): an RGB-D camera's, for "
        'a self-filter that leaves what stands in front of the robot out of its mask '
        "(robot_mask_node's use_depth)", read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        if self.gripper_open_position == self.gripper_closed_position:
            # every gripper command was then refused, one by one, at run time
            raise ValueError(f'gripper_open_position and gripper_closed_position must differ, '
                             f'both are {self.gripper_open_position}')


SECTIONS = {'node': (SimRobotNodeConfig, ''), 'sim': (SimConfig, '')}
_CAMERA_FRAMES = ('external_camera', 'wrist_camera')   # frame ids: external, wrist pictures


class SimRobotNode(Node):
    """Meta-World robot behind the topics of a ros2_control arm."""

    def __init__(self, **kwargs) -> None:
        super().__init__('sim_robot_node', **kwargs)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None   # before anything that may raise
        self._configs = NodeConfigs(self, SECTIONS)
        self.firewall = Firewall(self)
        self._lock = threading.Lock()
        self._command: tuple[str, object] | None = None
        self._gripper = 0.0
        self._reset_requests: list[threading.Event] = []
        self._stopped = False   # the physics thread has ended
        self._running = True
        self._episode = 0
        self._ticks = 0
        self._past_end = False   # this episode ran past max_episode_steps
        self._last_gripper = 0.0   # of the last action applied (the simulated human's view)
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._create_entities()
        self._thread = threading.Thread(target=self._sim_loop, name='sim_physics', daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=60.0) or self._start_error is not None:
            raise RuntimeError(f'simulator failed to start: {self._start_error}')
        c, sim = self._configs['node'], self._configs['sim']
        self.get_logger().info(f'simulating {sim.task} at {c.rate_hz} Hz '
                               f'({c.step_mode}), command layout {list(COMMAND_LAYOUT)}')
        if abs(sim.control_period_s * c.rate_hz - 1.0) > 1e-6:
            repeat = 1.0 / (c.rate_hz * sim.control_period_s / sim.action_repeat)
            whole = abs(repeat - round(repeat)) < 1e-6 and 1 <= round(repeat) <= 20
            self.get_logger().warning(
                f'one tick simulates {1e3 * sim.control_period_s:g} ms (action_repeat '
                f'{sim.action_repeat}) but stands for {1e3 / c.rate_hz:g} ms (rate_hz '
                f'{c.rate_hz:g}): the simulated world runs {c.rate_hz * sim.control_period_s:.2g} '
                'times as fast as its stamps and twists say, and joint velocities disagree '
                'with the positions over the stamps. Set '
                + (f'action_repeat to {round(repeat)} or ' if whole else '')
                + f'rate_hz to {1.0 / sim.control_period_s:g}')

    def _create_entities(self) -> None:
        guard, sensor = self.firewall.guard, qos_profile_sensor_data
        self._external_pub = self.create_publisher(Image, 'camera/external/image_raw', sensor)
        self._wrist_pub = self.create_publisher(Image, 'camera/wrist/image_raw', sensor)
        views = ('external', 'wrist')
        self._info_pubs = tuple(self.create_publisher(CameraInfo, f'camera/{view}/camera_info',
                                                      sensor) for view in views)
        self._camera_infos: tuple[CameraInfo, ...] = ()
        self._mask_pubs = tuple(
            self.create_publisher(Image, f'camera/{view}/robot_mask', sensor) for view in views
        ) if self._configs['node'].publish_robot_masks else None
        self._depth_pubs = tuple(
            self.create_publisher(Image, f'camera/{view}/depth/image_raw', sensor)
            for view in views) if self._configs['node'].publish_depth else None
        self._joint_pub = self.create_publisher(JointState, 'joint_states', 10)
        self._pose_pub = self.create_publisher(PoseStamped, 'ee_pose', 10)
        self._truth_pub = (self.create_publisher(TaskState, 'ground_truth', 10)
                           if self._configs['node'].publish_ground_truth else None)
        self._status_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        c = self._configs['node']
        self._human = (SimulatedHuman(c.expert_joy_episodes, c.expert_joy_every)
                       if c.expert_joy_episodes else None)
        self._joy_pub = None
        if self._human is not None:
            self._joy_pub = self.create_publisher(Joy, 'joy', 10)
            self.create_subscription(Episode, 'episode', guard('episode', self._episode_callback),
                                     10)
        self.create_subscription(Float64MultiArray, 'forward_command_controller/commands',
                                 guard('commands', self._commands_callback), 10)
        self.create_subscription(TwistStamped, 'servo_node/delta_twist_cmds',
                                 guard('twist', self._twist_callback), 10)
        self.create_subscription(PoseStamped, 'target_pose',
                                 guard('target_pose', self._pose_callback), 10)
        self.create_subscription(Float64MultiArray, 'gripper_controller/commands',
                                 guard('gripper', self._gripper_callback), 10)
        self.create_service(Trigger, '~/reset', guard('reset', self._reset_callback),
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0, guard('status', self._publish_status))

    # -- commands (checked here; converted on the sim thread, which knows the robot) ----------
    def _commands_callback(self, msg: Float64MultiArray) -> None:
        self._submit('array', clamp_command(np.asarray(msg.data, np.float64),
                                            self._configs['node'].command_limit))

    def _twist_callback(self, msg: TwistStamped) -> str | None:
        if msg.header.frame_id and msg.header.frame_id != self._configs['node'].frame_id:
            return f'twist in frame {msg.header.frame_id!r}, expected the robot frame'
        t = msg.twist
        self._submit('twist', command_from_twist(
            [t.linear.x, t.linear.y, t.linear.z], [t.angular.x, t.angular.y, t.angular.z],
            0.0, 1.0 / self._configs['node'].rate_hz, self._configs['sim'].action_repeat))
        return None

    def _pose_callback(self, msg: PoseStamped) -> str | None:
        if msg.header.frame_id and msg.header.frame_id != self._configs['node'].frame_id:
            return f'target pose in frame {msg.header.frame_id!r}, expected the robot frame'
        p, q = msg.pose.position, msg.pose.orientation
        target = np.array([p.x, p.y, p.z], np.float64)
        command_from_pose(target, target, [q.x, q.y, q.z, q.w])   # checks, before the sim
        self._submit('pose', (target, [q.x, q.y, q.z, q.w]))
        return None

    def _gripper_callback(self, msg: Float64MultiArray) -> None:
        if not msg.data:
            raise ValueError('empty gripper command')
        c = self._configs['node']
        value = gripper_from_position(float(np.mean(msg.data)), c.gripper_open_position,
                                      c.gripper_closed_position)
        with self._lock:
            self._gripper = value

    def _episode_callback(self, msg: Episode) -> None:
        with self._lock:   # the simulated human's schedule counts training episodes
            self._human.episode_started(msg.episode_id, msg.evaluation)

    def _submit(self, kind: str, value) -> None:
        with self._lock:
            self._command = (kind, value, time.monotonic())
        self._wake.set()

    @staticmethod
    def _taken(robot: MetaWorldRobot, observation, command: tuple) -> tuple:
        """A new command as the sim thread acts on it: a target pose becomes the mocap's.

        The target is where the *hand* should be, in the frame ``ee_pose`` reports; the mocap
        the hand follows sits a few millimetres away (gravity, contact). Read as the mocap's
        own set point, a hold at the measured pose moved the arm by that offset each time:
        2.5 cm of creep in 400 ticks.
        """
        kind, value, came_s = command
        if kind != 'pose':
            return command
        offset = robot.ee_target_position - np.asarray(observation.ee_position, np.float64)
        return 'mocap', (value[0] + offset, value[1]), came_s

    def _action(self, robot: MetaWorldRobot, held: tuple | None, new: bool
                ) -> tuple[np.ndarray, tuple | None]:
        """This tick's action, and the command the next tick acts on again (None: none).

        A delta array moves the hand once. In 'realtime', as a driver's controllers do, a
        twist is a velocity kept until ``command_timeout_s`` (one tick's worth per command, the
        arm moved at a quarter of the asked speed under twists at 10 Hz and ticks at 40 Hz),
        and a target pose a set point tracked until replaced (one tick's step towards it, a
        target 10 cm away moved the hand 1 cm). A ``new`` command is always acted on once,
        however long it waited for its tick. In 'on_command' each command is one tick.
        """
        c = self._configs['node']
        limit, repeat = c.command_limit, self._configs['sim'].action_repeat
        keep = held if c.step_mode == 'realtime' else None
        if not new and held is not None and held[0] == 'twist' and (
                time.monotonic() - held[2] > c.command_timeout_s):
            held = keep = None
        if held is None:
            return np.array([0.0, 0.0, 0.0, self._gripper]), None
        kind, value, _ = held
        if kind == 'array':
            with self._lock:   # the fingers keep this until told otherwise, as a driver does
                self._gripper = float(value[3])
            return value, None
        action = value if kind == 'twist' else command_from_pose(
            value[0], robot.ee_target_position, value[1], 0.0, repeat, limit)
        action = np.clip(action, -limit, limit)
        action[3] = self._gripper
        return action, keep

    def _reset_callback(self, request: Trigger.Request, response: Trigger.Response):
        done = threading.Event()
        with self._lock:
            if self._stopped:
                done.set()
            else:
                self._reset_requests.append(done)
        self._wake.set()
        response.success = done.wait(timeout=30.0) and not self._stopped
        response.message = (f'episode {self._episode}' if response.success
                            else 'the simulator stopped (see the log)' if self._stopped
                            else 'simulator did not reset within 30 s')
        return response

    def _publish_status(self) -> None:
        values = {'ticks': self._ticks, 'episode': self._episode,
                  **{f'rejected/{k}': v for k, v in self.firewall.rejected.items()}}
        if self._stopped:   # said where a runner looks, not only once in the log
            self._status_pub.publish(status_message(
                self, values, DiagnosticStatus.ERROR, 'the simulator stopped: restart the node '
                '(its log says why)'))
        elif self._past_end:
            self._status_pub.publish(status_message(
                self, values, DiagnosticStatus.WARN, f'episode {self._episode} ran past '
                f"max_episode_steps ({self._configs['sim'].max_episode_steps}) without a reset"))
        else:
            self._status_pub.publish(status_message(self, values))

    # -- the simulator thread -------------------------------------------------------------------
    def _sim_loop(self) -> None:
        """Own physics and rendering: every MuJoCo and GL call happens on this thread."""
        try:
            robot = MetaWorldRobot(self._configs['sim'])
            observation = robot.reset()
            self._camera_infos = tuple(_camera_info(camera) for camera, _ in
                                       robot.camera_calibrations())
        except BaseException as exc:  # reported to __init__, which raises
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while self._running:
                try:
                    self._run(robot, observation)
                    break
                except Exception as exc:  # noqa: BLE001 (never die silently: report, reset, go on)
                    self.firewall.reject('physics', f'{_where(exc)}; the simulator resets and '
                                         'goes on in a new episode')
                try:
                    observation = robot.reset()
                except Exception as exc:  # noqa: BLE001 (never throttled: said once, loudly)
                    self.get_logger().fatal(f'the simulator stops (restart the node): '
                                            f'{_where(exc)} in the reset after an error')
                    break
                # A new scene is a new episode: under the old number its ground truth jumped
                # back to step 0 with the objects elsewhere, mid-episode.
                self._new_episode()
        finally:
            with self._lock:   # nobody waits 30 s for a reset that will not come
                self._stopped = True
                resets, self._reset_requests = self._reset_requests, []
            for done in resets:
                done.set()
            robot.close()

    def _new_episode(self) -> None:
        """Count a new episode; its fingers start as at start-up, not as the last one left them."""
        with self._lock:
            self._gripper = 0.0
            self._episode += 1
        self._last_gripper = 0.0
        self._past_end = False

    def _run(self, robot: MetaWorldRobot, observation) -> None:
        c = self._configs['node']
        period, next_tick, tick, info = 1.0 / c.rate_hz, time.monotonic(), 0, None
        held = None   # the twist or target pose ticks act on until replaced ('realtime')
        beside = self._beside_pictures(robot)
        self._publish(robot, observation, info, tick, beside)
        while self._running and rclpy.ok(context=self.context):
            if c.step_mode == 'on_command':
                self._wake.wait(timeout=0.1)
                self._wake.clear()
            else:  # reset requests wait for the next tick too: at most one period
                next_tick = max(next_tick + period, time.monotonic() - period)
                time.sleep(max(0.0, next_tick - time.monotonic()))
            with self._lock:
                command, self._command = self._command, None
                resets, self._reset_requests = self._reset_requests, []
            if resets:
                seed = self._configs['sim'].seed if c.fixed_reset else None
                held = None
                try:
                    observation, info, tick = robot.reset(seed=seed), None, 0
                    beside = self._beside_pictures(robot)
                except BaseException:
                    with self._lock:   # answered by the next reset, after the recovery
                        self._reset_requests[:0] = resets
                    raise
                self._new_episode()
                for done in resets:
                    done.set()
            elif command is not None or c.step_mode == 'realtime':
                if command is not None:
                    held = self._taken(robot, observation, command)
                action, held = self._action(robot, held, new=command is not None)
                self._last_gripper = float(action[3])
                render = (tick + 1) % self._configs['node'].camera_every_n_ticks == 0
                new_observation, info = robot.step(action, render=render)
                observation = new_observation if render else dataclasses.replace(
                    new_observation, external=observation.external, wrist=observation.wrist)
                beside = self._beside_pictures(robot) if render else beside
                tick += 1
                self._ticks += 1
                if info.truncated and not self._past_end:
                    # A live robot does not freeze at a count; it ran on frozen, commands
                    # dropped, with nothing said, when a learner's episodes were the longer.
                    self._past_end = True
                    self.get_logger().warning(
                        f'episode {self._episode} has run past max_episode_steps '
                        f"({self._configs['sim'].max_episode_steps}) without a reset; the "
                        'simulator steps on. Raise sim max_episode_steps above the '
                        "learner's episode_length, or reset sooner")
            else:
                continue
            self._publish(robot, observation, info, tick, beside)

    def _beside_pictures(self, robot: MetaWorldRobot) -> list:
        """The robot's masks and depth images of the frames just rendered, those published.

        Returns:
            (publisher, image, encoding, frame id) per camera and kind.
        """
        beside = []
        for publishers, images, encoding in (
                (self._mask_pubs, robot.render_robot_masks, 'mono8'),
                (self._depth_pubs, robot.render_depths, '32FC1')):
            if publishers is not None:
                beside += [(publisher, image, encoding, frame) for publisher, image, frame
                           in zip(publishers, images(), _CAMERA_FRAMES)]
        return beside

    def _publish(self, robot, observation, info, tick: int, beside: list = ()) -> None:
        """Publish proprioception first, then the frames.

        A learner waiting for a frame then finds the joint states and pose of the same moment
        already there.
        """
        stamp = self.get_clock().now().to_msg()
        if self._human is not None:   # first: the learner reads it before the frame it acts on
            with self._lock:
                joy = (None if info is not None and info.truncated   # over: the expert lets go
                       else self._human.joy(robot, self._last_gripper))
            if joy is not None:
                msg = Joy(axes=joy[0], buttons=joy[1])
                msg.header.stamp = stamp
                self._joy_pub.publish(msg)
        joints = JointState(name=list(observation.joint_names),
                            position=observation.joint_positions.tolist(),
                            velocity=observation.joint_velocities.tolist())
        joints.header.stamp = stamp
        self._joint_pub.publish(joints)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self._configs['node'].frame_id
        p, q = pose.pose.position, pose.pose.orientation
        p.x, p.y, p.z = map(float, observation.ee_position)
        q.x, q.y, q.z, q.w = map(float, observation.ee_orientation)
        self._pose_pub.publish(pose)
        if tick % self._configs['node'].camera_every_n_ticks == 0:
            for array, publisher, frame, camera_info, info_pub in zip(
                    (observation.external, observation.wrist),
                    (self._external_pub, self._wrist_pub), _CAMERA_FRAMES,
                    self._camera_infos, self._info_pubs):
                if array is not None:
                    msg = array_to_image(array, 'rgb8', msg=Image())
                    msg.header.stamp, msg.header.frame_id = stamp, frame
                    camera_info.header = msg.header
                    info_pub.publish(camera_info)
                    publisher.publish(msg)
            for publisher, image, encoding, frame in beside:
                msg = array_to_image(image, encoding, msg=Image())
                msg.header.stamp, msg.header.frame_id = stamp, frame
                publisher.publish(msg)
        if self._truth_pub is None:
            return
        truth = TaskState(task=robot.config.task, episode=self._episode, step=robot.step_count,
                          state=observation.state.tolist())
        truth.header.stamp = stamp
        truth.progress = float(info.progress) if info is not None else 0.0
        truth.success = bool(info.success) if info is not None else False
        self._truth_pub.publish(truth)

    def destroy_node(self) -> None:
        self._running = False
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5.0)
        super().destroy_node()


def _camera_info(camera: PinholeCamera) -> CameraInfo:
    """A distortion-free CameraInfo of the camera's intrinsics (as a driver publishes)."""
    k = camera.ros_k()
    return CameraInfo(width=camera.width, height=camera.height, distortion_model='plumb_bob',
                      d=[0.0] * 5, k=k, r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0])


def _where(exc: Exception) -> str:
    """``Type: message (at file:line)``, the line that raised, for a one-line report."""
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return f'{type(exc).__name__}: {exc} (at {os.path.basename(where.filename)}:{where.lineno})'


def main(args: list[str] | None = None) -> None:
    run_node(SimRobotNode, args)


if __name__ == '__main__':
    main()
