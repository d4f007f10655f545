"""The self-filter node over real DDS: the robot's masks from joint states and camera info.

Against the simulator's own masks of the same frames (published beside them), which the node
never sees; and frames it cannot draw are counted, never masked with a guess.
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('mujoco')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402

from sole_r1_ros.image_msgs import array_to_image, image_to_array  # noqa: E402
from sole_r1_ros.nodes.firewall import read_status  # noqa: E402
from sole_r1_ros.nodes.robot_mask_node import RobotMaskNode  # noqa: E402

_DRAWN = ['--ros-args', '-r', 'camera/external/robot_mask:=camera/external/drawn_mask']


def _key(header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


@pytest.mark.parametrize('use_depth', [False, True])
def test_the_node_draws_the_simulated_robot_from_its_joint_states(
        ros_graph, tmp_path, use_depth):
    """With the simulated RGB-D camera's depth, what hides the robot is left out of the mask."""
    pytest.importorskip('metaworld')
    from sole_r1_ros.commands.learn import _calibrate_simulated_self_filter, SIMULATED_ROBOT
    from sole_r1_ros.nodes.sim_robot_node import SimRobotNode

    sim = {'task': 'drawer-close-v3', 'image_width': 64, 'image_height': 48}
    params = {'sim_robot_node': dict(sim), 'robot_mask_node': {'robot_model': SIMULATED_ROBOT,
                                                               'use_depth': use_depth}}
    _calibrate_simulated_self_filter(params, tmp_path)
    assert params['sim_robot_node'].get('publish_depth', False) == use_depth
    probe = ros_graph.probe('mask_probe')
    seen: dict[str, dict] = {'robot_mask': {}, 'drawn_mask': {}}
    for kind, store in seen.items():
        probe.create_subscription(
            Image, f'camera/external/{kind}',
            lambda msg, store=store: store.__setitem__(_key(msg.header), image_to_array(msg)),
            qos_profile_sensor_data)
    infos = []
    probe.create_subscription(CameraInfo, 'camera/external/camera_info', infos.append,
                              qos_profile_sensor_data)
    node = ros_graph.add(RobotMaskNode(
        context=ros_graph.context, cli_args=_DRAWN, parameter_overrides=[
            Parameter(name, value=value) for name, value in params['robot_mask_node'].items()]))
    time.sleep(0.3)
    ros_graph.add(SimRobotNode(context=ros_graph.context, parameter_overrides=[
        Parameter('publish_robot_masks', value=True), Parameter('rate_hz', value=20.0),
        *[Parameter(name, value=value) for name, value in params['sim_robot_node'].items()]]))

    def both() -> list:
        return sorted(set(seen['robot_mask']) & set(seen['drawn_mask']))
    assert ros_graph.wait_for(lambda: len(both()) >= 4, timeout=30.0), node.missing
    # The first frames may come before the camera info or joint states do; none after (each
    # frame waits for the joint states of its stamp). A busy machine may drop a frame the
    # drawing thread has no time for, counted as such.
    missing = dict(node.missing)
    assert ros_graph.wait_for(lambda: len(both()) >= 10, timeout=30.0), node.missing
    for reason in ('joint_states', 'camera_info', 'depth'):
        assert node.missing[reason] == missing[reason], reason
    assert set(node.firewall.rejected) <= {'camera/external/image_raw'}
    info = infos[-1]
    # the middle of 64 pixels, counted from the first one's centre as ROS's K counts
    assert (info.width, info.height) == (64, 48) and info.k[0] > 0 and info.k[2] == 31.5
    ious = []
    for stamp in both():
        truth, drawn = seen['robot_mask'][stamp] > 0, seen['drawn_mask'][stamp] > 0
        assert drawn.shape == (48, 64) and truth.any()
        assert (truth & drawn).sum() / truth.sum() > 0.99
        ious.append((truth & drawn).sum() / (truth | drawn).sum())
    # The table's edge hides a little of the robot from this camera: without depth it is
    # masked too (measured 0.95-0.97 at 128x128 in bench_erasing.py).
    assert min(ious) > (0.99 if use_depth else 0.85), ious


def _ball_node(ros_graph, tmp_path, *parameters, radius_m: float = 0.3) -> RobotMaskNode:
    """A self-filter of a ball on a slide joint (x), seen from 1 m in front, x to the right."""
    model = tmp_path / f'ball_{radius_m:g}.xml'
    model.write_text('<mujoco><worldbody><body name="carriage"><joint name="slide" '
                     f'type="slide" axis="1 0 0"/><geom type="sphere" size="{radius_m:g}"/>'
                     '</body></worldbody></mujoco>')
    return ros_graph.add(RobotMaskNode(context=ros_graph.context, parameter_overrides=[
        Parameter('robot_model', value=str(model)),
        Parameter('camera_position', value=[0.0, -1.0, 0.0]),
        Parameter('camera_orientation', value=[-0.70710678, 0.0, 0.0, 0.70710678]),
        *parameters]))


def _camera_and_joint_publishers(ros_graph, probe) -> tuple:
    """(image_raw, camera_info, joint_states) publishers, once the node subscribes to each."""
    images = probe.create_publisher(Image, 'camera/external/image_raw', qos_profile_sensor_data)
    infos = probe.create_publisher(CameraInfo, 'camera/external/camera_info',
                                   qos_profile_sensor_data)
    joints = probe.create_publisher(JointState, 'joint_states', 10)
    assert ros_graph.wait_for(lambda: images.get_subscription_count() > 0
                              and infos.get_subscription_count() > 0
                              and joints.get_subscription_count() > 0)
    return images, infos, joints


def _push_one_out(ros_graph, node, send, missing: str, count: int) -> None:
    """Send frames until the ninth waiting one pushes the oldest out, counted in ``missing``.

    One frame at a time, each taken before the next: sensor-data QoS keeps five, so a burst to
    a stalled node loses frames (a fresh-clone make test, 2026-12-05); a lost one is simply
    followed by the next. The queue must have held eight (``max_waiting_frames``) first.
    """
    held, sec = [], 40
    while node.missing[missing] < count and sec < 80:
        before = len(node._waiting)
        send(sec)
        sec += 1
        ros_graph.wait_for(lambda: len(node._waiting) != before
                           or node.missing[missing] == count, timeout=1.0)
        held.append(len(node._waiting))
    assert node.missing[missing] == count and max(held) == 8, held


def test_frames_it_cannot_draw_get_no_mask_and_are_counted(ros_graph, tmp_path):
    node = _ball_node(ros_graph, tmp_path)
    probe = ros_graph.probe('bad_frames_probe')
    masks, statuses = [], []
    probe.create_subscription(Image, 'camera/external/robot_mask', masks.append,
                              qos_profile_sensor_data)
    probe.create_subscription(DiagnosticArray, '/diagnostics', statuses.append, 10)
    images, infos, joints = _camera_and_joint_publishers(ros_graph, probe)

    def frame(sec: int, width: int = 32) -> None:
        msg = array_to_image(np.zeros((24, width, 3), np.uint8), 'rgb8')
        msg.header.stamp.sec, msg.header.frame_id = sec, 'external_camera'
        images.publish(msg)

    def joint_state(sec: int, value: float, name: str = 'slide') -> None:
        msg = JointState(name=[name], position=[value])
        msg.header.stamp.sec = sec
        joints.publish(msg)

    frame(10)   # no camera info yet
    assert ros_graph.wait_for(lambda: node.missing['camera_info'] == 1)
    info = CameraInfo(width=32, height=24, k=[30.0, 0, 16.0, 0, 30.0, 12.0, 0, 0, 1])
    infos.publish(CameraInfo(width=32, height=24, k=[0.0] * 9))   # refused: no focal length
    infos.publish(info)
    assert ros_graph.wait_for(
        lambda: node.firewall.rejected.get('camera/external/camera_info') == 1)
    time.sleep(0.2)
    frame(11)   # waits for joint states stamped at or after it ...
    time.sleep(0.2)
    assert node.missing['joint_states'] == 0
    joint_state(12, float('nan'))   # refused
    joint_state(12, 0.0)   # ... which come a second later: too far
    assert ros_graph.wait_for(lambda: node.missing['joint_states'] == 1)
    assert node.firewall.rejected['joint_states'] == 1
    frame(12, width=40)   # not the camera info's size
    assert ros_graph.wait_for(
        lambda: node.firewall.rejected.get('camera/external/image_raw', 0) == 3)
    assert masks == []
    frame(12)   # its joint states, at its stamp
    assert ros_graph.wait_for(lambda: len(masks) == 1)
    mask = image_to_array(masks[0])
    assert masks[0].encoding == 'mono8' and _key(masks[0].header) == (12, 0)
    assert masks[0].header.frame_id == 'external_camera'
    assert mask.shape == (24, 32) and mask[12, 16] == 255 and mask[0, 0] == 0
    joint_state(30, 0.0, name='elbow')   # not the model's joint: another device's, ignored
    time.sleep(0.2)
    frame(30)   # waits for joint states of the model stamped at or after it
    time.sleep(0.2)
    assert node.missing['joint_states'] == 1 and 'drawing' not in node.firewall.rejected
    _push_one_out(ros_graph, node, frame, 'joint_states', 2)   # joint states stop
    assert len(masks) == 1
    name = node.get_fully_qualified_name()
    expected = {'masks': '1', 'frames_without/joint_states': '2',
                'frames_without/camera_info': '1'}
    assert ros_graph.wait_for(lambda: any(
        expected.items() <= (read_status(s, name) or {}).items() for s in statuses), timeout=5.0)
    assert ros_graph.error is None


def test_a_camera_with_lens_distortion_is_said_not_drawn_as_if_pinhole(ros_graph, tmp_path):
    """The mask is drawn from K alone: on a distorted image it misses the arm at the edges."""
    from rcl_interfaces.msg import Log

    from fakes import ROSOUT_QOS
    node = _ball_node(ros_graph, tmp_path)
    probe = ros_graph.probe('distortion_probe')
    logs = []
    probe.create_subscription(Log, '/rosout', logs.append, ROSOUT_QOS)
    _, infos, _ = _camera_and_joint_publishers(ros_graph, probe)
    k = [30.0, 0, 16.0, 0, 30.0, 12.0, 0, 0, 1]
    infos.publish(CameraInfo(width=32, height=24, k=k, d=[0.0] * 5))   # rectified: quiet
    infos.publish(CameraInfo(width=32, height=24, k=k, d=[-0.3, 0.1, 0.0, 0.0, 0.0]))
    name = node.get_name()
    assert ros_graph.wait_for(lambda: any(
        m.name.endswith(name) and 'lens distortion' in m.msg and 'image_rect' in m.msg
        and 'rectified: true' in m.msg for m in list(logs)), timeout=5.0)
    assert sum('lens distortion' in m.msg for m in list(logs)) == 1


def test_with_depth_a_frame_waits_for_its_depth_and_what_is_in_front_is_left_out(
        ros_graph, tmp_path):
    node = _ball_node(ros_graph, tmp_path, Parameter('use_depth', value=True))
    probe = ros_graph.probe('depth_probe')
    masks = []
    probe.create_subscription(Image, 'camera/external/robot_mask', masks.append,
                              qos_profile_sensor_data)
    images, infos, joints = _camera_and_joint_publishers(ros_graph, probe)
    depths = probe.create_publisher(Image, 'camera/external/depth/image_raw',
                                    qos_profile_sensor_data)
    assert ros_graph.wait_for(lambda: depths.get_subscription_count() > 0)
    infos.publish(CameraInfo(width=32, height=24, k=[30.0, 0, 16.0, 0, 30.0, 12.0, 0, 0, 1]))
    time.sleep(0.2)

    def stamped(msg, sec: int, nanosec: int = 0):
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        return msg

    def moment(sec: int, depth: np.ndarray | None, depth_nanosec: int = 0) -> None:
        joints.publish(stamped(JointState(name=['slide'], position=[0.0]), sec))
        images.publish(stamped(array_to_image(np.zeros((24, 32, 3), np.uint8), 'rgb8'), sec))
        if depth is not None:
            time.sleep(0.1)
            encoding = '16UC1' if depth.dtype == np.uint16 else '32FC1'
            depths.publish(stamped(array_to_image(depth, encoding), sec, depth_nanosec))

    # The ball, 0.7-1 m away, fills the middle; something 0.5 m away stands on its left half.
    depth = np.full((24, 32), 0.5, np.float32)
    depth[:, 16:] = np.nan   # no reading there: the robot's, as without depth
    moment(10, None)
    time.sleep(0.3)
    assert masks == [] and node.missing['depth'] == 0, 'it waits for its depth image'
    depths.publish(stamped(array_to_image(depth, '32FC1'), 10))
    assert ros_graph.wait_for(lambda: len(masks) == 1)
    drawn = image_to_array(masks[0]) > 0
    assert not drawn[:, :16].any() and drawn[12, 16:24].all()
    millimetres = np.where(np.isnan(depth), 0, depth * 1000).astype(np.uint16)
    moment(11, millimetres)   # the driver's other encoding: the same mask
    assert ros_graph.wait_for(lambda: len(masks) == 2)
    np.testing.assert_array_equal(image_to_array(masks[1]) > 0, drawn)
    depths.publish(array_to_image(np.zeros((24, 32, 3), np.uint8), 'rgb8'))   # refused
    assert ros_graph.wait_for(
        lambda: node.firewall.rejected.get('camera/external/depth/image_raw') == 1)
    moment(20, depth[:, :30])   # not aligned to the pictures
    assert ros_graph.wait_for(lambda: node.missing['depth'] == 1)
    moment(30, depth, depth_nanosec=200_000_000)   # 0.2 s from the frame: too far
    assert ros_graph.wait_for(lambda: node.missing['depth'] == 2)
    _push_one_out(ros_graph, node, lambda sec: moment(sec, None), 'depth', 3)   # depth stops
    assert len(masks) == 2 and node.missing['joint_states'] == 0
    assert ros_graph.error is None


def test_a_late_camera_is_drawn_at_the_joint_states_of_its_exposure(ros_graph, tmp_path):
    """camera_delay_s: a frame stamped on arrival is drawn where the robot was when exposed.

    The overlay, drawn while someone watches, shows the mask on the picture (a calibration
    check in rviz).
    """
    node = _ball_node(ros_graph, tmp_path, Parameter('camera_delay_s', value=0.5))
    probe = ros_graph.probe('late_camera_probe')
    masks, overlays = {}, {}
    for topic, store in (('robot_mask', masks), ('robot_mask_overlay', overlays)):
        probe.create_subscription(
            Image, f'camera/external/{topic}',
            lambda msg, store=store: store.__setitem__(_key(msg.header), image_to_array(msg)),
            qos_profile_sensor_data)
    images, infos, joints = _camera_and_joint_publishers(ros_graph, probe)
    infos.publish(CameraInfo(width=32, height=24, k=[30.0, 0, 16.0, 0, 30.0, 12.0, 0, 0, 1]))
    time.sleep(0.2)
    for sec, nanosec, slide in ((20, 0, 0.0), (20, 500_000_000, 0.4), (21, 0, 0.4)):
        msg = JointState(name=['slide'], position=[slide])
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        joints.publish(msg)
    time.sleep(0.2)
    for sec, nanosec in ((20, 500_000_000), (21, 0)):
        msg = array_to_image(np.full((24, 32, 3), 100, np.uint8), 'rgb8')
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        images.publish(msg)
    assert ros_graph.wait_for(lambda: len(masks) == 2 and len(overlays) == 2)
    # Stamped 20.5 s, exposed at 20.0 s: the ball still at the centre (at 20.5 s it had
    # moved 12 px right); stamped 21.0 s: where it was at 20.5 s.
    at_exposure, later = masks[(20, 500_000_000)], masks[(21, 0)]
    assert at_exposure[12, 16] == 255 and at_exposure[12, 28] == 0
    assert later[12, 16] == 0 and later[12, 28] == 255
    for key, mask in masks.items():
        overlay = overlays[key]
        assert overlay.shape == (24, 32, 3)
        inside = mask.astype(bool)
        inside[:, :-1] &= mask[:, 1:] > 0   # away from the outline
        inside[:, 1:] &= mask[:, :-1] > 0
        inside[:-1] &= mask[1:] > 0
        inside[1:] &= mask[:-1] > 0
        outline = (mask > 0) & ~inside
        assert inside.any() and outline.any()
        assert (overlay[inside] == [50, 177, 50]).all()
        assert (overlay[outline] == [0, 255, 0]).all()
        assert (overlay[mask == 0] == 100).all() and (mask == 0).any()
    # Tuned while watching the overlay: the delay takes effect on the next frame.
    assert node.set_parameters([Parameter('camera_delay_s', value=0.0)])[0].successful
    assert not node.set_parameters([Parameter('camera_delay_s', value=5.0)])[0].successful
    msg = JointState(name=['slide'], position=[0.0])
    msg.header.stamp.sec = 22
    joints.publish(msg)
    time.sleep(0.2)
    msg = array_to_image(np.full((24, 32, 3), 100, np.uint8), 'rgb8')
    msg.header.stamp.sec = 22
    images.publish(msg)
    assert ros_graph.wait_for(lambda: (22, 0) in masks)
    assert masks[(22, 0)][12, 16] == 255   # drawn at 22.0 s; at 21.5 s there were no joints
    assert ros_graph.error is None


def test_a_node_without_a_robot_model_says_what_it_needs(ros_graph):
    with pytest.raises(ValueError, match='robot_model is required'):
        RobotMaskNode(context=ros_graph.context)


def test_the_commented_section_of_the_real_robot_config_is_valid():
    """Uncommented as a user would, real_robot_learn.yaml's self-filter section loads."""
    import yaml

    from sole_r1_ros.bringup import config_dir
    from sole_r1_ros.configuration import from_mapping
    from sole_r1_ros.nodes.robot_mask_node import RobotMaskNodeConfig

    lines = (config_dir() / 'real_robot_learn.yaml').read_text().splitlines()
    start = lines.index('# /**/robot_mask_node:')
    section = []
    for line in lines[start:]:
        if not line.startswith('#'):
            break
        section.append(line[2:])
    params = yaml.safe_load('\n'.join(section))['/**/robot_mask_node']['ros__parameters']
    config = from_mapping(RobotMaskNodeConfig, params)
    assert config.robot_model and config.camera_delay_s == 0.0
    assert len(config.camera_position) == 3 and len(config.camera_orientation) == 4


def test_a_camera_left_at_the_bases_origin_is_refused():
    """The default calibration drew masks of 100 % of the picture, without a word."""
    from sole_r1_ros.configuration import from_mapping
    from sole_r1_ros.nodes.robot_mask_node import RobotMaskNodeConfig
    with pytest.raises(ValueError, match='hand-eye calibration'):
        from_mapping(RobotMaskNodeConfig, {'robot_model': 'arm.urdf'})
    # at a link's origin is fine: a URDF that has the camera's optical frame as a link
    from_mapping(RobotMaskNodeConfig, {'robot_model': 'arm.urdf',
                                       'camera_link': 'camera_optical_frame'})


def test_a_machine_that_cannot_draw_fails_the_node_at_start_with_what_to_set(tmp_path):
    """Headless with MUJOCO_GL=glfw: the node refuses to start, naming egl and osmesa."""
    import os
    import subprocess
    import sys
    import textwrap

    model = tmp_path / 'ball.xml'
    model.write_text('<mujoco><worldbody><body name="b"><joint name="slide" type="slide"/>'
                     '<geom type="sphere" size="0.1"/></body></worldbody></mujoco>')
    script = textwrap.dedent(f'''
        import rclpy
        from rclpy.parameter import Parameter
        from sole_r1_ros.nodes.robot_mask_node import RobotMaskNode
        rclpy.init()
        try:
            RobotMaskNode(parameter_overrides=[
                Parameter('robot_model', value={str(model)!r}),
                Parameter('camera_position', value=[0.0, -1.0, 0.3])])
        except RuntimeError as exc:
            print('REFUSED:', exc)
        finally:
            rclpy.try_shutdown()
        ''')
    env = {k: v for k, v in os.environ.items()
           if k not in ('DISPLAY', 'WAYLAND_DISPLAY', 'PYOPENGL_PLATFORM')}
    env['MUJOCO_GL'] = 'glfw'
    done = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                          text=True, timeout=120)
    refused = [line for line in done.stdout.splitlines() if line.startswith('REFUSED:')]
    assert refused, done.stdout + done.stderr
    assert 'MuJoCo cannot draw the robot mask here (MUJOCO_GL: glfw)' in refused[0]
    assert 'MUJOCO_GL=egl' in refused[0] and 'MUJOCO_GL=osmesa' in refused[0]


class _Feed:
    """Messages handed to the node's own guarded callbacks, in the test's order, as DDS would.

    Deterministic where a burst over DDS is not (a 1 kHz joint_states); the masks go out over
    DDS, each waited for.
    """

    def __init__(self, ros_graph, node) -> None:
        guard = node.firewall.guard
        self._graph, self.node = ros_graph, node
        self._image = guard('camera/external/image_raw', node._image_callback)
        self._info = guard('camera/external/camera_info', node._info_callback)
        self._joints = guard('joint_states', node._joint_states_callback)
        self.masks: dict[int, np.ndarray] = {}
        ros_graph.probe('feed_probe').create_subscription(
            Image, 'camera/external/robot_mask',
            lambda msg: self.masks.__setitem__(_ns(msg.header.stamp), image_to_array(msg)),
            qos_profile_sensor_data)
        time.sleep(0.3)   # the probe's subscription matched

    def info(self, width: int, height: int, k=(0.0,) * 9, **fields) -> None:
        for name in ('p', 'd'):
            if name in fields:
                fields[name] = [float(v) for v in fields[name]]
        self._info(CameraInfo(width=width, height=height, k=[float(v) for v in k], **fields))

    def joints(self, t: float, **positions: float) -> None:
        msg = JointState(name=list(positions), position=[float(v) for v in positions.values()])
        msg.header.stamp = _stamp(t)
        self._joints(msg)

    def frame(self, t: float, width: int, height: int) -> None:
        msg = array_to_image(np.zeros((height, width, 3), np.uint8), 'rgb8')
        msg.header.stamp = _stamp(t)
        self._image(msg)

    def mask(self, t: float) -> np.ndarray:
        """The mask of the frame stamped ``t``, once it comes."""
        key = _ns(_stamp(t))
        assert self._graph.wait_for(lambda: key in self.masks, timeout=10.0), (
            self.node.missing, self.node.firewall.rejected)
        return self.masks[key] > 0


def _stamp(t: float):
    from builtin_interfaces.msg import Time
    nanoseconds = round(t * 1e9)
    return Time(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)


def _ns(stamp) -> int:
    return stamp.sec * 10**9 + stamp.nanosec


def _column(mask: np.ndarray) -> float:
    """Where the mask's centre is along u, as CameraInfo's K and P count (from pixel centres)."""
    return float(np.nonzero(mask)[1].mean())


_INERTIAL = ('<inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" '
             'ixz="0" iyz="0"/></inertial>')
_ARM_AND_GRIPPER = f'''<robot name="arm"><link name="base"/>
  <link name="forearm"><collision><origin xyz="0.2 0 0"/>
    <geometry><box size="0.4 0.05 0.05"/></geometry></collision>{_INERTIAL}</link>
  <joint name="elbow" type="revolute"><parent link="base"/><child link="forearm"/>
    <axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <link name="left_finger"><collision><geometry><box size="0.06 0.04 0.05"/></geometry>
    </collision>{_INERTIAL}</link>
  <joint name="finger_joint" type="prismatic"><parent link="forearm"/><child link="left_finger"/>
    <origin xyz="0.4 0 0"/><axis xyz="0 1 0"/>
    <limit lower="0" upper="0.15" effort="1" velocity="1"/></joint>
  <link name="right_finger"><collision><geometry><box size="0.06 0.04 0.05"/></geometry>
    </collision>{_INERTIAL}</link>
  <joint name="right_finger_joint" type="prismatic"><parent link="forearm"/>
    <child link="right_finger"/><origin xyz="0.4 0 0"/><axis xyz="0 1 0"/>
    <limit lower="-0.15" upper="0" effort="1" velocity="1"/>
    <mimic joint="finger_joint" multiplier="-1"/></joint>
  <link name="wrist_camera"><visual><geometry><box size="0.05 0.05 0.05"/></geometry></visual>
    </link>
  <joint name="wrist_camera_mount" type="fixed"><parent link="forearm"/>
    <child link="wrist_camera"/><origin xyz="0.3 0 0.05"/></joint>
</robot>'''


def test_an_arm_and_a_gripper_publishing_apart_are_drawn_together(ros_graph, tmp_path):
    """Partial joint_states merged, mimic joints computed, other devices' NaN ignored.

    A ros2_control gripper publishes its driven joint only, on its own joint_states messages
    (stamped a little behind the arm's); a conveyor on the same topic reads NaN.
    """
    from rcl_interfaces.msg import Log

    from fakes import ROSOUT_QOS
    logs = []
    ros_graph.probe('visual_only_probe').create_subscription(Log, '/rosout', logs.append,
                                                             ROSOUT_QOS)
    urdf = tmp_path / 'arm.urdf'
    urdf.write_text(_ARM_AND_GRIPPER)
    node = ros_graph.add(RobotMaskNode(context=ros_graph.context, parameter_overrides=[
        Parameter('robot_model', value=str(urdf)), Parameter('draw_max_side', value=0),
        Parameter('camera_position', value=[0.0, 0.0, 1.5]),   # looking down
        Parameter('camera_orientation', value=[1.0, 0.0, 0.0, 0.0])]))
    assert ros_graph.wait_for(lambda: any(
        "links ['wrist_camera']" in m.msg and 'visual geometry only' in m.msg
        for m in list(logs)), timeout=5.0)
    feed = _Feed(ros_graph, node)
    feed.info(128, 128, [80.0, 0, 64.0, 0, 80.0, 64.0, 0, 0, 1])
    # The arm alone: its frame is counted, naming what never came.
    feed.joints(5.0, elbow=0.0)
    feed.frame(5.0, 128, 128)
    feed.joints(5.01, elbow=0.0)
    assert node.missing['joint_states'] == 1 and not feed.masks
    feed.joints(10.0, finger_joint=0.1, conveyor_joint=float('nan'))
    feed.joints(10.0, elbow=0.0, conveyor_joint=float('nan'))
    feed.frame(10.0, 128, 128)
    feed.joints(10.01, elbow=0.0)
    feed.joints(9.998, finger_joint=0.1)   # the gripper's, stamped behind: history kept
    open_hand = feed.mask(10.0)
    assert open_hand[64, 66:82].all()   # the forearm, to the right (22 px long)
    # The fingers 10 cm either side of the forearm's tip, the mimicking one too: 5 px
    # above and below it (row 64, the principal point's).
    assert open_hand[[58, 59, 69, 70], 84:87].all()
    feed.joints(10.02, finger_joint=0.0)
    feed.frame(10.02, 128, 128)
    feed.joints(10.03, elbow=0.0)
    closed = feed.mask(10.02)   # the hand closed on the forearm's tip
    assert closed[64, 66:82].all() and not closed[[58, 59, 69, 70], 83:87].any()
    feed.joints(10.04, elbow=np.pi / 2)
    feed.frame(10.04, 128, 128)
    feed.joints(10.05, elbow=np.pi / 2)
    raised = feed.mask(10.04)   # the arm turned up (world y is up in this image)
    assert raised[46:62, 64].all() and not raised[64, 70:82].any()
    assert node.firewall.rejected.get('joint_states') is None
    assert 'drawing' not in node.firewall.rejected
    # The arm's publisher stops, the gripper's goes on: the arm's pose goes stale.
    for step in range(30):
        feed.joints(10.1 + step * 0.1, finger_joint=0.0)
    feed.frame(13.0, 128, 128)
    assert node.missing['joint_states'] == 2
    assert ros_graph.error is None


def _small_ball_node(ros_graph, tmp_path, *parameters) -> RobotMaskNode:
    """A 5 cm ball on a slide joint (x), 1 m in front of the camera, drawn at full size."""
    return _ball_node(ros_graph, tmp_path, Parameter('draw_max_side', value=0), *parameters,
                      radius_m=0.05)


def test_a_late_frame_finds_a_1khz_joint_history_and_is_drawn_between_two_states(
        ros_graph, tmp_path):
    """The history is kept by age, not count; a frame between two states is interpolated."""
    node = _small_ball_node(ros_graph, tmp_path)
    feed = _Feed(ros_graph, node)
    feed.info(160, 120, [100.0, 0, 80.0, 0, 100.0, 60.0, 0, 0, 1])   # 1 cm: 1 px
    # 1.5 s of a 1 kHz joint_state_broadcaster, the ball moving 20 cm/s; the frame exposed at
    # 0.5 s comes a second late.
    for step in range(1500):
        feed.joints(20.0 + step / 1000, slide=0.2 * step / 1000)
    feed.frame(20.5, 160, 120)
    assert abs(_column(feed.mask(20.5)) - (80 + 10)) < 0.5, node.missing
    # 100 Hz: the frame 15 ms into a 40 ms gap is drawn 3 cm along the 8 cm the ball moved.
    feed.joints(30.0, slide=0.0)
    feed.joints(30.04, slide=0.08)
    feed.frame(30.015, 160, 120)
    assert abs(_column(feed.mask(30.015)) - (80 + 3)) < 0.5
    # Time went back (a restarted bag): the history starts again.
    feed.joints(5.0, slide=-0.1)
    feed.frame(5.0, 160, 120)
    feed.joints(5.001, slide=-0.1)
    assert abs(_column(feed.mask(5.0)) - (80 - 10)) < 0.5
    assert node.missing['joint_states'] == 0 and node.firewall.rejected == {}


def test_a_rectified_binned_or_cropped_camera_is_drawn_with_its_own_intrinsics(
        ros_graph, tmp_path):
    """rectified: camera_info P; binning and ROI as image_geometry reads them."""
    def drawn(t: float, size: tuple[int, int], **info) -> np.ndarray:
        feed.info(**info)
        feed.joints(t, slide=0.1)
        feed.frame(t, *size)
        feed.joints(t + 0.001, slide=0.1)
        return feed.mask(t)

    k = [100.0, 0, 80.0, 0, 100.0, 60.0, 0, 0, 1]   # the ball 10 px right of the centre
    p = [80.0, 0, 70.0, 0, 0, 80.0, 50.0, 0, 0, 0, 1, 0]   # rectified: 8 px right of (70, 50)
    node = _small_ball_node(ros_graph, tmp_path, Parameter('rectified', value=True))
    feed = _Feed(ros_graph, node)
    distorted = [-0.3, 0.1, 0.0, 0.0, 0.0]
    mask = drawn(10.0, (160, 120), width=160, height=120, k=k, p=p, d=distorted)
    rows, columns = np.nonzero(mask)
    assert abs(columns.mean() - 78) < 0.5 and abs(rows.mean() - 50) < 0.5
    # The full-resolution calibration of a camera binning 2x2 or cropped to its middle: the
    # same 80x60 picture as a camera calibrated at 80x60.
    small = drawn(11.0, (80, 60), width=80, height=60,
                  p=[50.0, 0, 40.0, 0, 0, 50.0, 30.0, 0, 0, 0, 1, 0])
    binned = drawn(12.0, (80, 60), width=160, height=120, binning_x=2, binning_y=2,
                   p=[100.0, 0, 80.0, 0, 0, 100.0, 60.0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(binned, small)
    from sensor_msgs.msg import RegionOfInterest
    crop = RegionOfInterest(x_offset=40, y_offset=30, width=80, height=60)
    cropped = drawn(13.0, (80, 60), width=160, height=120, roi=crop,
                    p=[50.0, 0, 80.0, 0, 0, 50.0, 60.0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(cropped, small)
    assert node.missing['camera_info'] == 0 and node.firewall.rejected == {}
    outside = RegionOfInterest(x_offset=100, y_offset=0, width=80, height=60)
    feed.info(160, 120, k, p=p, roi=outside)
    assert node.firewall.rejected == {'camera/external/camera_info': 1}


def test_joint_states_without_advancing_stamps_are_said_and_never_kept_without_bound(
        ros_graph, tmp_path):
    """A driver that leaves header.stamp at 0, or constant, had every message kept for ever.

    At 1 kHz that is 2 GB an hour, and no frame was ever drawn, with no word of the stamps.
    """
    from sole_r1_ros.nodes import robot_mask_node
    node = _small_ball_node(ros_graph, tmp_path)
    feed = _Feed(ros_graph, node)
    for _ in range(3):
        feed.joints(0.0, slide=0.0)
    assert node.firewall.rejected.get('joint_states') == 3 and not node._joint_stamps
    for step in range(robot_mask_node.JOINT_HISTORY_MAX + 500):
        feed.joints(7.0, slide=0.001 * (step % 100))     # one stamp, over and over
    assert len(node._joint_stamps) == robot_mask_node.JOINT_HISTORY_MAX
    assert len(node._joint_states) == robot_mask_node.JOINT_HISTORY_MAX


def test_masks_go_out_reliably_to_the_camera_node_in_another_process(ros_graph, tmp_path):
    """Best effort, 28 of 99 masks of a 1280x720 camera reached the camera node."""
    from rclpy.qos import ReliabilityPolicy
    node = _small_ball_node(ros_graph, tmp_path)
    publishers = node.get_publishers_info_by_topic('/camera/external/robot_mask')
    assert [p.qos_profile.reliability for p in publishers] == [ReliabilityPolicy.RELIABLE]
