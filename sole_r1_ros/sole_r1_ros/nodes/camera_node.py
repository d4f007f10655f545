"""Turn the robot's camera streams into reward queries for reward_node.

Subscribes ``camera/external/image_raw`` and (optionally) ``camera/wrist/image_raw`` with
sensor-data QoS, ``joint_states`` and ``episode``; publishes ``sole_r1/query`` (RewardQuery: first
and current frames shrunk to the model's tile and compressed, with the current frame's header)
and ``/diagnostics``. A bad message is rejected, counted and logged by the firewall.

With ``erase_robot`` it also subscribes ``camera/<view>/robot_mask`` (mono8, non-zero on the
robot, each with its picture's stamp: a self-filter's output, or the simulator's
``publish_robot_masks``) and takes the robot out of every frame of the episode
(``camera/robot_eraser.py``) before any is queried, for a reward model trained on such frames.
A frame whose mask does not come is never queried, and counted. With ``erased_beside`` as well
the queries keep the pictures and carry the erased external view beside them
(``first/current_erased_external``), for a compact pair (``reward_node.erased_model``); only
the external camera's mask is needed then.
"""
from collections import deque
from dataclasses import dataclass
import dataclasses
import math
import time
from typing import NamedTuple
import uuid

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import Trigger

from sole_r1_interfaces.msg import Episode, RewardQuery, TaskState
from sole_r1_ros.camera import (
    encode_tile, FramePairer, FrameThinner, PairedFrame, QueryScheduleConfig, QueryScheduler,
    shrink_to_tile)
from sole_r1_ros.camera.mask_join import MaskJoin, with_mask_channel
from sole_r1_ros.camera.robot_eraser import RobotEraser
from sole_r1_ros.configuration import option, validate
from sole_r1_ros.image_msgs import image_to_array, image_to_rgb
from sole_r1_ros.nodes.camera_qos import MatchedSubscription
from sole_r1_ros.nodes.firewall import check_episode_id, Firewall, status_message
from sole_r1_ros.nodes.params import NodeConfigs
from sole_r1_ros.nodes.spin import run_node


# An episode announced this far ahead of the frames is on another clock, not a reset's wait.
_CLOCKS_APART_NS = 5_000_000_000
_TIME_BACK_NS = 1_000_000_000
'''Frames stamped this much before their episode began: the camera's clock went back.'''
_UNPAIRED_WARN_S = 2.0
'''/diagnostics warns when frames came but none paired for this long.'''
_PENDING_EPISODES = 8   # announcements kept until a frame reaches them
_RECENT_FRAMES = 32   # frames kept to find the one an episode ended on (1 s at 30 fps)


@dataclass(frozen=True)
class CameraNodeConfig:
    """How the camera node pairs views and sends tiles (when: ``QueryScheduleConfig``)."""

    use_wrist: bool = option(True, 'pair a wrist camera with the external one', read_only=True)
    max_skew_s: float = option(0.05, 'largest stamp difference of a paired external/wrist '
                               'frame [s]: half a frame period of cameras not synced in '
                               'hardware (0.05 at 10 Hz)', range=(0.0, 1.0), read_only=True)
    tile_size: int = option(384, 'frames are shrunk so the longer side is this [px] (the '
                            "protocol's tile)", range=(16, 4096), read_only=True)
    tile_format: str = option('png', "'png' (lossless: the model sees the frames, as from "
                              "the authors' client) or 'jpeg' (several times smaller, for a "
                              'reward node across a slow link; quality jpeg_quality)',
                              choices=('jpeg', 'png'))
    jpeg_quality: int = option(90, 'JPEG quality of the tiles', range=(1, 100))
    use_ground_truth: bool = option(False, 'attach the simulator ground truth (the '
                                    'evaluation-only oracle backend needs it)', read_only=True)
    erase_robot: bool = option(
        False, 'take the robot out of every frame (camera/robot_eraser.py) using '
        "camera/<view>/robot_mask (mono8, the picture's stamp: a self-filter, or the "
        "simulator's publish_robot_masks); for a reward model trained on erased frames "
        '(sole-r1 synth --erase-robot-of); frames without a mask are never queried',
        read_only=True)
    erased_beside: bool = option(
        False, 'with erase_robot: keep the pictures in the queries and send the external view '
        'with the robot erased beside them, for a compact pair (reward_node.erased_model); '
        'only camera/external/robot_mask is needed', read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        if self.erased_beside and not self.erase_robot:
            raise ValueError('camera_node.erased_beside sends erased frames beside the '
                             'pictures: it needs erase_robot (and robot masks)')


SECTIONS = {'node': (CameraNodeConfig, ''), 'schedule': (QueryScheduleConfig, '')}
_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Read with room for an end and the next start that come during one busy callback (depth 1
# kept only the newest, and the end was lost: the reset's frames joined the old episode).
_EPISODES_IN = QoSProfile(depth=8, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)


class _Recent(NamedTuple):
    """One of an episode's newest frames, kept in case the episode ends on it."""

    pair: PairedFrame
    erased: object | None
    '''Its external view with the robot erased (erased_beside), or None.'''
    step: int
    queried: bool
    thinned: bool
    '''Left out at the control rate, so not yet erased.'''


def _stamp_ns(stamp) -> int:
    return Time.from_msg(stamp).nanoseconds


class CameraNode(Node):
    """Pairs views, keeps the episode's first frame, and sends queries at the chosen steps."""

    def __init__(self, **kwargs) -> None:
        super().__init__('camera_node', **kwargs)
        self._configs = NodeConfigs(self, SECTIONS)
        c = self._configs['node']
        self.firewall = Firewall(self)
        self._scheduler = QueryScheduler(self._configs['schedule'])
        self._thinner = FrameThinner(self._configs['schedule'].frame_rate_hz)
        self._pairer = FramePairer(c.use_wrist, int(c.max_skew_s * 1e9))
        views = ('external', 'wrist') if c.use_wrist and not c.erased_beside else ('external',)
        # Per view: frames waiting for their robot mask, and the eraser (the external camera
        # is fixed and keeps a background memory; the wrist camera moves).
        self._mask_joins = {view: MaskJoin() for view in views} if c.erase_robot else {}
        self._erasers = {view: RobotEraser(fixed_camera=view == 'external')
                         for view in views} if c.erase_robot else {}
        self._beside = c.erased_beside
        self._joints: dict[str, float] | None = None
        self._truth: deque = deque(maxlen=64)   # (stamp_ns, ground-truth progress)
        self._episode_id: str | None = None
        self._episode_start_ns = 0
        # Announcements not yet reached by a frame, in stamp order: an end ('') and the next
        # episode may both come during a reset, before any frame of either.
        self._pending_episodes: list[tuple[int, str]] = []
        self._ended = False   # an episode ended and the next has not started (robot resetting)
        self._step = 0
        self._paired_s = time.monotonic()   # when a pair last formed (or the node started)
        self._unpaired_seen = 0             # the pairer's drop count at the last status
        # The first frame's tiles: external, wrist, erased external.
        self._first: tuple[CompressedImage, CompressedImage, CompressedImage] | None = None
        # The episode's newest frames, thinned ones too. The final query is the newest one
        # stamped before the episode's end.
        self._recent: deque[_Recent] = deque(maxlen=_RECENT_FRAMES)
        # Seconds from an image callback's start to its query being published (benchmarks).
        self.query_overhead_s: deque = deque(maxlen=1000)
        self._callback_start = 0.0
        self._mask_drops_reported: dict[str, int] = {}

        guard = self.firewall.guard
        self._query_pub = self.create_publisher(RewardQuery, 'sole_r1/query', 10)
        self._episode_pub = self.create_publisher(Episode, 'episode', _LATCHED)
        self._status_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Reliable where the driver publishes reliably: best effort lost most 640x480 frames.
        self._cameras = [MatchedSubscription(self, Image, 'camera/external/image_raw',
                                             guard('camera/external', self._external_callback))]
        if c.use_wrist:
            self._cameras.append(MatchedSubscription(
                self, Image, 'camera/wrist/image_raw',
                guard('camera/wrist', self._wrist_callback)))
        for view in self._mask_joins:
            self._cameras.append(MatchedSubscription(
                self, Image, f'camera/{view}/robot_mask',
                guard(f'camera/{view}/robot_mask', self._mask_callback(view))))
        self.create_subscription(JointState, 'joint_states',
                                 guard('joint_states', self._joint_states_callback), 10)
        self.create_subscription(Episode, 'episode', guard('episode', self._episode_callback),
                                 _EPISODES_IN)
        if c.use_ground_truth:
            self.create_subscription(TaskState, 'ground_truth',
                                     guard('ground_truth', self._ground_truth_callback), 10)
        self.create_service(Trigger, '~/reset', guard('reset', self._reset_callback))
        self.create_timer(1.0, guard('status', self._publish_status))

    @property
    def episode_id(self) -> str | None:
        return self._episode_id

    def _external_callback(self, msg: Image) -> None:
        self._on_frame('external', msg)

    def _wrist_callback(self, msg: Image) -> None:
        self._on_frame('wrist', msg)

    def _on_frame(self, view: str, msg: Image) -> None:
        """A camera frame: to its robot mask first when erasing, else straight to pairing."""
        self._callback_start = time.perf_counter()
        stamp_ns = _stamp_ns(msg.header.stamp)
        if view in self._mask_joins:
            self._join(view, self._mask_joins[view].add_frame(
                stamp_ns, (image_to_rgb(msg), msg.header)))
        else:
            self._pair(view, stamp_ns, self._convert(msg, view), msg.header)

    def _mask_callback(self, view: str):
        def callback(msg: Image) -> None:
            mask = image_to_array(msg)
            if mask.ndim != 2 or mask.dtype != 'uint8':
                raise ValueError(f'a robot mask must be mono8 (one 8-bit channel), got '
                                 f'{msg.encoding!r}')
            self._join(view, self._mask_joins[view].add_mask(_stamp_ns(msg.header.stamp), mask))
        return callback

    def _join(self, view: str, joined: list) -> None:
        """Pass frames that got their robot mask on as RGB + mask (4 channels, one tile)."""
        join = self._mask_joins[view]
        dropped = join.dropped
        if dropped > self._mask_drops_reported.get(view, 0):
            self._mask_drops_reported[view] = dropped
            late = (f'; masks came up to {join.mask_lag_ns * 1e-6:.0f} ms behind the newest '
                    'frame' if join.mask_lag_ns > 0 else '')
            # What publishes the masks: the wrist view needs a self-filter of its own, which
            # a launch with one robot_mask_node (view external) does not start.
            needs = ("erase_robot needs a self-filter, robot_mask_node, or the simulator's "
                     'publish_robot_masks, within 0.5 s' if view == 'external' else
                     'the wrist view needs its own self-filter, robot_mask_node with view: '
                     'wrist; or set camera_node use_wrist: false or erased_beside: true')
            # The count after the colon: the log is throttled by what comes before it.
            self.firewall.reject(f'camera/{view}/robot_mask', f'{view} frames got no robot mask '
                                 f'of their stamp on camera/{view}/robot_mask in time and are '
                                 f'never queried ({needs}): {dropped} so far{late}')
        for stamp_ns, (frame, header), mask in joined:
            try:   # each frame on its own: a wrong mask costs only its frame
                masked = with_mask_channel(frame, mask)
            except ValueError as exc:
                self.firewall.reject(f'camera/{view}/robot_mask', f'{view} {exc}')
                continue
            self._pair(view, stamp_ns, self._convert_array(masked, view), header)

    def _pair(self, view: str, stamp_ns: int, frame, header=None) -> None:
        pairs = (self._pairer.add_external(stamp_ns, frame, header) if view == 'external'
                 else self._pairer.add_wrist(stamp_ns, frame))
        for pair in pairs:
            self._on_pair(pair)

    def _joint_states_callback(self, msg: JointState) -> str | None:
        if len(msg.name) != len(msg.position):
            return f'joint_states has {len(msg.name)} names and {len(msg.position)} positions'
        if not all(math.isfinite(v) for v in msg.position):
            return 'joint_states holds NaN or inf'
        # Merged by name: an arm and a gripper publishing joint_states apart replaced each
        # other, and the gripper's moves never made a query.
        self._joints = {**(self._joints or {}), **dict(zip(msg.name, msg.position))}
        return None

    def _ground_truth_callback(self, msg: TaskState) -> None:
        if not math.isfinite(msg.progress):
            raise ValueError(f'non-finite true progress {msg.progress}')
        self._truth.append((_stamp_ns(msg.header.stamp), float(msg.progress)))

    def _publish_status(self) -> None:
        dropped = self._pairer.dropped
        silent_s = time.monotonic() - self._paired_s
        # frames keep coming and none pairs: a wrist camera stamped 0, on another clock or
        # further off than max_skew_s means no query at all (a 30 + 10 Hz pair drops frames
        # all the time, but pairs too)
        unpaired = dropped > self._unpaired_seen and silent_s > _UNPAIRED_WARN_S
        self._unpaired_seen = dropped
        problem = (f'no external frame paired with a wrist frame for {silent_s:.0f} s: '
                   "nothing is queried (check the cameras' stamps and max_skew_s; a robot "
                   'without a wrist camera sets use_wrist: false)' if unpaired else '')
        if problem:   # in the log too: /diagnostics alone was seen by nobody
            self.get_logger().warning(problem, throttle_duration_sec=10.0)
        self._status_pub.publish(status_message(self, {
            'not_querying': problem,
            'episode': self._episode_id or '', 'step': self._step,
            'unpaired_frames': dropped, 'thinned_frames': self._thinner.thinned,
            **{f'frames_without_robot_mask/{view}': join.dropped
               for view, join in self._mask_joins.items()},
            **{f'rejected/{k}': v for k, v in self.firewall.rejected.items()}},
            level=DiagnosticStatus.WARN if unpaired else DiagnosticStatus.OK,
            message=problem or 'ok'))

    def _episode_callback(self, msg: Episode) -> None:
        check_episode_id(msg.episode_id)
        if msg.episode_id != self._episode_id or not msg.episode_id:
            self._pending_episodes.append((_stamp_ns(msg.header.stamp), msg.episode_id))
            self._pending_episodes.sort()
            del self._pending_episodes[:-_PENDING_EPISODES]

    def _reset_callback(self, request: Trigger.Request, response: Trigger.Response):
        """Start a new episode where no other node announces them (refused where one does).

        A learner owns its episodes: a new id from here would leave the rest of its episode
        without rewards, so the reset belongs to the learner's own ``~/reset``.
        """
        if self._learner_announces():
            response.success = False
            response.message = (f'another node announces the episodes on '
                                f'{self._episode_pub.topic_name} (a learner): call its ~/reset, '
                                'e.g. /learner_node/reset')
            self.get_logger().warning(f'reset refused: {response.message}')
            return response
        episode = Episode(episode_id=f'episode-{uuid.uuid4().hex[:8]}')
        episode.header.stamp = self.get_clock().now().to_msg()
        self._episode_pub.publish(episode)
        self._episode_callback(episode)
        response.success, response.message = True, episode.episode_id
        return response

    def _learner_announces(self) -> bool:
        """Whether another node (a learner) publishes the episodes: they are its, not ours."""
        return self.count_publishers(self._episode_pub.topic_name) > 1

    def _convert(self, msg: Image, view: str):
        """The frame as a tile; raises (the firewall counts it) on an unusable image."""
        return image_to_rgb(msg, shrink=lambda frame: self._convert_array(frame, view))

    def _convert_array(self, frame, view: str):
        """Shrink to the tile (any channel order or count); raises on a frame too thin."""
        size = self._configs['node'].tile_size
        if min(frame.shape[:2]) * size < max(frame.shape[:2]):
            raise ValueError(f'{view} image of {frame.shape[1]}x{frame.shape[0]} px is too thin '
                             f'to shrink into a {size} px tile')
        return shrink_to_tile(frame, size)

    def _on_pair(self, pair: PairedFrame) -> None:
        self._paired_s = time.monotonic()
        if (self._episode_id is not None and not self._pending_episodes
                and self._episode_start_ns - pair.stamp_ns > _TIME_BACK_NS):
            self._time_went_back(pair.stamp_ns)
        while self._pending_episodes and pair.stamp_ns >= self._pending_episodes[0][0]:
            start_ns, episode_id = self._pending_episodes.pop(0)   # in order: an end, then
            self._start_episode(episode_id, start_ns)              # the next one
        pending = ((self._pending_episodes[0][1], self._pending_episodes[0][0])
                   if self._pending_episodes else None)
        if pending is not None and pending[1] - pair.stamp_ns > _CLOCKS_APART_NS:
            behind_s = (pending[1] - pair.stamp_ns) * 1e-9
            # The fixed text before the colon: the log is throttled by it.
            self.firewall.reject('clock', f'frames on another clock than the episodes: stamped '
                                 f'{behind_s:.0f} s before the episode {pending[0]} announced '
                                 'on episode (use_sim_time on some nodes only, or a camera '
                                 'that does not stamp?); nothing is queried until they reach it')
        elif pending is None and self._episode_id is None and not self._ended:
            self._start_episode(f'episode-{uuid.uuid4().hex[:8]}', pair.stamp_ns)
        if self._episode_id is None or pair.stamp_ns < self._episode_start_ns:
            return  # between episodes (a reset is running), or from before the reset
        if not self._thinner.keep(pair.stamp_ns):   # not a frame at the control rate: kept
            self._recent.append(_Recent(pair, None, self._step, False, True))   # if it ends one
            return
        erased = None
        if self._erasers:
            pair, erased = self._erased(pair)
        if self._step == 0:
            self._first = (self._tile(pair.external), self._tile(pair.wrist), self._tile(erased))
        reason = self._scheduler.decide(self._step, self._joints)
        if reason is not None:
            self._send(pair, erased, self._step, reason)
        self._recent.append(_Recent(pair, erased, self._step, reason is not None, False))
        self._step += 1

    def _time_went_back(self, stamp_ns: int) -> None:
        """A frame stamped long before its episode began: the camera's clock went back.

        Every later frame was dropped as from before the episode, with nothing said. Where
        this node makes the episodes up (no learner announces them) a new one starts here;
        under a learner's episodes the frames are refused, said, until they reach it.
        """
        back_s = (self._episode_start_ns - stamp_ns) * 1e-9
        if not self._learner_announces():
            self.get_logger().warning(f'frames stamped {back_s:.1f} s before their episode '
                                      'began (a camera restarted, or a time reset): a new '
                                      'episode starts')
            self._start_episode(f'episode-{uuid.uuid4().hex[:8]}', stamp_ns)
        else:   # the fixed text before the colon: the log is throttled by it
            self.firewall.reject('clock', f'frames stamped before their episode began: '
                                 f'{back_s:.1f} s before episode {self._episode_id} (a camera '
                                 'restarted with its own clock?); nothing is queried until '
                                 'they reach it')

    def _erased(self, pair: PairedFrame):
        """(pair, erased external view): the robot out of both views, or beside the pictures.

        Frames that had a mask are RGB + mask here.
        """
        def erase(view: str, frame):
            return None if frame is None else self._erasers[view](frame[..., :3], frame[..., 3])
        if self._beside:
            picture = np.ascontiguousarray(pair.external[..., :3])
            return (dataclasses.replace(pair, external=picture),
                    erase('external', pair.external))
        return dataclasses.replace(pair, external=erase('external', pair.external),
                                   wrist=erase('wrist', pair.wrist)), None

    def _start_episode(self, episode_id: str, start_ns: int) -> None:
        """Close the running episode; an empty ``episode_id`` only closes it (reset running)."""
        # The episode's last frame is the newest before the end's stamp: a learner announces
        # the end as of just after the frame it last acted on, and frames after that (the
        # closing hold's, or ones seen before the announcement arrived) are not the episode's.
        before = [frame for frame in self._recent if frame.pair.stamp_ns < start_ns]
        if before and not before[-1].queried and before[-1].step > 0:
            pair, erased, step, _, thinned = before[-1]
            if thinned and self._erasers:
                pair, erased = self._erased(pair)
            self._send(pair, erased, step, 'final')  # every episode end gets a label
        self._episode_id = episode_id or None
        self._episode_start_ns, self._ended = start_ns, not episode_id
        self._step, self._first = 0, None
        self._recent.clear()
        self._scheduler.reset()
        self._thinner.reset()   # (the pairer is not cleared: a frame of the new episode may
        # wait in it for its partner, and the start's stamp keeps the old episode's out)
        for eraser in self._erasers.values():
            eraser.reset()   # a new episode: the background is not yet seen
        if episode_id:
            self.get_logger().info(f'episode {episode_id} started')

    def _tile(self, frame) -> CompressedImage:
        c = self._configs['node']
        tile = CompressedImage(format=c.tile_format)
        if frame is not None:
            tile.data = encode_tile(frame, c.tile_format, c.jpeg_quality)
        return tile

    def _ground_truth_at(self, stamp_ns: int) -> float:
        earlier = [progress for stamp, progress in self._truth if stamp <= stamp_ns]
        return earlier[-1] if earlier else float('nan')

    def _send(self, pair: PairedFrame, erased, step: int, reason: str) -> None:
        query = RewardQuery(episode_id=self._episode_id, step=step, trigger=reason,
                            privileged_progress=self._ground_truth_at(pair.stamp_ns),
                            robot_erased=bool(self._erasers) and not self._beside)
        if pair.header is not None:
            query.header = pair.header
        query.first_external, query.first_wrist, query.first_erased_external = self._first
        query.current_external = self._tile(pair.external)
        query.current_wrist = self._tile(pair.wrist)
        query.current_erased_external = self._tile(erased)
        self._query_pub.publish(query)
        self.query_overhead_s.append(time.perf_counter() - self._callback_start)


def main(args: list[str] | None = None) -> None:
    run_node(CameraNode, args)


if __name__ == '__main__':
    main()
