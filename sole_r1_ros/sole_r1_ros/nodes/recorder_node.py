"""Record images, rewards, reasoning and commands into a rosbag2 (MCAP) bag with rosbags.

Subscribes (serialized, no conversion) to the topics in ``topics`` and writes them to
``bag_path``; the pip-only alternative to ``ros2 bag record``, readable by the same tools.
"""
from dataclasses import dataclass
from datetime import datetime
import importlib
import os

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.nodes.camera_qos import MatchedSubscription
from sole_r1_ros.nodes.firewall import Firewall, status_message
from sole_r1_ros.nodes.params import NodeConfigs
from sole_r1_ros.nodes.spin import run_node
from sole_r1_ros.recording import learn_installed_type, make_typestore
from sole_r1_ros.recording.guarded import GuardedBag

DEFAULT_TOPICS = (
    'camera/external/image_raw=sensor_msgs/msg/Image',
    'camera/wrist/image_raw=sensor_msgs/msg/Image',
    'camera/external/camera_info=sensor_msgs/msg/CameraInfo',
    'camera/wrist/camera_info=sensor_msgs/msg/CameraInfo',
    'camera/external/robot_mask=sensor_msgs/msg/Image',
    'camera/wrist/robot_mask=sensor_msgs/msg/Image',
    'sole_r1/progress=sole_r1_interfaces/msg/ProgressReward',
    'sole_r1/reward_image=sensor_msgs/msg/Image',
    'episode=sole_r1_interfaces/msg/Episode',
    'episode_result=sole_r1_interfaces/msg/EpisodeResult',
    'joint_states=sensor_msgs/msg/JointState',
    'ee_pose=geometry_msgs/msg/PoseStamped',
    'ground_truth=sole_r1_interfaces/msg/TaskState',
    'forward_command_controller/commands=std_msgs/msg/Float64MultiArray',
    'servo_node/delta_twist_cmds=geometry_msgs/msg/TwistStamped',
    'target_pose=geometry_msgs/msg/PoseStamped',
    'gripper_controller/commands=std_msgs/msg/Float64MultiArray',
    'joy=sensor_msgs/msg/Joy',
)


@dataclass(frozen=True)
class RecorderConfig:
    """Where the recorder writes and what."""

    bag_path: str = option('', "bag folder to create ('' = bags/sole_r1_<date-time>_<pid>)",
                           read_only=True)
    topics: tuple[str, ...] = option(DEFAULT_TOPICS, 'topics to record as '
                                     "'name=package/msg/Type'", read_only=True)
    extra_topics: tuple[str, ...] = option((), 'more topics to record, in the same form: a '
                                           "real arm's controller topics", read_only=True)
    min_free_gb: float = option(1.0, 'the bag stops, closed and readable, when its disk has '
                                'less free than this, so that the checkpoints keep room; it '
                                'goes on in a new part (<bag>-part2, ...) at twice this '
                                '(sole-r1 learn and the launch files set it to a full '
                                "replay's checkpoints and 1 GB: bringup.bag_reserve_gb) [GB]",
                                range=(0.0, 1e6), read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        for field, entries in (('topics', self.topics), ('extra_topics', self.extra_topics)):
            for entry in entries:
                topic, _, msgtype = entry.partition('=')
                if not topic or msgtype.count('/') != 2:
                    raise ValueError(f'RecorderConfig.{field}: entry {entry!r} must look like '
                                     "'name=pkg/msg/Type'")

    def recorded(self) -> tuple[str, ...]:
        """``topics`` and ``extra_topics``, each topic once.

        An ``extra_topics`` entry replaces a ``topics`` one of the same name: a gripper sent
        as a trajectory on the default gripper topic was recorded as Float64MultiArray, which
        matched nothing, and not at all.
        """
        entries: dict[str, str] = {}
        for entry in self.topics + self.extra_topics:
            entries[entry.partition('=')[0].lstrip('/')] = entry
        return tuple(entries.values())


SECTIONS = {'recorder': (RecorderConfig, '')}
# An episode's end and the next start come a moment apart: depth 1 kept only the start, and
# the bag lost every end (the camera node reads them with the same depth).
_EPISODES = QoSProfile(depth=8, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL)
_SENSOR_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage',
                 'sensor_msgs/msg/CameraInfo', 'sensor_msgs/msg/PointCloud2')


def _message_class(msgtype: str):
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def _qos(topic: str, msgtype: str):
    """The QoS of a subscription to another type than a camera's, by the name for episodes.

    Camera types get a ``MatchedSubscription`` whatever the name (a driver's own topic names,
    as the README's --topics examples give, recorded nothing from best-effort cameras when
    subscribed reliably, and lost most frames of reliable ones when subscribed best effort);
    the episodes latched, by the name's last part (also under a namespace); a queue of 50
    otherwise.
    """
    return _EPISODES if topic.rstrip('/').rpartition('/')[2] == 'episode' else 50


class RecorderNode(Node):
    """Writes every message of the chosen topics, serialized, to one bag (parts after a stop)."""

    def __init__(self, node_name: str = 'recorder_node', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._writer: GuardedBag | None = None   # a refused parameter leaves no bag to close
        config = NodeConfigs(self, SECTIONS)['recorder']
        self.firewall = Firewall(self)
        # Milliseconds and the process: two recorders started in one second (a robot per
        # namespace) had the same folder, and the second died.
        path = config.bag_path or (f'bags/sole_r1_{datetime.now():%Y%m%d_%H%M%S_%f}'[:-3]
                                   + f'_{os.getpid()}')
        recorded = config.recorded()
        store = make_typestore()
        # A type the bag cannot hold: refused now, not at its message, and before the bag is
        # made (an empty bag was left at the path, and the corrected rerun refused: it exists).
        for entry in recorded:
            learn_installed_type(store, entry.partition('=')[2])
        self._writer = GuardedBag(path, int(config.min_free_gb * 1e9),
                                  carried=lambda topic: _qos(topic, '') is _EPISODES)
        self._said_stopped = ''
        self._cameras: list[MatchedSubscription] = []
        for entry in recorded:
            topic, _, msgtype = entry.partition('=')
            full_name = self.resolve_topic_name(topic)
            write = self.firewall.guard(
                topic, lambda data, name=full_name, kind=msgtype: self._write(name, kind, data))
            if msgtype in _SENSOR_TYPES:   # reliable where the driver is: see camera_qos
                self._cameras.append(MatchedSubscription(self, _message_class(msgtype), topic,
                                                         write, raw=True))
            else:
                self.create_subscription(_message_class(msgtype), topic, write,
                                         _qos(topic, msgtype), raw=True)
        self.get_logger().info(f'recording {len(recorded)} topics to {path}')
        # what came last is on disk within a second even when nothing more comes; the free
        # space watched
        self.create_timer(0.5, self.firewall.guard('bag', self._writer.tick))
        self._status = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(1.0, self.firewall.guard('status', self._publish_status))

    @property
    def writer(self) -> GuardedBag:
        return self._writer

    def _publish_status(self) -> None:
        """Messages, parts and drops on /diagnostics: ERROR while the bag is stopped."""
        bag = self._writer
        if bag.stopped and bag.stopped != self._said_stopped:
            self.get_logger().error(f'the bag {bag.path} stopped: {bag.stopped}; messages are '
                                    'dropped until the disk has room again')
        elif not bag.stopped and self._said_stopped:
            self.get_logger().info(f'the bag goes on in {bag.path}')
        self._said_stopped = bag.stopped
        rejected = self.firewall.rejected
        level = (DiagnosticStatus.ERROR if bag.stopped else
                 DiagnosticStatus.WARN if rejected else DiagnosticStatus.OK)
        self._status.publish(status_message(
            self, {'messages': bag.count, 'dropped': bag.dropped, 'parts': len(bag.parts),
                   'bag': str(bag.path), 'stopped': bag.stopped,
                   **{f'rejected/{k}': v for k, v in rejected.items()}},
            level=level, message=(f'bag stopped: {bag.stopped}' if bag.stopped else
                                  f'messages not recorded: {dict(rejected)}' if rejected
                                  else 'ok')))

    def _write(self, topic: str, msgtype: str, data: bytes) -> None:
        self._writer.write(topic, msgtype, self.get_clock().now().nanoseconds, data)

    def destroy_node(self) -> None:
        if self._writer is not None:
            self._writer.close()
            parts = self._writer.parts
            self.get_logger().info(
                f'wrote {self._writer.count} messages to {", ".join(map(str, parts))}'
                + (f' ({self._writer.dropped} dropped while the bag was stopped)'
                   if self._writer.dropped else ''))
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(RecorderNode, args)


if __name__ == '__main__':
    main()
