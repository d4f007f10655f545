"""Turn the robot's camera streams into reward queries for reward_node.

Subscribes ``camera/external/image_raw`` and (optionally) ``camera/wrist/image_raw`` with
sensor-data QoS, ``joint_states`` and ``episode``; publishes ``sole_r1/query`` (RewardQuery: first
and current frames shrunk to the model's tile and compressed, with the current frame's header).
"""
from collections import deque
import time
import uuid

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import Trigger

from sole_r1_interfaces.msg import Episode, RewardQuery, TaskState
from sole_r1_ros.camera import (
    encode_tile, FramePairer, PairedFrame, QueryScheduleConfig, QueryScheduler, shrink_to_tile)
from sole_r1_ros.nodes.conversions import image_to_rgb, ImageConversionError
from sole_r1_ros.nodes.params import declare, Param
from sole_r1_ros.nodes.spin import run_node

PARAMS = [
    Param('use_wrist', True, 'pair a wrist camera with the external one', read_only=True),
    Param('stride', 10, 'query every N paired frames', (1, 10000), read_only=True),
    Param('min_gap', 2, 'fewest frames between two queries (events are deferred)', (1, 10000),
          read_only=True),
    Param('gripper_joints', ['rightpad_y', 'leftpad_y'],
          'joint names of the gripper (gripper start/stop triggers a query)', read_only=True),
    Param('gripper_speed_threshold', 1e-3, 'gripper speed counted as moving [units/frame]',
          (0.0, 10.0), read_only=True),
    Param('motion_jump_threshold', 0.05, 'arm joint-velocity jump that triggers a query '
          '[rad/frame]; 0 disables', (0.0, 10.0), read_only=True),
    Param('max_skew_s', 0.02, 'largest stamp difference of a paired external/wrist frame [s]',
          (0.0, 1.0), read_only=True),
    Param('tile_size', 384, 'frames are shrunk so the longer side is this [px]', (32, 4096),
          read_only=True),
    Param('tile_format', 'jpeg', "'jpeg' (small, as the authors' client) or 'png' (lossless)"),
    Param('jpeg_quality', 90, 'JPEG quality of the tiles', (1, 100)),
    Param('use_ground_truth', False, 'attach the simulator ground truth (oracle backend only)',
          read_only=True),
]

_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _stamp_ns(stamp) -> int:
    return Time.from_msg(stamp).nanoseconds


class CameraNode(Node):
    """Pairs views, keeps the episode's first frame, and sends queries at the chosen steps."""

    def __init__(self, **kwargs) -> None:
        super().__init__('camera_node', **kwargs)
        self._p = declare(self, PARAMS)
        self._scheduler = QueryScheduler(
            QueryScheduleConfig(stride=self._p['stride'], min_gap=self._p['min_gap'],
                                gripper_speed_threshold=self._p['gripper_speed_threshold'],
                                motion_jump_threshold=self._p['motion_jump_threshold']),
            gripper_joints=tuple(self._p['gripper_joints']))
        self._pairer = FramePairer(self._p['use_wrist'], int(self._p['max_skew_s'] * 1e9))
        self._joints: dict[str, float] | None = None
        self._truth: deque = deque(maxlen=64)   # (stamp_ns, ground-truth progress)
        self._episode_id: str | None = None
        self._episode_start_ns = 0
        self._pending_episode: tuple[str, int] | None = None
        self._ended = False   # an episode ended and the next has not started (robot resetting)
        self._step = 0
        self._first: tuple[CompressedImage, CompressedImage] | None = None
        self._last: tuple[PairedFrame, int, bool] | None = None  # frame, step, was it queried
        # Seconds from an image callback's start to its query being published (benchmarks).
        self.query_overhead_s: deque = deque(maxlen=1000)
        self._callback_start = 0.0

        self._query_pub = self.create_publisher(RewardQuery, 'sole_r1/query', 10)
        self._episode_pub = self.create_publisher(Episode, 'episode', _LATCHED)
        self.create_subscription(Image, 'camera/external/image_raw', self._external_callback,
                                 qos_profile_sensor_data)
        if self._p['use_wrist']:
            self.create_subscription(Image, 'camera/wrist/image_raw', self._wrist_callback,
                                     qos_profile_sensor_data)
        self.create_subscription(JointState, 'joint_states', self._joint_states_callback, 10)
        self.create_subscription(Episode, 'episode', self._episode_callback, _LATCHED)
        if self._p['use_ground_truth']:
            self.create_subscription(TaskState, 'ground_truth', self._ground_truth_callback, 10)
        self.create_service(Trigger, '~/reset', self._reset_callback)

    @property
    def episode_id(self) -> str | None:
        return self._episode_id

    def _external_callback(self, msg: Image) -> None:
        self._callback_start = time.perf_counter()
        frame = self._convert(msg, 'external')
        if frame is not None:
            for pair in self._pairer.add_external(_stamp_ns(msg.header.stamp), frame, msg.header):
                self._on_pair(pair)

    def _wrist_callback(self, msg: Image) -> None:
        self._callback_start = time.perf_counter()
        frame = self._convert(msg, 'wrist')
        if frame is not None:
            for pair in self._pairer.add_wrist(_stamp_ns(msg.header.stamp), frame):
                self._on_pair(pair)

    def _joint_states_callback(self, msg: JointState) -> None:
        if len(msg.name) == len(msg.position):
            self._joints = dict(zip(msg.name, msg.position))

    def _ground_truth_callback(self, msg: TaskState) -> None:
        self._truth.append((_stamp_ns(msg.header.stamp), float(msg.progress)))

    def _episode_callback(self, msg: Episode) -> None:
        if msg.episode_id != self._episode_id or not msg.episode_id:
            self._pending_episode = (msg.episode_id, _stamp_ns(msg.header.stamp))

    def _reset_callback(self, request: Trigger.Request, response: Trigger.Response):
        episode = Episode(episode_id=f'episode-{uuid.uuid4().hex[:8]}')
        episode.header.stamp = self.get_clock().now().to_msg()
        self._episode_pub.publish(episode)
        self._episode_callback(episode)
        response.success, response.message = True, episode.episode_id
        return response

    def _convert(self, msg: Image, view: str):
        try:
            return shrink_to_tile(image_to_rgb(msg), self._p['tile_size'])
        except ImageConversionError as exc:
            self.get_logger().error(f'skipping malformed {view} image: {exc}',
                                    throttle_duration_sec=2.0)
            return None

    def _on_pair(self, pair: PairedFrame) -> None:
        if self._pending_episode is not None and pair.stamp_ns >= self._pending_episode[1]:
            self._start_episode(*self._pending_episode)
        elif self._episode_id is None and not self._ended:
            self._start_episode(f'episode-{uuid.uuid4().hex[:8]}', pair.stamp_ns)
        if self._episode_id is None or pair.stamp_ns < self._episode_start_ns:
            return  # between episodes (a reset is running), or from before the reset
        if self._step == 0:
            self._first = (self._tile(pair.external), self._tile(pair.wrist))
        reason = self._scheduler.decide(self._step, self._joints)
        if reason is not None:
            self._send(pair, self._step, reason)
        self._last = (pair, self._step, reason is not None)
        self._step += 1

    def _start_episode(self, episode_id: str, start_ns: int) -> None:
        """Close the running episode; an empty ``episode_id`` only closes it (reset running)."""
        if self._last is not None and not self._last[2] and self._last[1] > 0:
            self._send(self._last[0], self._last[1], 'final')  # every episode end gets a label
        self._episode_id = episode_id or None
        self._episode_start_ns, self._ended = start_ns, not episode_id
        self._pending_episode, self._step, self._last, self._first = None, 0, None, None
        self._scheduler.reset()
        self._pairer.clear()
        if episode_id:
            self.get_logger().info(f'episode {episode_id} started')

    def _tile(self, frame) -> CompressedImage:
        tile = CompressedImage(format=self._p['tile_format'])
        if frame is not None:
            tile.data = encode_tile(frame, self._p['tile_format'], self._p['jpeg_quality'])
        return tile

    def _ground_truth_at(self, stamp_ns: int) -> float:
        earlier = [progress for stamp, progress in self._truth if stamp <= stamp_ns]
        return earlier[-1] if earlier else float('nan')

    def _send(self, pair: PairedFrame, step: int, reason: str) -> None:
        query = RewardQuery(episode_id=self._episode_id, step=step, trigger=reason,
                            privileged_progress=self._ground_truth_at(pair.stamp_ns))
        if pair.header is not None:
            query.header = pair.header
        query.first_external, query.first_wrist = self._first
        query.current_external = self._tile(pair.external)
        query.current_wrist = self._tile(pair.wrist)
        self._query_pub.publish(query)
        self.query_overhead_s.append(time.perf_counter() - self._callback_start)


def main(args: list[str] | None = None) -> None:
    run_node(CameraNode, args)


if __name__ == '__main__':
    main()
