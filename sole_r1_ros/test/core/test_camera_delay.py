"""A camera's latency measured from a moving arm (camera/delay.py, sole-r1 camera-delay).

The simulated Sawyer's expert moves the arm; its frames are stamped late by a known delay and
the estimate must find it, from the frames, the joint states and the self-filter alone.
"""
import json

import numpy as np
import pytest

pytest.importorskip('mujoco')

from sole_r1_ros.camera.delay import estimate_camera_delay, JointTrack  # noqa: E402
from sole_r1_ros.cli import main  # noqa: E402


def test_a_joint_track_interpolates_and_refuses_what_it_cannot_read():
    track = JointTrack([1.0, 2.0, 4.0], [{'a': 0.0, 'b': 1.0}, {'a': 1.0, 'b': 1.0},
                                         {'a': 3.0, 'b': 0.0}])
    assert track.at(1.5) == {'a': 0.5, 'b': 1.0}
    assert track.at(3.0) == {'a': 2.0, 'b': 0.5}
    assert track.covers(4.0) and not track.covers(4.01) and not track.covers(0.99)
    with pytest.raises(ValueError, match='two or more'):
        JointTrack([1.0], [{'a': 0.0}])
    with pytest.raises(ValueError, match='must increase'):
        JointTrack([1.0, 1.0], [{'a': 0.0}, {'a': 1.0}])
    with pytest.raises(ValueError, match="lacks joint 'b'"):
        JointTrack([1.0, 2.0], [{'a': 0.0, 'b': 0.0}, {'a': 1.0}])
    frames = [np.zeros((4, 4, 3), np.uint8)] * 2
    with pytest.raises(ValueError, match='no two consecutive frames lie inside'):
        estimate_camera_delay(frames, [0.0, 0.1], track, lambda joints: np.zeros((4, 4)),
                              [0.0])
    with pytest.raises(ValueError, match='no candidate'):
        estimate_camera_delay(frames, [1.5, 1.6], track, lambda joints: np.zeros((4, 4)), [])


def test_an_arm_and_a_gripper_published_apart_make_one_joint_track():
    """Merged as the node merges them: only messages with every joint were read (refused)."""
    from types import SimpleNamespace

    from sole_r1_ros.commands.camera_delay import _joint_track

    def message(**positions):
        return SimpleNamespace(name=list(positions), position=list(positions.values()))
    messages = [(3 * 10**9, message(elbow=0.3)), (1 * 10**9, message(elbow=0.1)),
                (2 * 10**9, message(finger=0.02)), (2 * 10**9, message(elbow=0.2)),
                (4 * 10**9, message(conveyor=9.0)), (5 * 10**9, message(finger=0.04))]
    track = _joint_track(messages, ('elbow', 'finger'), 'joint_states')
    assert track.at(2.0) == {'elbow': 0.2, 'finger': 0.02}
    assert track.at(4.0) == pytest.approx({'elbow': 0.3, 'finger': 0.03})
    with pytest.raises(ValueError, match=r"\['finger'\] never came"):
        _joint_track(messages[:2], ('elbow', 'finger'), 'joint_states')


@pytest.fixture(scope='module')
def sawyer_moving(tmp_path_factory):
    """60 expert steps of drawer-close at 128×96: frames, times, joints, the calibration."""
    pytest.importorskip('metaworld')
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig
    from sole_r1_ros.sim.metaworld_robot import write_robot_model

    robot = MetaWorldRobot(SimConfig(task='drawer-close-v3', image_width=128, image_height=96,
                                     wrist_camera=''))
    try:
        observation = robot.reset(seed=0)
        frames, times, joints = [], [], []
        for step in range(60):
            if step:
                observation, _ = robot.step(robot.expert_action())
            frames.append(observation.external.copy())
            times.append(observation.time_s)
            joints.append(dict(zip(observation.joint_names, observation.joint_positions)))
        camera, link = robot.camera_calibrations()[0]
    finally:
        robot.close()
    model = write_robot_model(str(tmp_path_factory.mktemp('sawyer') / 'sawyer.xml'))
    return frames, times, joints, camera, link, model


@pytest.mark.parametrize('late_s', [0.03, 0.06])
def test_the_delay_of_late_frames_is_found(sawyer_moving, late_s):
    """Frames every other control step (40 Hz), stamped late by a delay off the 12.5 ms grid."""
    from sole_r1_ros.camera.self_filter import RobotSelfFilter

    frames, times, joints, camera, link, model = sawyer_moving
    self_filter = RobotSelfFilter(model, camera, camera_link=link)
    try:
        estimate = estimate_camera_delay(
            frames[::2], [t + late_s for t in times[::2]], JointTrack(times, joints),
            self_filter.mask, np.arange(-0.02, 0.1001, 0.01))
    finally:
        self_filter.close()
    assert estimate.delay_s == pytest.approx(late_s, abs=0.006)
    best = max(estimate.agreement)
    at_zero = estimate.agreement[estimate.candidates_s.index(pytest.approx(0.0))]
    assert best > 2 * at_zero, estimate.agreement   # a clear peak, not a plateau


def test_the_command_reads_a_bag_and_the_node_section(sawyer_moving, tmp_path, capsys):
    """sole-r1 camera-delay on a bag whose camera is 50 ms late: camera_delay_s 0.05."""
    pytest.importorskip('rosbags')
    import yaml

    from sole_r1_ros.recording import BagWriter, make_typestore

    frames, times, joints, camera, link, model = sawyer_moving
    late_s = 0.05
    typestore = make_typestore()
    types = typestore.types

    def header(time_s: float):
        stamp_ns = int(round((100.0 + time_s) * 1e9))
        return stamp_ns, types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9,
                                                       nanosec=stamp_ns % 10**9),
            frame_id='camera')

    def write(writer, topic, msgtype, stamp_ns, msg):
        writer.write('/' + topic, msgtype, stamp_ns,
                     bytes(typestore.serialize_cdr(msg, msgtype)))

    def bag_of(path, with_joints=True, camera_ns='camera/external'):
        writer = BagWriter(str(path))
        stamp_ns, head = header(times[0])
        write(writer, f'{camera_ns}/camera_info', 'sensor_msgs/msg/CameraInfo', stamp_ns,
              types['sensor_msgs/msg/CameraInfo'](
                  header=head, height=camera.height, width=camera.width,
                  distortion_model='plumb_bob', d=np.zeros(5),
                  k=np.array(camera.ros_k()),
                  r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0,
                  roi=types['sensor_msgs/msg/RegionOfInterest'](
                      x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)))
        for frame, time_s, positions in zip(frames, times, joints):
            if with_joints:   # the gripper on its own message too, as some drivers do
                stamp_ns, head = header(time_s)
                write(writer, 'joint_states', 'sensor_msgs/msg/JointState', stamp_ns,
                      types['sensor_msgs/msg/JointState'](
                          header=head, name=['gripper'], position=np.zeros(1),
                          velocity=np.zeros(0), effort=np.zeros(0)))
                stamp_ns, head = header(time_s)
                write(writer, 'joint_states', 'sensor_msgs/msg/JointState', stamp_ns,
                      types['sensor_msgs/msg/JointState'](
                          header=head, name=list(positions),
                          position=np.array(list(positions.values())),
                          velocity=np.zeros(0), effort=np.zeros(0)))
            stamp_ns, head = header(time_s + late_s)
            write(writer, f'{camera_ns}/image_raw', 'sensor_msgs/msg/Image', stamp_ns,
                  types['sensor_msgs/msg/Image'](
                      header=head, height=frame.shape[0], width=frame.shape[1],
                      encoding='rgb8', is_bigendian=0, step=frame.shape[1] * 3,
                      data=np.ascontiguousarray(frame).reshape(-1)))
        writer.close()
        return str(path)

    params = tmp_path / 'robot.yaml'
    params.write_text(yaml.safe_dump({'/**/robot_mask_node': {'ros__parameters': {
        'robot_model': model, 'camera_link': link,
        'camera_position': [float(v) for v in camera.position],
        'camera_orientation': [float(v) for v in camera.orientation]}}}))
    out = tmp_path / 'delay.json'
    # Compared at 64×48 (the camera's K scaled with its pixels), as a 640×480 camera would be.
    command = ['camera-delay', bag_of(tmp_path / 'bag'), '--params', str(params), '--range',
               '0', '0.1', '--step', '0.01', '--max-frames', '40', '--max-side', '64',
               '--out', str(out), '--plot', str(tmp_path / 'delay.png')]
    assert main(command) == 0
    result = json.loads(out.read_text())
    assert result['camera_delay_s'] == pytest.approx(late_s, abs=0.006)
    assert len(result['agreement']) == len(result['candidates_s']) == 11
    assert 'camera_delay_s: 0.050' in capsys.readouterr().out
    assert (tmp_path / 'delay.png').stat().st_size > 1000
    # What it needs, said when it is missing.
    assert main(['camera-delay', bag_of(tmp_path / 'no_joints', with_joints=False),
                 '--params', str(params), '--out', str(out)]) == 2
    assert 'has no joint_states messages' in capsys.readouterr().err
    other = tmp_path / 'other_robot.yaml'
    other.write_text(params.read_text().replace(model, str(tmp_path / 'ball.xml')))
    (tmp_path / 'ball.xml').write_text(
        '<mujoco><worldbody><body><joint name="elbow" type="hinge"/><geom type="sphere" '
        'size="0.1"/></body></worldbody></mujoco>')
    assert main(['camera-delay', str(tmp_path / 'bag'), '--params', str(other),
                 '--out', str(out)]) == 2
    assert ("fewer than two moments with all of the model's joints ['elbow'] (['elbow'] "
            'never came)') in capsys.readouterr().err
    empty = tmp_path / 'other.yaml'
    empty.write_text(yaml.safe_dump({'/**/camera_node': {'ros__parameters': {}}}))
    assert main(['camera-delay', str(tmp_path / 'bag'), '--params', str(empty)]) == 2
    assert 'has no robot_mask_node section' in capsys.readouterr().err
    # A driver's own topic names, recorded as they are: --image-topic (camera_info beside it).
    driver = bag_of(tmp_path / 'driver', camera_ns='cam_ext/color')
    assert main(['camera-delay', driver, '--params', str(params), '--out', str(out)]) == 2
    assert 'has no camera/external/image_raw messages' in capsys.readouterr().err
    assert main(['camera-delay', driver, '--params', str(params), '--image-topic',
                 '/cam_ext/color/image_raw', '--range', '0.04', '0.06', '--step', '0.01',
                 '--max-frames', '10', '--max-side', '64', '--out', str(out)]) == 0
    assert json.loads(out.read_text())['camera_delay_s'] == pytest.approx(late_s, abs=0.011)
