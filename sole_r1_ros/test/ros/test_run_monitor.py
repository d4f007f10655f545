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


def _monitor_and_publishers(ros_graph, lines) -> tuple:
    """(run monitor writing ``lines``, and publishers of episodes, results and answers)."""
    monitor = ros_graph.add(RunMonitorNode(lines, context=ros_graph.context))
    probe = ros_graph.probe()
    episodes = probe.create_publisher(Episode, 'episode', _LATCHED)
    results = probe.create_publisher(EpisodeResult, 'episode_result', 10)
    answers = probe.create_publisher(ProgressReward, 'sole_r1/progress', 10)
    assert ros_graph.wait_for(lambda: answers.get_subscription_count() > 0
                              and results.get_subscription_count() > 0)
    return monitor, episodes, results, answers


def test_an_episode_line_waits_for_the_answer_to_its_last_frame(ros_graph, tmp_path):
    """The last frame is answered a model call after the end: that answer is the final one."""
    lines = tmp_path / 'episodes.jsonl'
    monitor, episodes, results, answers = _monitor_and_publishers(ros_graph, lines)

    def answer(progress: float) -> None:
        # a model call of 3 s: the line waits 6 s for the last answer, sent 0.3 s after the end
        # (at 0.2 s, the 1 s it waited was short of a loaded machine's stalls)
        answers.publish(ProgressReward(episode_id='episode-1', progress=progress, latency=3.0,
                                       valid=True))

    episodes.publish(Episode(episode_id='episode-1'))
    assert ros_graph.wait_for(lambda: monitor._episode is not None)
    for progress in (10.0, 40.0):
        answer(progress)
    assert ros_graph.wait_for(lambda: len(monitor._episode['progress']) == 2)
    episodes.publish(Episode(episode_id=''))                  # the end, then the result
    results.publish(EpisodeResult(episode_id='episode-1', steps=15, env_steps=15))
    time.sleep(0.3)
    answer(95.0)                                               # the last frame's answer
    assert ros_graph.wait_for(lambda: lines.exists() and lines.read_text(), timeout=20.0)
    [line] = [json.loads(text) for text in lines.read_text().splitlines()]
    assert (line['final_progress'], line['answers'], line['steps']) == (95.0, 3, 15)


def test_the_final_answer_is_the_latest_frames_and_an_unanswered_episode_is_kept(
        ros_graph, tmp_path):
    """By the frame's stamp, not by arrival; a torn last line is left on its own line.

    A slow model's in-flight answer about an earlier frame arrived last and was taken as the
    episode's final progress; an episode no answer came for (the reward server down) was
    never written; a resumed run's first line joined a killed run's half line.
    """
    lines = tmp_path / 'episodes.jsonl'
    lines.write_text('{"episode_id": "old", "final_pro')         # a killed run's half line
    monitor, episodes, results, answers = _monitor_and_publishers(ros_graph, lines)

    def answer(episode: str, stamp_s: int, progress: float, valid: bool = True) -> None:
        msg = ProgressReward(episode_id=episode, progress=progress, latency=0.2, valid=valid)
        msg.header.stamp.sec = stamp_s
        answers.publish(msg)

    episodes.publish(Episode(episode_id='episode-1'))
    assert ros_graph.wait_for(lambda: monitor._episode is not None)
    answer('episode-1', 1, 10.0)
    answer('episode-1', 4, 96.0)                              # the last frame's
    answer('episode-1', 3, 85.0)                              # an earlier one's, late
    answer('episode-1', 5, 96.0, valid=False)                 # carried forward: no measure
    assert ros_graph.wait_for(lambda: len(monitor._episode['progress']) == 3)
    time.sleep(0.3)
    assert len(monitor._episode['progress']) == 3
    episodes.publish(Episode(episode_id='episode-2'))         # nothing will answer it
    results.publish(EpisodeResult(episode_id='episode-1', steps=4, env_steps=4))
    assert ros_graph.wait_for(lambda: monitor._episode['episode_id'] == 'episode-2')
    episodes.publish(Episode(episode_id=''))
    results.publish(EpisodeResult(episode_id='episode-2', steps=5, env_steps=9,
                                  evaluation=True, counted=False))   # a reset cut it short
    assert ros_graph.wait_for(lambda: len(lines.read_text().splitlines()) >= 3, timeout=10.0)
    torn, *written = lines.read_text().splitlines()
    assert torn == '{"episode_id": "old", "final_pro'
    rows = {row['episode_id']: row for row in map(json.loads, written)}
    assert rows['episode-1']['final_progress'] == 96.0
    assert rows['episode-2']['answers'] == 0 and rows['episode-2']['final_progress'] is None
    # an evaluation episode the evaluation did not score says so (evaluation.json's count)
    assert rows['episode-2']['counted'] is False and 'counted' not in rows['episode-1']
    assert 'progress 96%' in monitor.summary()   # the unanswered one is left out of it


def test_the_ended_episodes_are_written_before_the_curves_are_drawn(ros_graph, tmp_path):
    """An ended episode whose result never came was written only at close, after the plot."""
    lines = tmp_path / 'episodes.jsonl'
    monitor, episodes, results, answers = _monitor_and_publishers(ros_graph, lines)
    episodes.publish(Episode(episode_id='episode-1'))
    assert ros_graph.wait_for(lambda: monitor._episode is not None)
    answers.publish(ProgressReward(episode_id='episode-1', progress=70.0, latency=0.2,
                                   valid=True))
    assert ros_graph.wait_for(lambda: len(monitor._episode['progress']) == 1)
    episodes.publish(Episode(episode_id='episode-2'))   # the run stops in it, no result yet
    assert ros_graph.wait_for(lambda: monitor._episode['episode_id'] == 'episode-2')
    time.sleep(1.2)   # past the answer wait: the line waits for the result alone
    assert not lines.read_text()
    monitor.write_ended(wait_s=3.0)
    [line] = [json.loads(text) for text in lines.read_text().splitlines()]
    assert (line['episode_id'], line['final_progress']) == ('episode-1', 70.0)
    monitor.close()   # the running episode at close; episode-1 not twice
    assert [json.loads(t)['episode_id'] for t in lines.read_text().splitlines()] == [
        'episode-1', 'episode-2']


def test_a_full_disk_keeps_the_lines_and_the_monitor_listening(ros_graph, tmp_path):
    """On a full disk the episode lines wait in memory and the monitor keeps listening.

    The write failed in a timer no guard caught: the monitor's thread ended, it heard no more,
    and ``sole-r1 learn`` never reached its step count while the arm moved on.
    """
    monitor, episodes, results, _ = _monitor_and_publishers(ros_graph, '/dev/full')
    for name in ('episode-1', 'episode-2'):
        episodes.publish(Episode(episode_id=name))
        assert ros_graph.wait_for(lambda: monitor._episode is not None
                                  and monitor._episode['episode_id'] == name)
        episodes.publish(Episode(episode_id=''))
        results.publish(EpisodeResult(episode_id=name, steps=5, env_steps=5))
        assert ros_graph.wait_for(lambda: any(e['episode_id'] == name for e in monitor.recent),
                                  timeout=10.0)
        time.sleep(0.5)   # timer rounds retry the write
    assert monitor._lines.waiting == 2 and 'No space left' in monitor._lines.error
    assert monitor.firewall.rejected.get('episodes_jsonl', 0) >= 1
    assert ros_graph.error is None


def test_the_final_video_follows_a_remapped_reliable_camera(ros_graph, tmp_path):
    """``sole-r1 learn --remap``: the video read the unremapped topic, best effort.

    A real robot's run never had its final_policy.mp4.
    """
    import numpy as np
    from sensor_msgs.msg import Image

    from sole_r1_ros.image_msgs import array_to_image
    monitor = ros_graph.add(RunMonitorNode(
        tmp_path / 'episodes.jsonl', context=ros_graph.context,
        cli_args=['--ros-args', '-r', 'camera/external/image_raw:=/cam_ext/color/image_raw']))
    monitor.start_video(tmp_path / 'final.mp4', fps=10.0)
    camera = ros_graph.probe().create_publisher(
        Image, '/cam_ext/color/image_raw', QoSProfile(depth=5,
                                                      reliability=ReliabilityPolicy.RELIABLE))
    assert ros_graph.wait_for(lambda: camera.get_subscription_count() > 0
                              and monitor._video_sub.reliability == ReliabilityPolicy.RELIABLE,
                              timeout=10.0)
    time.sleep(0.3)
    for value in range(5):
        camera.publish(array_to_image(np.full((32, 32, 3), 40 * value, np.uint8), 'rgb8'))
        time.sleep(0.05)
    time.sleep(0.5)
    monitor.stop_video()
    import cv2
    video = cv2.VideoCapture(str(tmp_path / 'final.mp4'))   # made at its first frame
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 5


@pytest.mark.parametrize('frames', [90, 5])
def test_a_video_without_a_frame_rate_plays_at_its_cameras(tmp_path, frames):
    """A fixed 10 fps played a 30 fps camera at a third of its speed; a short one still plays."""
    import cv2
    import numpy as np

    from sole_r1_ros.nodes.run_monitor import _LazyVideo
    video = _LazyVideo(tmp_path / 'v.mp4', None)
    for i in range(frames):
        video.write(np.full((32, 32, 3), i % 250, np.uint8), 1000.0 + i / 30.0)
    video.close()
    capture = cv2.VideoCapture(str(tmp_path / 'v.mp4'))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == frames
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0, rel=0.02)
