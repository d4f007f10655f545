"""camera_node + reward_node over real DDS.

Queries, stamps, batching, goal changes, lifecycle, malformed images and backends that fail or
hang.
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from sole_r1_interfaces.msg import ProgressReward, RewardQuery  # noqa: E402
from sole_r1_ros.camera import encode_tile  # noqa: E402
from sole_r1_ros.nodes.camera_node import CameraNode  # noqa: E402
from sole_r1_ros.image_msgs import array_to_image  # noqa: E402
from sole_r1_ros.nodes.reward_node import RewardNode  # noqa: E402
from sole_r1_ros.reward import register_backend  # noqa: E402
import slow_backends  # noqa: E402

register_backend('slow-oracle', 'slow_backends:SlowOracleBackend')
register_backend('hanging', 'slow_backends:HangingBackend')
register_backend('raising', 'slow_backends:RaisingBackend')


class _Sink(list):
    def __call__(self, msg) -> None:
        self.append(msg)


def _reward_node(graph, backend: str, **overrides) -> RewardNode:
    params = dict(backend=backend, goal='close the drawer', max_new_tokens=8, timeout_s=30.0)
    params.update(overrides)
    node = graph.add(RewardNode(context=graph.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()]))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.trigger_activate()
    return node


def _tile(value: int, size: int = 48) -> CompressedImage:
    frame = np.full((size, size, 3), value, np.uint8)
    frame[: size // 2] = 255 - value
    return CompressedImage(format='png', data=encode_tile(frame, 'png'))


def _query(episode: str, step: int, truth: float, stamp_s: int = 0) -> RewardQuery:
    query = RewardQuery(episode_id=episode, step=step, trigger='stride',
                        privileged_progress=float(truth))
    query.header.stamp.sec, query.header.stamp.nanosec = stamp_s or step, 1000 * step
    query.first_external, query.current_external = _tile(10), _tile(10 + step)
    query.first_wrist, query.current_wrist = _tile(20), _tile(20 + step)
    return query


def _setup(graph, backend: str, **overrides):
    node = _reward_node(graph, backend, **overrides)
    probe = graph.probe()
    rewards = _Sink()
    probe.create_subscription(ProgressReward, 'sole_r1/progress', rewards, 50)
    queries = probe.create_publisher(RewardQuery, 'sole_r1/query', 50)
    assert graph.wait_for(lambda: queries.get_subscription_count() > 0
                          and probe.count_publishers('sole_r1/progress') > 0)
    time.sleep(0.2)
    return node, probe, rewards, queries


def test_sim_frames_in_progress_rewards_out_with_the_scored_frames_stamp(ros_graph):
    """The whole chain with the tiny random Qwen3-VL: sim cameras -> camera_node -> reward_node."""
    pytest.importorskip('metaworld')
    pytest.importorskip('transformers')
    from sole_r1_ros.nodes.sim_robot_node import SimRobotNode
    ros_graph.add(SimRobotNode(context=ros_graph.context, parameter_overrides=[
        Parameter('image_width', value=64), Parameter('image_height', value=64),
        Parameter('rate_hz', value=10.0)]))
    ros_graph.add(CameraNode(context=ros_graph.context, parameter_overrides=[
        Parameter('stride', value=3), Parameter('min_gap', value=1)]))
    frame_stamps = set()
    ros_graph.probe('frame_probe').create_subscription(
        Image, 'camera/external/image_raw',
        lambda m: frame_stamps.add((m.header.stamp.sec, m.header.stamp.nanosec)),
        qos_profile_sensor_data)
    time.sleep(0.5)
    node, probe, rewards, _ = _setup(ros_graph, 'transformers', model='tiny-random')
    assert ros_graph.wait_for(lambda: len(rewards) >= 3, timeout=60.0), len(rewards)
    steps = [r.step for r in rewards]
    assert steps == sorted(steps) and len(set(steps)) == len(steps) and steps[0] >= 1
    assert len({r.episode_id for r in rewards}) == 1
    for reward in rewards:
        assert (reward.header.stamp.sec, reward.header.stamp.nanosec) in frame_stamps
        assert reward.header.frame_id == 'external_camera'
        assert -100 <= reward.progress <= 100 and reward.latency > 0
        assert reward.model_id and len(reward.prompt_hash) > 0


def test_queries_of_two_episodes_are_batched_into_one_backend_call(ros_graph):
    slow_backends.BATCH_SIZES.clear()
    node, probe, rewards, queries = _setup(ros_graph, 'slow-oracle')
    for step in (1, 2, 3):
        queries.publish(_query('robot_a', step, 10.0 * step))
        queries.publish(_query('robot_b', step, 5.0 * step))
        time.sleep(0.05)
    assert ros_graph.wait_for(lambda: any(r.step == 3 and r.episode_id == 'robot_a'
                                          for r in rewards)
                              and any(r.step == 3 and r.episode_id == 'robot_b'
                                      for r in rewards), timeout=10.0)
    assert max(slow_backends.BATCH_SIZES) == 2, slow_backends.BATCH_SIZES
    final = {r.episode_id: r for r in rewards if r.step == 3}
    assert final['robot_a'].progress == 30.0 and final['robot_b'].progress == 15.0
    assert final['robot_a'].reward == pytest.approx(0.3)   # default shaping: progress / 100
    # the newest query per episode wins: steps are answered in order, none twice
    for episode in ('robot_a', 'robot_b'):
        steps = [r.step for r in rewards if r.episode_id == episode]
        assert steps == sorted(set(steps))


def test_changed_goal_takes_effect_and_empty_goal_is_refused(ros_graph):
    node, probe, rewards, queries = _setup(ros_graph, 'oracle')
    queries.publish(_query('ep', 1, 20.0))
    assert ros_graph.wait_for(lambda: len(rewards) == 1)
    result = node.set_parameters([Parameter('goal', value='open the drawer')])[0]
    assert result.successful
    queries.publish(_query('ep', 2, 40.0))
    assert ros_graph.wait_for(lambda: len(rewards) == 2)
    assert rewards[0].prompt_hash != rewards[1].prompt_hash
    refused = node.set_parameters([Parameter('goal', value='  ')])[0]
    assert not refused.successful and 'empty' in refused.reason


def test_deactivate_and_reactivate_mid_episode_keeps_the_episode(ros_graph):
    node, probe, rewards, queries = _setup(ros_graph, 'oracle')
    queries.publish(_query('ep', 1, 20.0))
    assert ros_graph.wait_for(lambda: len(rewards) == 1)
    client = probe.create_client(ChangeState, 'reward_node/change_state')
    response = ros_graph.call(client, ChangeState.Request(
        transition=Transition(id=Transition.TRANSITION_DEACTIVATE)))
    assert response.success
    queries.publish(_query('ep', 2, 40.0))
    time.sleep(0.5)
    assert len(rewards) == 1, 'an inactive reward node published'
    response = ros_graph.call(client, ChangeState.Request(
        transition=Transition(id=Transition.TRANSITION_ACTIVATE)))
    assert response.success
    assert ros_graph.wait_for(lambda: len(rewards) == 2)
    assert rewards[1].step == 2 and rewards[1].progress == 40.0
    assert [r.step for r in node._book.tracker('ep').results] == [1, 2]


@pytest.mark.parametrize('backend', ['hanging', 'raising'])
def test_failing_backend_gives_carried_forward_progress_and_never_blocks(ros_graph, backend):
    slow_backends.RELEASE.clear()
    node, probe, rewards, queries = _setup(ros_graph, backend, timeout_s=0.5)
    from lifecycle_msgs.srv import GetState
    get_state = probe.create_client(GetState, 'reward_node/get_state')
    assert get_state.wait_for_service(timeout_sec=30.0)   # discovery first: it is not timed
    try:
        queries.publish(_query('ep', 1, 50.0))
        start = time.monotonic()
        # services keep answering while the backend hangs
        state = ros_graph.call(get_state, GetState.Request(), timeout=2.0)
        assert state.current_state.label == 'active'
        assert ros_graph.wait_for(lambda: len(rewards) == 1, timeout=5.0)
        assert time.monotonic() - start < 4.0
        assert not rewards[0].valid and rewards[0].progress == 0.0   # carried forward from 0
    finally:
        slow_backends.RELEASE.set()


def test_malformed_images_are_logged_and_skipped_while_the_camera_node_keeps_serving(ros_graph):
    camera = ros_graph.add(CameraNode(context=ros_graph.context, parameter_overrides=[
        Parameter('use_wrist', value=False), Parameter('stride', value=2),
        Parameter('min_gap', value=1)]))
    probe = ros_graph.probe()
    out, logs = _Sink(), _Sink()
    probe.create_subscription(RewardQuery, 'sole_r1/query', out, 10)
    probe.create_subscription(Log, '/rosout', logs, 100)
    images = probe.create_publisher(Image, 'camera/external/image_raw', qos_profile_sensor_data)
    assert ros_graph.wait_for(lambda: images.get_subscription_count() > 0)
    time.sleep(0.3)

    def good(i: int) -> Image:
        msg = array_to_image(np.full((40, 60, 3), i, np.uint8), 'rgb8')
        msg.header.stamp.sec = i
        return msg

    bad = [Image(height=4, width=4, encoding='yuv422', step=8, data=bytes(32)),
           Image(height=0, width=0, encoding='rgb8', step=0, data=b''),
           Image(height=4, width=4, encoding='rgb8', step=12, data=bytes(20))]
    for i in range(5):
        images.publish(good(i + 1))
        time.sleep(0.05)
        if i < len(bad):
            images.publish(bad[i])
            time.sleep(0.05)
    assert ros_graph.wait_for(lambda: len(out) >= 2, timeout=5.0)
    assert [q.step for q in out] == [2, 4]
    assert ros_graph.wait_for(lambda: sum('rejected camera/external' in m.msg for m in logs) >= 1)
    assert camera.firewall.rejected['camera/external'] == len(bad)


def test_episode_end_marker_sends_a_final_query_and_skips_reset_frames(ros_graph):
    from sole_r1_interfaces.msg import Episode
    from sole_r1_ros.nodes.camera_node import _LATCHED
    ros_graph.add(CameraNode(context=ros_graph.context, parameter_overrides=[
        Parameter('use_wrist', value=False), Parameter('stride', value=10)]))
    probe = ros_graph.probe()
    out = _Sink()
    probe.create_subscription(RewardQuery, 'sole_r1/query', out, 10)
    images = probe.create_publisher(Image, 'camera/external/image_raw', qos_profile_sensor_data)
    episodes = probe.create_publisher(Episode, 'episode', _LATCHED)
    assert ros_graph.wait_for(lambda: images.get_subscription_count() > 0)
    time.sleep(0.3)

    def frame(sec: int) -> None:
        msg = array_to_image(np.full((20, 20, 3), sec, np.uint8), 'rgb8')
        msg.header.stamp.sec = sec
        images.publish(msg)
        time.sleep(0.05)

    def episode(name: str, sec: int) -> None:
        msg = Episode(episode_id=name)
        msg.header.stamp.sec = sec
        episodes.publish(msg)
        time.sleep(0.1)

    episode('a', 1)
    for sec in range(1, 5):          # steps 0..3 of 'a', none a stride query
        frame(sec)
    episode('', 5)                   # 'a' ends; a reset runs
    frame(5)
    frame(6)                         # reset frames: no episode
    episode('b', 7)
    frame(7)
    assert ros_graph.wait_for(lambda: len(out) >= 1)
    time.sleep(0.3)
    assert [(q.episode_id, q.step, q.trigger, q.header.stamp.sec) for q in out] == [
        ('a', 3, 'final', 4)]
