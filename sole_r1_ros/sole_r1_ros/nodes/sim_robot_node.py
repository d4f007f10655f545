"""Simulated robot that looks like a ros2_control robot: cameras, joint states, a command topic.

Publishes ``camera/external/image_raw`` and ``camera/wrist/image_raw`` (rgb8, sensor-data QoS),
``joint_states`` and the privileged ``ground_truth`` (evaluation only); takes end-effector delta +
gripper commands on ``forward_command_controller/commands``; serves ``~/reset``. Physics and
rendering run on one dedicated thread (GL contexts are thread-bound).
"""
import dataclasses
import threading
import time

import numpy as np
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from sole_r1_interfaces.msg import TaskState
from sole_r1_ros.nodes.conversions import array_to_image
from sole_r1_ros.nodes.params import declare, Param
from sole_r1_ros.nodes.spin import run_node
from sole_r1_ros.sim import clamp_command, COMMAND_LAYOUT, MetaWorldRobot, SimConfig

PARAMS = [
    Param('task', 'drawer-close-v3', 'Meta-World v3 task id', read_only=True),
    Param('image_width', 128, 'camera image width [px]', (16, 1024), read_only=True),
    Param('image_height', 128, 'camera image height [px]', (16, 1024), read_only=True),
    Param('rate_hz', 10.0, 'control rate: one physics step per tick [Hz]', (0.1, 500.0),
          read_only=True),
    Param('camera_every_n_ticks', 1, 'render and publish the cameras every N ticks', (1, 1000)),
    Param('step_mode', 'realtime', "'realtime': fixed-rate ticks, the newest command is applied "
          "once, no command = hold still; 'on_command': one tick per command (faster than real "
          'time, for simulated learning)', read_only=True),
    Param('seed', 0, 'seed of the task variations', (0, 2**31 - 1), read_only=True),
    Param('fixed_reset', False, 'reset to the same task variation every time', read_only=True),
    Param('max_episode_steps', 500, 'simulator truncation (the learner ends episodes earlier)',
          (1, 100000), read_only=True),
    Param('command_limit', 1.0, 'commands are clamped to [-limit, limit] per element',
          (0.01, 1.0)),
]


class SimRobotNode(Node):
    """Meta-World robot behind the topics of a ros2_control robot."""

    def __init__(self, **kwargs) -> None:
        super().__init__('sim_robot_node', **kwargs)
        self._p = declare(self, PARAMS)
        if self._p['step_mode'] not in ('realtime', 'on_command'):
            raise ValueError(f"step_mode must be 'realtime' or 'on_command', "
                             f"got {self._p['step_mode']!r}")
        self._config = SimConfig(task=self._p['task'], image_width=self._p['image_width'],
                                 image_height=self._p['image_height'], seed=self._p['seed'],
                                 max_episode_steps=self._p['max_episode_steps'])
        self._lock = threading.Lock()
        self._command: np.ndarray | None = None
        self._wake = threading.Event()
        self._reset_requests: list[threading.Event] = []
        self._running = True
        self._episode = 0
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

        self._external_pub = self.create_publisher(
            Image, 'camera/external/image_raw', qos_profile_sensor_data)
        self._wrist_pub = self.create_publisher(
            Image, 'camera/wrist/image_raw', qos_profile_sensor_data)
        self._joint_pub = self.create_publisher(JointState, 'joint_states', 10)
        self._truth_pub = self.create_publisher(TaskState, 'ground_truth', 10)
        self.create_subscription(Float64MultiArray, 'forward_command_controller/commands',
                                 self._commands_callback, 10)
        self.create_service(Trigger, '~/reset', self._reset_callback,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self._thread = threading.Thread(target=self._sim_loop, name='sim_physics', daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=60.0) or self._start_error is not None:
            raise RuntimeError(f'simulator failed to start: {self._start_error}')
        self.get_logger().info(
            f"simulating {self._p['task']} at {self._p['rate_hz']} Hz "
            f"({self._p['step_mode']}), command layout {list(COMMAND_LAYOUT)}")

    def _commands_callback(self, msg: Float64MultiArray) -> None:
        try:
            command = clamp_command(np.asarray(msg.data, dtype=np.float64),
                                    self._p['command_limit'])
        except ValueError as exc:
            self.get_logger().error(f'rejected command {list(msg.data)}: {exc}',
                                    throttle_duration_sec=1.0)
            return
        with self._lock:
            self._command = command
        self._wake.set()

    def _reset_callback(self, request: Trigger.Request, response: Trigger.Response):
        done = threading.Event()
        with self._lock:
            self._reset_requests.append(done)
        self._wake.set()
        response.success = done.wait(timeout=30.0)
        response.message = (f'episode {self._episode}' if response.success
                            else 'simulator did not reset within 30 s')
        return response

    def _sim_loop(self) -> None:
        """Own physics and rendering: every MuJoCo and GL call happens on this thread."""
        try:
            robot = MetaWorldRobot(self._config)
            observation = robot.reset()
        except BaseException as exc:  # reported to __init__, which raises
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        period = 1.0 / self._p['rate_hz']
        next_tick = time.monotonic()
        tick = 0
        info = None
        self._publish(robot, observation, info, tick)
        try:
            while self._running and rclpy.ok(context=self.context):
                if self._p['step_mode'] == 'on_command':
                    self._wake.wait(timeout=0.1)
                    self._wake.clear()
                else:  # reset requests wait for the next tick too: at most one period
                    next_tick = max(next_tick + period, time.monotonic() - period)
                    time.sleep(max(0.0, next_tick - time.monotonic()))
                with self._lock:
                    command, self._command = self._command, None
                    resets, self._reset_requests = self._reset_requests, []
                if resets:
                    seed = self._config.seed if self._p['fixed_reset'] else None
                    observation, info = robot.reset(seed=seed), None
                    self._episode += 1
                    tick = 0
                    for done in resets:
                        done.set()
                elif info is not None and info.truncated:
                    pass  # the episode is over: hold still until someone resets
                elif command is not None or self._p['step_mode'] == 'realtime':
                    action = command if command is not None else np.zeros(len(COMMAND_LAYOUT))
                    render = (tick + 1) % self._p['camera_every_n_ticks'] == 0
                    new_observation, info = robot.step(action, render=render)
                    observation = new_observation if render else dataclasses.replace(
                        new_observation, external=observation.external, wrist=observation.wrist)
                    tick += 1
                else:
                    continue
                self._publish(robot, observation, info, tick)
        finally:
            robot.close()

    def _publish(self, robot, observation, info, tick: int) -> None:
        stamp = self.get_clock().now().to_msg()
        joints = JointState()
        joints.header.stamp = stamp
        joints.name = list(observation.joint_names)
        joints.position = [float(x) for x in observation.joint_positions]
        joints.velocity = [float(x) for x in observation.joint_velocities]
        self._joint_pub.publish(joints)
        if tick % self._p['camera_every_n_ticks'] == 0:
            for array, publisher, frame in ((observation.external, self._external_pub,
                                             'external_camera'),
                                            (observation.wrist, self._wrist_pub, 'wrist_camera')):
                if array is not None:
                    msg = array_to_image(array, 'rgb8', msg=Image())
                    msg.header.stamp, msg.header.frame_id = stamp, frame
                    publisher.publish(msg)
        truth = TaskState(task=self._config.task, episode=self._episode, step=robot.step_count,
                          state=[float(x) for x in observation.state])
        truth.header.stamp = stamp
        truth.progress = float(info.progress) if info is not None else 0.0
        truth.success = bool(info.success) if info is not None else False
        self._truth_pub.publish(truth)

    def destroy_node(self) -> None:
        self._running = False
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(SimRobotNode, args)


if __name__ == '__main__':
    main()
