"""A self-filter: the robot's mask on each camera frame, for a camera node that erases it.

Subscribes ``camera/<view>/image_raw`` (its stamp and size; sensor-data QoS),
``camera/<view>/camera_info`` (the intrinsics K, or P for a rectified image with ``rectified``;
its binning and region of interest as image_geometry reads them) and ``joint_states``; publishes
``camera/<view>/robot_mask`` (mono8, 255 on the robot, the picture's stamp and frame),
``camera/<view>/robot_mask_overlay`` (the picture with the mask tinted green, drawn only while
someone subscribes: to check the hand-eye calibration in rviz) and ``/diagnostics``. Each mask
is the robot's own model (``robot_model``: its URDF or MJCF) drawn at the joint states of the
frame's stamp from the calibrated camera (``camera/self_filter.py``): what
``camera_node.erase_robot`` needs on a real robot, and what the simulator's privileged
``publish_robot_masks`` stands in for. Joint states are merged (arm and gripper may publish
apart; a URDF's mimic joints need not be published; other devices' joints are ignored) and kept
for ``JOINT_HISTORY_S``. A frame waits for the first joint states stamped at or after it (the
two topics arrive in any order), then is drawn at the joint positions interpolated between the
two around its stamp. A frame without joint states near enough or without camera info gets no
mask: the camera node then never queries it and counts it, and this node counts why. With an
RGB-D camera (``use_depth``), ``camera/<view>/depth/image_raw`` aligned to the pictures is read
too, and what the camera sees in front of the robot (the table's edge, a door, a held object)
is left out of the mask; a frame then also waits for its depth image, and gets no mask without
one. Drawing runs on one thread of its own (a GL context is current in one thread), whatever
executor spins the node.
"""
import bisect
from collections import deque
from dataclasses import dataclass
import math
import queue
import threading

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, JointState

from sole_r1_ros.camera.pinhole import PinholeCamera
from sole_r1_ros.configuration import option, validate
from sole_r1_ros.image_msgs import array_to_image, image_to_depth, image_to_rgb
from sole_r1_ros.nodes.camera_qos import MatchedSubscription
from sole_r1_ros.nodes.firewall import Firewall, status_message
from sole_r1_ros.nodes.params import NodeConfigs
from sole_r1_ros.nodes.spin import run_node


@dataclass(frozen=True)
class RobotMaskNodeConfig:
    """Which robot, which camera and where it is (its hand-eye calibration)."""

    robot_model: str = option('', "the robot's URDF or MJCF file (MuJoCo reads both; a URDF's "
                              'collision geometry is drawn); required', read_only=True)
    mesh_dir: str = option('', "folder of the model's mesh files when not beside it: a "
                           "URDF's package://PKG/PATH and relative paths are looked for there "
                           "(as PKG/PATH, PATH or the file name); '': beside the URDF, and a "
                           "package's folder above it", read_only=True)
    view: str = option('external', 'the camera: camera/<view>/image_raw and camera_info in, '
                       'camera/<view>/robot_mask out', choices=('external', 'wrist'),
                       read_only=True)
    camera_link: str = option('', "the model's link the camera is fixed to ('': the model's "
                              "root link, for a fixed camera: a URDF's first, panda_link0; "
                              "where a world link above the arm's base is the root, name the "
                              'base here; the hand for a wrist camera)', read_only=True)
    camera_position: tuple[float, ...] = option(
        (0.0, 0.0, 0.0), "the camera's optical frame (x right, y down, z forward) in "
        'camera_link (or the base) [m]: a hand-eye calibration', length=3, read_only=True)
    camera_orientation: tuple[float, ...] = option(
        (0.0, 0.0, 0.0, 1.0), 'its orientation there, quaternion x y z w', length=4,
        read_only=True)
    hidden_links: tuple[str, ...] = option(
        (), 'links never drawn: those the scene always hides from this camera (a pedestal '
        'under the table, seen from the wrist), which the model alone would erase',
        read_only=True)
    draw_max_side: int = option(
        384, 'masks are drawn at most this many pixels along the longer side and scaled up '
        'to the picture (software rendering costs per pixel; the camera node shrinks to its '
        'tile_size, 384 at most by default, before erasing); 0: full size', range=(0, 8192),
        read_only=True)
    max_joint_state_age_s: float = option(
        0.05, 'a frame is drawn at the joint states nearest its stamp, at most this far from '
        'it [s]; a frame without any gets no mask (and is never queried)', range=(0.0, 10.0))
    camera_delay_s: float = option(
        0.0, "how late the camera's stamps are against the joint states' (a driver that stamps "
        'a frame when it arrives, not when it was exposed: its transfer latency) [s]; each '
        'frame is drawn at the joint states of its stamp minus this, and published with its '
        'own stamp', range=(-1.0, 1.0))
    max_waiting_frames: int = option(
        8, 'frames waiting for joint states (and depth) stamped at or after them; the oldest '
        'beyond this gets no mask', range=(1, 1000))
    use_depth: bool = option(
        False, 'an RGB-D camera: also read camera/<view>/depth/image_raw, aligned to the '
        "pictures (16UC1 mm or 32FC1 m; a RealSense driver's aligned_depth_to_color, "
        'remapped), and leave out of the mask what the camera sees in front of the robot; '
        'a frame without its depth image gets no mask', read_only=True)
    depth_margin_m: float = option(
        0.03, 'with use_depth: how far behind the measured surface the robot may be drawn '
        "and still be masked (the depth camera's noise plus the calibration's error) [m]",
        range=(0.0, 1.0))
    max_depth_age_s: float = option(
        0.05, 'with use_depth: a frame is drawn with the depth image nearest its stamp, at '
        'most this far from it [s]', range=(0.0, 10.0))
    rectified: bool = option(
        False, "the pictures are rectified (image_proc's image_rect and its camera_info): "
        "drawn with camera_info P, their intrinsics, instead of K (the raw image's, whose lens "
        'distortion D they have undone)', read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        if not self.robot_model:
            raise ValueError("robot_mask_node.robot_model is required: the robot's URDF or MJCF "
                             'file')
        if not self.camera_link and not any(self.camera_position):
            # the default: a camera inside the robot's base drew masks of 100 % of the picture
            raise ValueError('robot_mask_node.camera_position is (0, 0, 0) in the base: set the '
                             "camera's hand-eye calibration (camera_position, "
                             'camera_orientation; config/real_robot_learn.yaml shows how), or '
                             'camera_link to the link it is fixed to')


SECTIONS = {'node': (RobotMaskNodeConfig, '')}


def _stamp_ns(stamp) -> int:
    return Time.from_msg(stamp).nanoseconds


JOINT_HISTORY_S = 2.0
'''How long joint states are kept before the newest, beyond camera_delay_s and
max_joint_state_age_s [s]: how late a frame may come after its exposure and still be drawn
(by age, not by count: a 1 kHz joint_state_broadcaster fills 256 messages in a quarter
second).'''
STALE_JOINT_S = JOINT_HISTORY_S
'''A joint whose newest position came this long before a frame's exposure is stale there (its
publisher stopped while another's goes on): the frame gets no mask [s]. A gripper published
at 1 Hz beside a 100 Hz arm is not.'''
JOINT_HISTORY_MAX = 20000
'''Joint states kept at most, whatever their stamps: stamps that do not advance (a driver
that leaves header.stamp constant) were never let go, 2 GB an hour at 1 kHz.'''
TIME_WENT_BACK_S = 1.0
'''Joint states stamped this much before the newest mean time went back (a restarted bag or
simulator): the history is let go [s]. Less is an out-of-order message (another publisher).'''


def info_fields(msg: CameraInfo, rectified: bool) -> tuple:
    """(width, height, K, P or None, binning, ROI) of a camera_info, as a mask is drawn from it."""
    roi = msg.roi
    return (int(msg.width), int(msg.height), tuple(float(v) for v in msg.k),
            tuple(float(v) for v in msg.p) if rectified else None,
            (int(msg.binning_x), int(msg.binning_y)),
            (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)))


def info_camera(fields: tuple, config: RobotMaskNodeConfig) -> PinholeCamera:
    """The camera of ``info_fields`` at the calibrated pose (P, binning and ROI included).

    Raises:
        ValueError: a zero size or focal length, or a ROI outside the image.
    """
    width, height, k, p, binning, region = fields
    return PinholeCamera.from_camera_info(width, height, k, config.camera_position,
                                          config.camera_orientation, p, binning, region)


class RobotMaskNode(Node):
    """Draws the robot's mask for each frame of one camera."""

    def __init__(self, **kwargs) -> None:
        super().__init__('robot_mask_node', **kwargs)
        self._configs = NodeConfigs(self, SECTIONS)
        c = self._configs['node']
        from sole_r1_ros.camera.self_filter import RobotSelfFilter   # MuJoCo: only here
        # Loaded now, so that a wrong file fails at start-up; the camera comes with its info.
        self._filter = RobotSelfFilter(c.robot_model, None, c.mesh_dir, c.camera_link,
                                       c.hidden_links, c.draw_max_side)
        undrawn = self._filter.undrawn_links
        if undrawn:
            self.get_logger().warning(
                f'links {list(undrawn)} of {c.robot_model} have visual geometry only: MuJoCo '
                "draws a URDF's collision geometry, so they are never in the mask (nor erased)."
                ' Give them <collision> geometry, or list them in hidden_links')
        if self._filter.planes:
            self.get_logger().warning(
                f'{c.robot_model} holds planes {list(self._filter.planes)}: a scene, not a '
                'robot. They are never drawn; what else the scene holds (a table, walls) is '
                "drawn into every mask: give the robot's own file (a Menagerie scene.xml "
                'includes it: give that one)')
        # The camera info's fields the camera is built from, and its camera (once per info).
        self._info: tuple | None = None
        self._distortion_said = False   # a camera_info with lens distortion was warned of
        self._info_camera: PinholeCamera | None = None
        self._drawn: PinholeCamera | None = None   # the camera the filter draws (its thread's)
        # The merged joint states, in stamp order, JOINT_HISTORY_S long: each message updates
        # a copy of the last one merged (arm and gripper may publish apart), with the model's
        # joints only; beside each, the stamp each joint's position came with.
        self._joint_stamps: list[int] = []
        self._joint_states: list[tuple[dict[str, float], dict[str, int]]] = []
        self._merged: tuple[dict[str, float], dict[str, int]] = ({}, {})
        self._let_go_ns: int | None = None   # the newest stamp let go for age
        self._model_joints = frozenset(self._filter.joint_names)
        self._depths: deque = deque(maxlen=16)   # (stamp_ns, H×W metres), with use_depth
        # Frames to draw: (exposure stamp_ns, camera, header, picture for the overlay or None).
        self._waiting: deque = deque()
        self.firewall = Firewall(self)
        self.masks = 0
        self.missing = {'joint_states': 0, 'camera_info': 0, 'depth': 0, 'drawing_time': 0}
        # Frames to draw: (camera, header, joint positions, depth or None, picture); a frame
        # that finds it full is not drawn (the drawing thread is behind) and counted.
        self._jobs: queue.Queue = queue.Queue(maxsize=4)
        guard = self.firewall.guard
        view = c.view
        # Reliable: the camera node is another process, and a best-effort mask of a 1280x720
        # picture mostly never came there (28 of 99), its frame never queried for want of it.
        self._mask_pub = self.create_publisher(Image, f'camera/{view}/robot_mask', QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE))
        self._overlay_pub = self.create_publisher(Image, f'camera/{view}/robot_mask_overlay',
                                                  qos_profile_sensor_data)
        self._status_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Reliable where the driver publishes reliably: best effort lost most 640x480 frames.
        self._cameras = [
            MatchedSubscription(self, Image, f'camera/{view}/image_raw',
                                guard(f'camera/{view}/image_raw', self._image_callback)),
            MatchedSubscription(self, CameraInfo, f'camera/{view}/camera_info',
                                guard(f'camera/{view}/camera_info', self._info_callback))]
        self.create_subscription(JointState, 'joint_states',
                                 guard('joint_states', self._joint_states_callback), 50)
        if c.use_depth:
            self._cameras.append(MatchedSubscription(
                self, Image, f'camera/{view}/depth/image_raw',
                guard(f'camera/{view}/depth/image_raw', self._depth_callback)))
        self.create_timer(1.0, guard('status', self._publish_status))
        self._thread = threading.Thread(target=self._draw_loop, name='robot_mask',
                                        daemon=True)
        self._drawing_checked = threading.Event()
        self._drawing_error: Exception | None = None
        self._thread.start()
        # A machine that cannot render says so now, not once per frame.
        if not self._drawing_checked.wait(30.0):
            raise RuntimeError('the robot mask drawing thread did not start in 30 s')
        if self._drawing_error is not None:
            raise self._drawing_error
        depth = f' with camera/{view}/depth/image_raw' if c.use_depth else ''
        self.get_logger().info(f'drawing the mask of {c.robot_model} '
                               f'({len(self._filter.joint_names)} joints) on camera/{view}'
                               f'{depth}')

    def _info_callback(self, msg: CameraInfo) -> None:
        c = self._configs['node']
        info = info_fields(msg, c.rectified)
        if info != self._info:
            # Raises on a zero size or focal length, or a ROI outside the image: refused.
            self._info_camera = info_camera(info, c)
            self._info = info
        distortion = [float(v) for v in msg.d]
        if (not c.rectified and not self._distortion_said
                and any(abs(v) > 1e-6 for v in distortion)):
            self._distortion_said = True
            self.get_logger().warning(
                f'the camera has lens distortion (camera_info D = {distortion}) and the mask '
                'is drawn with its pinhole model (K) alone: toward the image edges it misses '
                'the arm by up to tens of pixels. Subscribe to the rectified image '
                "(image_proc's image_rect and its camera_info) and set rectified: true (drawn "
                'with camera_info P) for an exact mask')

    def _joint_states_callback(self, msg: JointState) -> str | None:
        if len(msg.name) != len(msg.position):
            return f'joint_states has {len(msg.name)} names and {len(msg.position)} positions'
        ours = {name: float(position) for name, position in zip(msg.name, msg.position)
                if name in self._model_joints}
        if not ours:
            return None   # another device's joints (a conveyor, a second arm)
        bad = sorted(name for name, position in ours.items() if not math.isfinite(position))
        if bad:
            return f'joint_states holds NaN or inf for {bad}'
        stamp = _stamp_ns(msg.header.stamp)
        if stamp == 0:
            return ('joint_states stamped 0: the driver sets no header.stamp, and a mask needs '
                    'the time its joints were measured')
        stamps, states = self._joint_stamps, self._joint_states
        if stamps and stamp < stamps[-1] - TIME_WENT_BACK_S * 1e9:
            # Time went back (a restarted bag or simulator): what came before is another time.
            stamps.clear()
            states.clear()
            self._merged, self._let_go_ns = ({}, {}), None
        positions, stamped = self._merged
        self._merged = ({**positions, **ours}, {**stamped, **dict.fromkeys(ours, stamp)})
        at = bisect.bisect_right(stamps, stamp)   # after those of the same stamp
        stamps.insert(at, stamp)
        states.insert(at, self._merged)
        c = self._configs['node']
        keep_s = JOINT_HISTORY_S + abs(c.camera_delay_s) + c.max_joint_state_age_s
        old = max(bisect.bisect_left(stamps, stamps[-1] - int(keep_s * 1e9)),
                  len(stamps) - JOINT_HISTORY_MAX)
        if old:
            self._let_go_ns = stamps[old - 1]
            del stamps[:old], states[:old]
        self._draw_waiting()
        return None

    def _depth_callback(self, msg: Image) -> None:
        depth = image_to_depth(msg)   # raises on another encoding: refused and counted
        stamp = _stamp_ns(msg.header.stamp)
        if self._depths and stamp < self._depths[-1][0]:
            self._depths.clear()   # time went back
        self._depths.append((stamp, depth))
        self._draw_waiting()

    def _image_callback(self, msg: Image) -> str | None:
        view = self._configs['node'].view
        if self._info is None:
            self.missing['camera_info'] += 1
            return f'no camera/{view}/camera_info yet: the frame gets no robot mask'
        camera = self._info_camera
        if (msg.width, msg.height) != (camera.width, camera.height):
            width, height, _, _, binning, roi = self._info
            reduced = ('' if (camera.width, camera.height) == (width, height) else
                       f' (binning {binning}, roi {roi} of its {width}x{height})')
            return (f'{view} image of {msg.width}x{msg.height} px, camera_info of '
                    f'{camera.width}x{camera.height}{reduced}: the frame gets no robot mask')
        exposed = _stamp_ns(msg.header.stamp) - int(self._configs['node'].camera_delay_s * 1e9)
        # The picture itself is kept only for an overlay someone watches.
        picture = msg if self._overlay_pub.get_subscription_count() else None
        self._waiting.append((exposed, self._info_camera, msg.header, picture))
        if len(self._waiting) > self._configs['node'].max_waiting_frames:
            stamp = self._waiting.popleft()[0]
            if self._joint_stamps and self._joint_stamps[-1] >= stamp:
                self._no_depth('no depth image stamped at or after')
            else:
                self._no_joint_states('no joint_states stamped at or after')
        self._draw_waiting()
        return None

    def _ready(self, stamp: int, header) -> bool:
        """The joint states of this exposure, and its depth image with use_depth, have come."""
        if not self._joint_stamps or self._joint_stamps[-1] < stamp:
            return False
        return not self._configs['node'].use_depth or bool(
            self._depths and self._depths[-1][0] >= _stamp_ns(header.stamp))

    def _draw_waiting(self) -> None:
        """Send each waiting frame whose joint states (and depth) have come to be drawn."""
        c = self._configs['node']
        while self._waiting and self._ready(self._waiting[0][0], self._waiting[0][2]):
            stamp, camera, header, picture = self._waiting.popleft()
            joints = self._joints_at(stamp)
            if joints is None:
                continue
            depth = None
            if c.use_depth:
                depth = self._depth_for(_stamp_ns(header.stamp), camera)
                if depth is None:
                    continue
            try:
                self._jobs.put_nowait((camera, header, joints, depth, picture))
            except queue.Full:
                self.missing['drawing_time'] += 1
                self.firewall.reject(f'camera/{self._configs["node"].view}/image_raw',
                                     'the drawing thread is behind: a frame gets no robot mask')

    def _joints_at(self, stamp: int) -> dict[str, float] | None:
        """The joint positions at this exposure, or None (counted) when none are near enough.

        Between two joint states around it, both within ``max_joint_state_age_s``: each joint
        interpolated (but one that moved more than half a turn between them, a wrapped angle
        or a jump, is taken from the nearer); else the nearer one within that age. None when
        a joint of the model was never given, or not in the ``STALE_JOINT_S`` before.
        """
        c = self._configs['node']
        limit = int(c.max_joint_state_age_s * 1e9)
        stamps, states = self._joint_stamps, self._joint_states
        after = bisect.bisect_right(stamps, stamp)   # the first stamped after the exposure
        near = [i for i in (after - 1, after)
                if 0 <= i < len(stamps) and abs(stamps[i] - stamp) <= limit]
        if not near:
            if self._let_go_ns is not None and stamp <= self._let_go_ns + limit:
                keep_s = JOINT_HISTORY_S + abs(c.camera_delay_s) + c.max_joint_state_age_s
                self._no_joint_states(f'joint_states older than {keep_s:.2f} s (let go) were '
                                      'needed for')
            else:
                self._no_joint_states(f'no joint_states within {limit / 1e9} s of')
            return None
        nearest = min(near, key=lambda i: abs(stamps[i] - stamp))
        joints, stamped = states[nearest]
        missing = sorted(self._model_joints - joints.keys())
        if missing:
            self._no_joint_states(f"joint_states never gave {missing} (the model's joints; "
                                  'a mimic joint is not needed) before')
            return None
        stale = sorted(name for name, at in stamped.items()
                       if stamp - at > STALE_JOINT_S * 1e9)
        if stale:
            self._no_joint_states(f'joint_states gave no position of {stale} in the '
                                  f'{STALE_JOINT_S} s before')
            return None
        if len(near) == 2 and stamps[near[0]] != stamp:
            (t0, (before, _)), (t1, (later, _)) = ((stamps[i], states[i]) for i in near)
            share = (stamp - t0) / (t1 - t0)
            joints = dict(joints)
            for name in before.keys() & later.keys():
                if abs(later[name] - before[name]) <= math.pi:
                    joints[name] = before[name] + share * (later[name] - before[name])
        return joints

    def _depth_for(self, stamp: int, camera: PinholeCamera):
        """The depth image nearest this frame's stamp, or None (counted) when none fits."""
        c = self._configs['node']
        nearest_stamp, depth = min(self._depths, key=lambda item: abs(item[0] - stamp))
        if abs(nearest_stamp - stamp) > c.max_depth_age_s * 1e9:
            self._no_depth(f'no depth image within {c.max_depth_age_s} s of')
            return None
        if depth.shape != (camera.height, camera.width):
            self._no_depth(f'the depth image is {depth.shape[1]}x{depth.shape[0]}, not the '
                           f'{camera.width}x{camera.height} of the pictures (it must be '
                           'aligned to them), for')
            return None
        return depth

    def _no_depth(self, reason: str) -> None:
        self.missing['depth'] += 1
        self.firewall.reject(f'camera/{self._configs["node"].view}/image_raw',
                             f'{reason} a frame: it gets no robot mask')

    def _no_joint_states(self, reason: str) -> None:
        self.missing['joint_states'] += 1
        self.firewall.reject(f'camera/{self._configs["node"].view}/image_raw',
                             f'{reason} a frame: it gets no robot mask')

    def _draw_loop(self) -> None:
        """Draw and publish each frame's mask; every GL call happens on this thread."""
        try:
            try:
                self._filter.check_drawing()
            except Exception as exc:  # noqa: BLE001 (raised by the constructor)
                self._drawing_error = exc
                return
            finally:
                self._drawing_checked.set()
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                camera, header, joints, depth, picture = job
                try:
                    if camera is not self._drawn:
                        self._filter.set_camera(camera)
                        self._drawn = camera
                    pixels = self._filter.mask(joints, depth,
                                               self._configs['node'].depth_margin_m)
                    mask = array_to_image(pixels, 'mono8', msg=Image())
                except Exception as exc:  # noqa: BLE001 (counted and logged; the next may do)
                    self.firewall.reject('drawing', f'{type(exc).__name__}: {exc}')
                    continue
                mask.header = header
                self._mask_pub.publish(mask)
                self.masks += 1
                if picture is not None:
                    self._publish_overlay(picture, pixels)
        finally:
            self._filter.close()

    def _publish_overlay(self, picture: Image, mask: np.ndarray) -> None:
        try:
            rgb = image_to_rgb(picture)
        except Exception as exc:  # noqa: BLE001 (an encoding the overlay cannot show)
            self.firewall.reject('overlay', f'{type(exc).__name__}: {exc}')
            return
        overlay = overlay_mask(rgb, mask)
        self._overlay_pub.publish(array_to_image(overlay, 'rgb8', header=picture.header))

    def _publish_status(self) -> None:
        self._status_pub.publish(status_message(self, {
            'masks': self.masks,
            **{f'frames_without/{k}': v for k, v in self.missing.items()},
            **{f'rejected/{k}': v for k, v in self.firewall.rejected.items()}}))

    def destroy_node(self) -> None:
        if hasattr(self, '_thread'):   # else refused at start-up, before the drawing thread
            while True:   # make room for the stop signal: pending frames are not drawn
                try:
                    self._jobs.get_nowait()
                except queue.Empty:
                    break
            self._jobs.put(None)
            self._thread.join(timeout=5.0)
        super().destroy_node()


def overlay_mask(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The picture with the mask tinted half green and outlined in green: where the model is.

    Green, since robots are rarely green (a red Sawyer turns olive); the outline shows an
    offset of a few pixels that a tint alone hides.
    """
    out = rgb.astype(np.uint16)
    robot = mask > 0
    out[robot] = (out[robot] + np.array([0, 255, 0])) // 2
    inner = robot.copy()   # robot pixels whose four neighbours are robot too
    inner[1:] &= robot[:-1]
    inner[:-1] &= robot[1:]
    inner[:, 1:] &= robot[:, :-1]
    inner[:, :-1] &= robot[:, 1:]
    out[robot & ~inner] = (0, 255, 0)
    return out.astype(np.uint8)


def main(args: list[str] | None = None) -> None:
    run_node(RobotMaskNode, args)


if __name__ == '__main__':
    main()
