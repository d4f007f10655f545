"""recorder_node writes a rosbag2/MCAP bag that rosbags reads back, episodes and rewards intact."""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('rosbags')

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from sole_r1_interfaces.msg import Episode, ProgressReward  # noqa: E402
from sole_r1_ros.image_msgs import array_to_image  # noqa: E402
from sole_r1_ros.nodes.camera_node import _LATCHED  # noqa: E402
from sole_r1_ros.nodes.recorder_node import RecorderNode  # noqa: E402
from sole_r1_ros.recording import make_typestore, read_camera_episodes, read_topics  # noqa: E402,E501


def test_recorded_bag_reads_back_with_episodes_images_and_rewards(ros_graph, tmp_path):
    bag = tmp_path / 'bag'
    recorder = ros_graph.add(RecorderNode(context=ros_graph.context, parameter_overrides=[
        Parameter('bag_path', value=str(bag))]))
    probe = ros_graph.probe()
    external = probe.create_publisher(Image, 'camera/external/image_raw', qos_profile_sensor_data)
    wrist = probe.create_publisher(Image, 'camera/wrist/image_raw', qos_profile_sensor_data)
    # A camera driver's intrinsics, best effort as its images (a self-filter replays them).
    infos = probe.create_publisher(CameraInfo, 'camera/external/camera_info',
                                   qos_profile_sensor_data)
    episodes = probe.create_publisher(Episode, 'episode', _LATCHED)
    rewards = probe.create_publisher(ProgressReward, 'sole_r1/progress', 10)
    assert ros_graph.wait_for(lambda: external.get_subscription_count() > 0
                              and infos.get_subscription_count() > 0
                              and rewards.get_subscription_count() > 0)
    time.sleep(0.3)
    for episode_index, episode_id in enumerate(('ep-a', 'ep-b')):
        start = Episode(episode_id=episode_id)
        start.header.stamp.sec = 100 * (episode_index + 1)
        episodes.publish(start)
        time.sleep(0.1)
        for i in range(3):
            stamp_sec = 100 * (episode_index + 1) + i
            for publisher, value in ((external, 10 * i + episode_index), (wrist, 200)):
                msg = array_to_image(np.full((8, 12, 3), value, np.uint8), 'rgb8')
                msg.header.stamp.sec = stamp_sec
                publisher.publish(msg)
            infos.publish(CameraInfo(width=12, height=8, k=[10.0, 0, 6, 0, 10.0, 4, 0, 0, 1]))
            rewards.publish(ProgressReward(episode_id=episode_id, step=i, progress=10.0 * i,
                                           reasoning=f'step {i} of {episode_id}'))
            time.sleep(0.05)
    assert ros_graph.wait_for(lambda: recorder.writer.count >= 2 + 6 * 4, timeout=5.0)
    recorder.writer.close()

    read = read_camera_episodes(bag, 'camera/external/image_raw', 'camera/wrist/image_raw')
    assert [e.episode_id for e in read] == ['ep-a', 'ep-b']
    assert [len(e.external) for e in read] == [3, 3]
    assert read[1].external[2][0, 0, 0] == 21 and read[0].wrist[0][0, 0, 0] == 200

    from rosbags.highlevel import AnyReader
    with AnyReader([bag], default_typestore=make_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == '/sole_r1/progress']
        texts = [reader.deserialize(raw, c.msgtype).reasoning
                 for c, _, raw in reader.messages(connections=connections)]
        assert texts[-1] == 'step 2 of ep-b' and len(texts) == 6
        connections = [c for c in reader.connections if c.topic == '/camera/external/camera_info']
        widths = [reader.deserialize(raw, c.msgtype).width
                  for c, _, raw in reader.messages(connections=connections)]
    assert widths == [12] * 6


def test_episode_ends_a_drivers_camera_topic_and_a_quiet_tail_reach_the_bag(
        ros_graph, tmp_path):
    """Three things the bag lost.

    An episode's end followed at once by the next start (depth 1 kept the start only); a
    best-effort camera recorded under its driver's name (reliable QoS, by the name's prefix:
    nothing); the last messages before the traffic stopped (flushed only by a next write).
    And an extra topic of another type than a default one of its name is recorded as it.
    """
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from trajectory_msgs.msg import JointTrajectory
    bag = tmp_path / 'bag'
    recorder = ros_graph.add(RecorderNode(context=ros_graph.context, parameter_overrides=[
        Parameter('bag_path', value=str(bag)), Parameter('extra_topics', value=[
            '/cam_ext/color/image_raw=sensor_msgs/msg/Image',
            'gripper_controller/commands=trajectory_msgs/msg/JointTrajectory'])]))
    probe = ros_graph.probe()
    camera = probe.create_publisher(Image, '/cam_ext/color/image_raw', qos_profile_sensor_data)
    episodes = probe.create_publisher(Episode, 'episode', QoSProfile(
        depth=8, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    gripper = probe.create_publisher(JointTrajectory, 'gripper_controller/commands', 10)
    assert ros_graph.wait_for(lambda: camera.get_subscription_count() > 0
                              and gripper.get_subscription_count() > 0
                              and episodes.get_subscription_count() > 0)
    time.sleep(0.3)
    for name in ('a', '', 'b', '', 'c'):      # ends and starts back to back, as a reset does
        episodes.publish(Episode(episode_id=name))
    for value in range(3):
        camera.publish(array_to_image(np.full((8, 12, 3), value, np.uint8), 'rgb8'))
        time.sleep(0.05)
    gripper.publish(JointTrajectory(joint_names=['finger']))
    assert ros_graph.wait_for(lambda: recorder.writer.count >= 9, timeout=5.0)
    time.sleep(1.6)                           # nothing more comes: the timer flushes
    read = read_topics(bag, ['episode', 'cam_ext/color/image_raw',
                             'gripper_controller/commands'])   # no metadata yet: as if killed
    assert [m.episode_id for _, m in read['episode']] == ['a', '', 'b', '', 'c']
    assert len(read['cam_ext/color/image_raw']) == 3
    assert [m.joint_names for _, m in read['gripper_controller/commands']] == [['finger']]


def test_score_bag_scores_every_recorded_episode(tmp_path):
    """A bag written by BagWriter (real CDR from rclpy) scored offline by ``sole-r1 score-bag``."""
    import json

    from rclpy.serialization import serialize_message

    from sole_r1_ros.cli import main
    from sole_r1_ros.recording import BagWriter
    bag = tmp_path / 'bag'
    writer = BagWriter(bag)
    for e, episode_id in enumerate(('ep-a', 'ep-b')):
        start = Episode(episode_id=episode_id)
        start.header.stamp.sec = 100 * (e + 1)
        # recorded at their stamps, as a recorder receives them
        writer.write('/episode', 'sole_r1_interfaces/msg/Episode', 100 * (e + 1) * 10**9,
                     serialize_message(start))
        for i in range(4 + e):
            msg = array_to_image(np.full((16, 16, 3), 30 * i, np.uint8), 'rgb8')
            msg.header.stamp.sec = 100 * (e + 1) + i
            writer.write('/camera/external/image_raw', 'sensor_msgs/msg/Image',
                         msg.header.stamp.sec * 10**9, serialize_message(msg))
    writer.close()
    out = tmp_path / 'scores.json'
    assert main(['score-bag', str(bag), '--goal', 'close the drawer', '--wrist-topic', '',
                 '--stride', '2', '--model', 'tiny-random', '--max-new-tokens', '4',
                 '--out', str(out),
                 '--plot', str(tmp_path / 'curves.png')]) == 0
    report = json.loads(out.read_text())
    assert [e['episode_id'] for e in report['episodes']] == ['ep-a', 'ep-b']
    assert [e['query_steps'] for e in report['episodes']] == [[2, 3], [2, 4]]
    assert len(report['episodes'][1]['progress']) == 5
    assert (tmp_path / 'curves.png').stat().st_size > 1000
    assert main(['score-bag', str(tmp_path / 'missing'), '--goal', 'x']) == 2


def test_score_bag_drops_reset_frames_and_the_oracle_labels_with_the_recorded_truth(tmp_path):
    """Read a learner's bag and label its episodes with the recorded truth.

    Its episodes end with an empty-id ``Episode`` (a reset) and the simulator's ``TaskState``
    rides along; ``--backend oracle`` turns the episodes into labelled data.
    """
    import json

    from rclpy.serialization import serialize_message

    from sole_r1_interfaces.msg import TaskState
    from sole_r1_ros import labelled
    from sole_r1_ros.cli import main
    from sole_r1_ros.recording import BagWriter
    bag = tmp_path / 'bag'
    writer = BagWriter(bag)

    def at(msg, sec):
        msg.header.stamp.sec = sec
        return serialize_message(msg)

    for e, episode_id in enumerate(('ep-a', 'ep-b')):
        base = 100 * (e + 1)
        writer.write('/episode', 'sole_r1_interfaces/msg/Episode', 0,
                     at(Episode(episode_id=episode_id), base))
        writer.write('/episode', 'sole_r1_interfaces/msg/Episode', 0,
                     at(Episode(episode_id=''), base + 5))  # the reset: frames of nobody
        for i in range(8):  # 5 frames in the episode, 3 while resetting
            frame = array_to_image(np.full((16, 16, 3), 30 * i, np.uint8), 'rgb8')
            writer.write('/camera/external/image_raw', 'sensor_msgs/msg/Image', 0,
                         at(frame, base + i))
            truth = TaskState(task='drawer-close-v3', progress=float(10 * i + e))
            writer.write('/ground_truth', 'sole_r1_interfaces/msg/TaskState', 0,
                         at(truth, base + i))
    writer.close()
    [a, b] = read_camera_episodes(bag, 'camera/external/image_raw', None)
    assert (a.episode_id, len(a.external), b.episode_id, len(b.external)) == (
        'ep-a', 5, 'ep-b', 5)
    assert a.truth == [] and [f[0, 0, 0] for f in b.external] == [0, 30, 60, 90, 120]
    out = tmp_path / 'truth.json'
    assert main(['score-bag', str(bag), '--goal', 'close the drawer', '--wrist-topic', '',
                 '--backend', 'oracle', '--stride', '1', '--out', str(out),
                 '--labelled-out', str(tmp_path / 'labelled')]) == 0
    report = json.loads(out.read_text())
    assert report['model_id'] == 'oracle'
    episodes = labelled.load_episodes(str(tmp_path / 'labelled'))
    assert [e.episode_id for e in episodes] == ['ep-a', 'ep-b']
    # Every frame labelled with the truth of its moment (the first frame is 0 by protocol).
    assert list(episodes[0].progress) == pytest.approx([0, 10, 20, 30, 40])
    assert list(episodes[1].progress) == pytest.approx([0, 11, 21, 31, 41])
    # A bag without the simulator's truth (a real robot's) is refused, by name.
    assert main(['score-bag', str(bag), '--goal', 'x', '--wrist-topic', '', '--backend',
                 'oracle', '--truth-topic', 'nothing_here', '--out', str(out)]) == 2


@pytest.mark.parametrize('signum', ['SIGINT', 'SIGTERM'])
def test_sole_r1_record_closes_its_bag_on_a_stop_signal(tmp_path, signum):
    """SIGTERM (docker stop, systemd) left the command running and the bag without metadata."""
    import os
    import signal
    import subprocess
    import sys
    bag = tmp_path / 'bag'
    env = dict(os.environ,
               ROS_DOMAIN_ID=os.environ['SOLE_R1_TEST_CHILD_DOMAIN_ID'], PYTHONUNBUFFERED='1')
    process = subprocess.Popen([sys.executable, '-m', 'sole_r1_ros.cli', 'record', '--out',
                                str(bag)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (bag / 'bag.mcap').exists() and not list(bag.glob('*.mcap')):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(0.5)
        process.send_signal(getattr(signal, signum))
        output, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, output[-2000:]
    assert (bag / 'metadata.yaml').exists() and 'wrote 0 messages' in output


def test_a_bag_under_its_disk_reserve_stops_and_says_so_on_diagnostics(ros_graph, tmp_path):
    """A bag that stopped was said nowhere: no /diagnostics, nothing in the runner."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    recorder = ros_graph.add(RecorderNode(context=ros_graph.context, parameter_overrides=[
        Parameter('bag_path', value=str(tmp_path / 'bag')),
        Parameter('min_free_gb', value=1e6)]))   # more than any disk has: it stops at once
    probe = ros_graph.probe()
    statuses = []
    probe.create_subscription(DiagnosticArray, '/diagnostics', statuses.append, 10)
    assert ros_graph.wait_for(lambda: any(
        s.name.endswith('recorder_node') and s.level == DiagnosticStatus.ERROR
        for m in statuses for s in m.status), timeout=10.0)
    status = next(s for m in statuses for s in m.status if s.level == DiagnosticStatus.ERROR)
    assert 'GB free on its disk, under the' in status.message
    assert (tmp_path / 'bag' / 'metadata.yaml').is_file() and recorder.writer.stopped


def test_sole_r1_record_records_a_params_files_command_topics(tmp_path):
    """It recorded the default topics only: a joint trajectory controller's commands were lost."""
    import os
    import subprocess
    import sys
    env = dict(os.environ,
               ROS_DOMAIN_ID=os.environ['SOLE_R1_TEST_CHILD_DOMAIN_ID'], PYTHONUNBUFFERED='1')
    done = subprocess.run([sys.executable, '-m', 'sole_r1_ros.cli', 'record', '--out',
                           str(tmp_path / 'bag'), '--seconds', '0.5', '--params-file',
                           'real_robot_joint.yaml', '--namespace', '/arm1/'], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    from sole_r1_ros.nodes.recorder_node import DEFAULT_TOPICS
    assert f'recording {len(DEFAULT_TOPICS) + 1} topics' in done.stderr + done.stdout
    # 'arm1/' raised in the node; and named recorder_node, it was a second node of the name a
    # run's own recorder has, whose status the run's monitor read
    assert '[arm1.bag_recorder]' in done.stderr + done.stdout
    missing = subprocess.run([sys.executable, '-m', 'sole_r1_ros.cli', 'record', '--out',
                              str(tmp_path / 'other'), '--params-file', 'nowhere.yaml'],
                             env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and 'nowhere.yaml' in missing.stderr


def test_a_topic_of_a_type_the_bag_cannot_hold_is_refused_at_start(ros_graph, tmp_path):
    """It was refused at its first message: the bag held none of them, and diagnostics said ok."""
    with pytest.raises(ValueError, match='message type nothere_msgs/msg/Jog is unknown here'):
        RecorderNode(context=ros_graph.context, parameter_overrides=[
            Parameter('bag_path', value=str(tmp_path / 'bag')),
            Parameter('extra_topics', value=['servo_node/jog=nothere_msgs/msg/Jog'])])
    # and before the bag was made: an empty one was left, and the corrected rerun refused
    assert not list(tmp_path.iterdir())


def test_a_value_only_a_wildcard_section_gives_does_not_stop_a_node_without_it(
        ros_graph, tmp_path, monkeypatch):
    """``/**: {stride: 3}`` is for every node that has a stride.

    Under ros2 launch it stopped the recorder (no stride), where ``sole-r1 learn`` took the
    same file.
    """
    from sole_r1_ros.nodes.params import wildcard_only_names
    wild = tmp_path / 'wild.yaml'
    wild.write_text('/**:\n  ros__parameters:\n    stride: 3\n    agent: {lr: 0.1}\n'
                    '/**/recorder_node:\n  ros__parameters:\n    min_free_gb: 2.0\n')
    own = tmp_path / 'own.yaml'
    own.write_text('/**/recorder_node:\n  ros__parameters:\n    stride: 3\n')
    assert wildcard_only_names('recorder_node', ['x', '--params-file', str(wild)]) == {
        'stride', 'agent.lr'}
    assert wildcard_only_names('recorder_node', ['--params-file', str(wild), '--params-file',
                                                 str(own)]) == {'agent.lr'}
    monkeypatch.setattr('sys.argv', ['recorder_node', '--ros-args', '--params-file', str(wild)])
    RecorderNode(context=ros_graph.context, parameter_overrides=[
        Parameter('bag_path', value=str(tmp_path / 'bag')), Parameter('stride', value=3)]
    ).destroy_node()
    monkeypatch.setattr('sys.argv', ['recorder_node', '--ros-args', '--params-file', str(own)])
    with pytest.raises(ValueError, match="recorder_node has no parameter 'stride'"):
        RecorderNode(context=ros_graph.context, parameter_overrides=[
            Parameter('bag_path', value=str(tmp_path / 'bag2')), Parameter('stride', value=3)])
