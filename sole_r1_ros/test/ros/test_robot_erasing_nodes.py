"""The robot taken out of the frames at run time, over real DDS.

The simulator publishes each camera's robot mask beside its picture, the camera node erases
the robot before querying, and the reward node refuses the kind of frame its model was not
trained on.
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from sole_r1_interfaces.msg import ProgressReward, RewardQuery  # noqa: E402
from sole_r1_ros.camera import decode_tile, encode_tile  # noqa: E402
from sole_r1_ros.camera.robot_eraser import FILL, grow_mask  # noqa: E402
from sole_r1_ros.image_msgs import array_to_image, image_to_array  # noqa: E402
from sole_r1_ros.nodes.camera_node import CameraNode  # noqa: E402
from sole_r1_ros.nodes.reward_node import RewardNode  # noqa: E402


def _key(header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


def _changed(erased: np.ndarray, picture: np.ndarray, where: np.ndarray) -> float:
    """The share of the pixels ``where`` (H×W bool) whose colour erasing changed."""
    return float((erased[where] != picture[where]).any(axis=-1).mean())


def _erasing_camera_with_the_simulator(ros_graph, topics: list, parameters: list) -> tuple:
    """An erasing camera node fed by the simulator: (camera, frames seen by topic, queries)."""
    from sole_r1_ros.nodes.sim_robot_node import SimRobotNode

    probe = ros_graph.probe('erase_probe')
    seen: dict[tuple[str, str], dict] = {}
    for view, kind in topics:
        store = seen.setdefault((view, kind), {})
        probe.create_subscription(
            Image, f'camera/{view}/{kind}',
            lambda msg, store=store: store.__setitem__(_key(msg.header), image_to_array(msg)),
            qos_profile_sensor_data)
    queries = []
    probe.create_subscription(RewardQuery, 'sole_r1/query', queries.append, 50)
    camera = ros_graph.add(CameraNode(context=ros_graph.context, parameter_overrides=[
        Parameter('erase_robot', value=True), Parameter('tile_format', value='png'),
        Parameter('stride', value=1), Parameter('min_gap', value=1), *parameters]))
    time.sleep(0.3)
    ros_graph.add(SimRobotNode(context=ros_graph.context, parameter_overrides=[
        Parameter('publish_robot_masks', value=True), Parameter('rate_hz', value=20.0),
        Parameter('image_width', value=48), Parameter('image_height', value=48),
        Parameter('task', value='drawer-close-v3')]))
    assert ros_graph.wait_for(lambda: len(queries) >= 8, timeout=30.0), len(queries)
    return camera, seen, queries


# A camera that falls behind loses a mask of a picture it took (a best-effort reader keeps 5):
# counted as a rejection of the mask topic, and nothing else may be rejected.
_MASK_DROPS = {'camera/external/robot_mask', 'camera/wrist/robot_mask'}


def test_the_camera_node_queries_frames_with_the_robot_erased(ros_graph):
    """Off the robot a query's tile is the picture; on it, the wrist view is gray."""
    pytest.importorskip('metaworld')
    camera, seen, queries = _erasing_camera_with_the_simulator(
        ros_graph, [(view, kind) for view in ('external', 'wrist')
                    for kind in ('image_raw', 'robot_mask')], [])
    checked = 0
    for query in list(queries):
        stamp = _key(query.header)
        if stamp not in seen[('wrist', 'robot_mask')] or stamp not in seen[('external',
                                                                           'robot_mask')]:
            continue   # the probe lost that frame (sensor-data QoS is best effort)
        assert query.robot_erased
        for view, tile in (('external', query.current_external),
                           ('wrist', query.current_wrist)):
            picture = seen[(view, 'image_raw')][stamp]
            robot = grow_mask(seen[(view, 'robot_mask')][stamp] > 0, 1)
            erased = decode_tile(tile.data)
            assert erased.shape == picture.shape
            np.testing.assert_array_equal(erased[~robot], picture[~robot])
            if view == 'wrist':
                assert robot.any() and (erased[robot] == FILL).all()
            else:   # the background memory: not the arm's own colour where the arm is
                raw = seen[(view, 'robot_mask')][stamp] > 0
                assert raw.any() and _changed(erased, picture, raw) > 0.9
        checked += 1
    assert checked >= 3
    assert set(camera.firewall.rejected) <= _MASK_DROPS, camera.firewall.rejected


def test_without_masks_no_frame_is_queried_and_the_node_says_why(ros_graph):
    camera = ros_graph.add(CameraNode(context=ros_graph.context, parameter_overrides=[
        Parameter('erase_robot', value=True), Parameter('use_wrist', value=False),
        Parameter('stride', value=1), Parameter('min_gap', value=1)]))
    probe = ros_graph.probe('no_mask_probe')
    queries = []
    probe.create_subscription(RewardQuery, 'sole_r1/query', queries.append, 50)
    pictures = probe.create_publisher(Image, 'camera/external/image_raw',
                                      qos_profile_sensor_data)
    masks = probe.create_publisher(Image, 'camera/external/robot_mask', qos_profile_sensor_data)
    assert ros_graph.wait_for(lambda: pictures.get_subscription_count() > 0
                              and masks.get_subscription_count() > 0)
    frame = np.full((24, 24, 3), 90, np.uint8)
    for step in range(20):
        msg = array_to_image(frame, 'rgb8')
        msg.header.stamp.sec = 100 + step
        pictures.publish(msg)
        time.sleep(0.01)
    assert ros_graph.wait_for(
        lambda: camera.firewall.rejected.get('camera/external/robot_mask', 0) > 0)
    assert queries == []
    # A wrong mask (not mono8) is refused too, and a right one lets its frame through.
    bad = array_to_image(frame, 'rgb8')
    bad.header.stamp.sec = 200
    masks.publish(bad)
    assert ros_graph.wait_for(
        lambda: camera.firewall.rejected.get('camera/external/robot_mask', 0) >= 2)
    for step in range(3):
        msg = array_to_image(frame, 'rgb8')
        msg.header.stamp.sec = 300 + step
        pictures.publish(msg)
        mask = array_to_image(np.zeros((24, 24), np.uint8), 'mono8')
        mask.header.stamp.sec = 300 + step
        masks.publish(mask)
        time.sleep(0.05)
    assert ros_graph.wait_for(lambda: len(queries) >= 1), camera.firewall.rejected
    assert all(q.robot_erased for q in queries)


def test_a_wrist_view_without_its_own_self_filter_is_named_with_the_ways_out(ros_graph):
    """One robot_mask_node (the external view) and use_wrist: the log says what to start or set.

    real_robot_learn.launch.py starts one self-filter; its params file pairs a wrist camera.
    """
    from rcl_interfaces.msg import Log

    from fakes import frames_taken, ROSOUT_QOS
    camera = ros_graph.add(CameraNode(context=ros_graph.context, parameter_overrides=[
        Parameter('erase_robot', value=True), Parameter('use_wrist', value=True),
        Parameter('stride', value=1), Parameter('min_gap', value=1)]))
    probe = ros_graph.probe('wrist_mask_probe')
    logs, queries = [], []
    probe.create_subscription(Log, '/rosout', logs.append, ROSOUT_QOS)
    probe.create_subscription(RewardQuery, 'sole_r1/query', queries.append, 50)
    publishers = {topic: probe.create_publisher(Image, topic, qos_profile_sensor_data)
                  for topic in ('camera/external/image_raw', 'camera/wrist/image_raw',
                                'camera/external/robot_mask')}
    assert ros_graph.wait_for(lambda: all(p.get_subscription_count() > 0
                                          for p in publishers.values()))
    pictures = frames_taken(camera)
    frame = np.full((24, 24, 3), 90, np.uint8)
    for step in range(20):   # a set at a time, its pictures taken before the next: no mask lost
        for topic, publisher in publishers.items():
            if topic.endswith('robot_mask'):
                msg = array_to_image(np.zeros((24, 24), np.uint8), 'mono8')
            else:
                msg = array_to_image(frame, 'rgb8')
            msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + step // 10, step % 10 * 10**8
            publisher.publish(msg)
        assert ros_graph.wait_for(lambda: len(pictures) >= 2 * (step + 1))
    assert ros_graph.wait_for(
        lambda: camera.firewall.rejected.get('camera/wrist/robot_mask', 0) > 0)
    name = camera.get_name()
    assert ros_graph.wait_for(lambda: any(
        m.name.endswith(name) and 'camera/wrist/robot_mask' in m.msg
        and 'robot_mask_node with view: wrist' in m.msg and 'use_wrist: false' in m.msg
        and 'erased_beside: true' in m.msg for m in list(logs)), timeout=5.0), [
            m.msg for m in logs]
    assert queries == [] and 'camera/external/robot_mask' not in camera.firewall.rejected


def _tile(value: int) -> CompressedImage:
    frame = np.full((32, 32, 3), value, np.uint8)
    frame[:16] = 255 - value
    return CompressedImage(format='png', data=encode_tile(frame, 'png'))


def _ask_reward_node(ros_graph, parameters: list, queries: list) -> tuple:
    """Start a compact reward node, publish the queries, wait for an answer: (node, rewards)."""
    node = ros_graph.add(RewardNode(context=ros_graph.context, parameter_overrides=[
        Parameter('backend', value='compact'), Parameter('goal', value='close the drawer'),
        *parameters]))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.trigger_activate()
    probe = ros_graph.probe('reward_query_probe')
    rewards = []
    probe.create_subscription(ProgressReward, 'sole_r1/progress', rewards.append, 10)
    publisher = probe.create_publisher(RewardQuery, 'sole_r1/query', 10)
    assert ros_graph.wait_for(lambda: publisher.get_subscription_count() > 0)
    time.sleep(0.2)
    for query in queries:
        publisher.publish(query)
        time.sleep(0.1)
    assert ros_graph.wait_for(lambda: len(rewards) >= 1, timeout=20.0)
    time.sleep(0.3)
    return node, rewards


def _query(episode_id: str, step: int, **fields) -> RewardQuery:
    query = RewardQuery(episode_id=episode_id, step=step, trigger='stride',
                        privileged_progress=float('nan'), **fields)
    query.header.stamp.sec = step
    query.first_external, query.current_external = _tile(10), _tile(10 + 40 * step)
    return query


def test_the_reward_node_refuses_frames_its_model_was_not_trained_on(ros_graph):
    """The shipped compact file reads pictures: an erased query is refused, a picture scored."""
    pytest.importorskip('torch')
    node, rewards = _ask_reward_node(ros_graph, [], [
        _query('erase-check', 1, robot_erased=True), _query('erase-check', 2)])
    assert [r.step for r in rewards] == [2]
    assert node.firewall.rejected.get('query') == 1


def test_for_a_pair_the_camera_node_keeps_the_pictures_and_sends_the_erased_view_beside(
        ros_graph):
    """erased_beside: the query's tiles are the pictures, the erased external view beside."""
    pytest.importorskip('metaworld')
    camera, seen, queries = _erasing_camera_with_the_simulator(
        ros_graph, [('external', 'image_raw'), ('external', 'robot_mask'),
                    ('wrist', 'image_raw')], [Parameter('erased_beside', value=True)])
    checked = 0
    for query in list(queries):
        stamp = _key(query.header)
        if any(stamp not in store for store in seen.values()):
            continue   # the probe lost that frame (sensor-data QoS is best effort)
        assert not query.robot_erased
        picture = seen[('external', 'image_raw')][stamp]
        np.testing.assert_array_equal(decode_tile(query.current_external.data), picture)
        np.testing.assert_array_equal(decode_tile(query.current_wrist.data),
                                      seen[('wrist', 'image_raw')][stamp])
        assert query.first_erased_external.data
        erased = decode_tile(query.current_erased_external.data)
        raw = seen[('external', 'robot_mask')][stamp] > 0
        robot = grow_mask(raw, 1)
        np.testing.assert_array_equal(erased[~robot], picture[~robot])
        assert raw.any() and _changed(erased, picture, raw) > 0.9
        checked += 1
    assert checked >= 3
    assert set(camera.firewall.rejected) <= _MASK_DROPS, camera.firewall.rejected


def test_a_pair_reward_node_refuses_queries_without_the_erased_view(ros_graph):
    """The shipped pair scores pictures with the erased external view beside, not without."""
    pytest.importorskip('torch')
    beside = _query('pair-check', 2, first_erased_external=_tile(20),
                    current_erased_external=_tile(100))
    node, rewards = _ask_reward_node(ros_graph, [Parameter('erased_model', value='shipped')],
                                     [_query('pair-check', 1), beside])
    assert [r.step for r in rewards] == [2] and rewards[0].valid
    assert rewards[0].model_id == 'compact:compact_progress+compact_progress_erased'
    assert node.firewall.rejected.get('query') == 1
