"""sole-r1 learn's run monitor over real DDS: one line per episode, with its last answer."""
import json
import time

import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from sole_r1_interfaces.msg import Episode, EpisodeResult, ProgressReward  # noqa: E402
from sole_r1_ros.nodes.run_monitor import RunMonitorNode  # noqa: E402

_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def test_an_episode_line_waits_for_the_answer_to_its_last_frame(ros_graph, tmp_path):
    """The last frame is answered a model call after the end: that answer is the final one."""
    lines = tmp_path / 'episodes.jsonl'
    monitor = ros_graph.add(RunMonitorNode(lines, context=ros_graph.context))
    probe = ros_graph.probe()
    episodes = probe.create_publisher(Episode, 'episode', _LATCHED)
    results = probe.create_publisher(EpisodeResult, 'episode_result', 10)
    answers = probe.create_publisher(ProgressReward, 'sole_r1/progress', 10)
    assert ros_graph.wait_for(lambda: answers.get_subscription_count() > 0
                              and results.get_subscription_count() > 0)

    def answer(progress: float) -> None:
        answers.publish(ProgressReward(episode_id='episode-1', progress=progress, latency=0.2))

    episodes.publish(Episode(episode_id='episode-1'))
    assert ros_graph.wait_for(lambda: monitor._episode is not None)
    for progress in (10.0, 40.0):
        answer(progress)
    assert ros_graph.wait_for(lambda: len(monitor._episode['progress']) == 2)
    episodes.publish(Episode(episode_id=''))                  # the end, then the result
    results.publish(EpisodeResult(episode_id='episode-1', steps=15, env_steps=15))
    time.sleep(0.3)
    answer(95.0)                                               # the last frame's answer
    assert ros_graph.wait_for(lambda: lines.exists() and lines.read_text(), timeout=10.0)
    [line] = [json.loads(text) for text in lines.read_text().splitlines()]
    assert (line['final_progress'], line['answers'], line['steps']) == (95.0, 3, 15)
