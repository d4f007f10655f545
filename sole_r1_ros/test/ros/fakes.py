"""Test doubles on real DDS: a sink that keeps messages, and a fake arm.

The arm publishes what an arm driver does (cameras, joint states, an end-effector pose) and
records every command form.
"""
import threading
import time

from geometry_msgs.msg import PoseStamped, TwistStamped
import numpy as np
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy)
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from sole_r1_ros.image_msgs import array_to_image

JOINTS = ['j1', 'j2', 'j3']


def own_name(name: str) -> list[str]:
    """``cli_args`` giving a node a name no other test uses, for a test that reads its /rosout.

    rcl registers /rosout publishers by logger name for the whole process: when a same-named
    node of an earlier test is destroyed or collected later, it unregisters the name, and this
    node's log lines never reach /rosout.
    """
    return ['--ros-args', '-r', f'__node:={name}']


ROSOUT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
'''/rosout as its publishers offer it: a subscription made after a line still gets it.'''


class Sink:
    """Subscription callback that keeps every message with its arrival time."""

    def __init__(self) -> None:
        self.messages: list = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, msg) -> None:
        with self.lock:
            self.messages.append(msg)
            self.times.append(time.monotonic())

    def __len__(self) -> int:
        with self.lock:
            return len(self.messages)

    def count(self) -> int:
        return len(self)

    def last(self):
        with self.lock:
            return self.messages[-1] if self.messages else None

    def since(self, start: float) -> list:
        with self.lock:
            return [m for m, t in zip(self.messages, self.times) if t >= start]


class FakeArm(Node):
    """An arm driver at ``rate_hz``: two cameras, joint_states and ee_pose in ``frame``.

    Its commands of every form land in ``commands[<topic>]``. Switch inputs off to make them
    stale.
    """

    COMMAND_TOPICS = {'forward_command_controller/commands': Float64MultiArray,
                      'servo_node/delta_twist_cmds': TwistStamped,
                      'target_pose': PoseStamped,
                      'joint_trajectory_controller/joint_trajectory': JointTrajectory,
                      'gripper_controller/commands': Float64MultiArray}

    def __init__(self, context, rate_hz: float = 20.0, frame: str = 'world') -> None:
        super().__init__('fake_arm', context=context)
        self.position = np.array([0.0, 0.6, 0.2])
        self.joints = [0.1, 0.2, 0.3]   # what joint_states says (commands do not move it)
        self.orientation = np.array([0.0, 0.0, 0.0, 1.0])
        self.frame = frame
        self.publish_images = self.publish_joints = self.publish_pose = True
        self._images = {v: self.create_publisher(Image, f'camera/{v}/image_raw',
                                                 qos_profile_sensor_data)
                        for v in ('external', 'wrist')}
        self._joints = self.create_publisher(JointState, 'joint_states', 10)
        self._pose = self.create_publisher(PoseStamped, 'ee_pose', 10)
        self.commands = {topic: Sink() for topic in self.COMMAND_TOPICS}
        for topic, kind in self.COMMAND_TOPICS.items():
            self.create_subscription(kind, topic, self.commands[topic], 50)
        self.frames = 0
        self.create_timer(1.0 / rate_hz, self._tick)

    def _stamped_header(self, frame: str):
        from std_msgs.msg import Header
        header = Header(frame_id=frame)
        header.stamp = self.get_clock().now().to_msg()
        return header

    def _tick(self) -> None:
        stamp = self.get_clock().now().to_msg()
        if self.publish_joints:
            msg = JointState(name=JOINTS, position=list(self.joints), velocity=[0.0] * 3)
            msg.header.stamp = stamp
            self._joints.publish(msg)
        if self.publish_pose:
            pose = PoseStamped()
            pose.header.stamp, pose.header.frame_id = stamp, self.frame
            p, q = pose.pose.position, pose.pose.orientation
            p.x, p.y, p.z = map(float, self.position)
            q.x, q.y, q.z, q.w = map(float, self.orientation)
            self._pose.publish(pose)
        if self.publish_images:
            for view, publisher in self._images.items():
                image = array_to_image(np.full((32, 32, 3), self.frames % 250, np.uint8),
                                       'rgb8')
                image.header.stamp = stamp
                publisher.publish(image)
            self.frames += 1


def frames_taken(camera) -> list:
    """The views of the frames a camera node took, in order, as it takes them.

    A test that sends frames and other messages in an order waits for each to be taken: a
    sensor-data reader keeps 5, and the camera's executor takes what waits on several topics
    in its own order.
    """
    taken, on_frame = [], camera._on_frame

    def counted(view, msg):
        on_frame(view, msg)
        taken.append(view)
    camera._on_frame = counted
    return taken


def stamp_s(msg) -> float:
    return Time.from_msg(msg.header.stamp).nanoseconds * 1e-9
