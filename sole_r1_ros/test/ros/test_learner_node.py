"""learner_node over real DDS with the simulated robot: learning from late rewards, stale
observations, evaluation, pause, and resume after a kill."""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('torch')
pytest.importorskip('metaworld')

from rclpy.action import ActionClient  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from sole_r1_interfaces.action import Evaluate  # noqa: E402
from sole_r1_ros.nodes.camera_node import CameraNode  # noqa: E402
from sole_r1_ros.nodes.learner_node import LearnerNode  # noqa: E402
from sole_r1_ros.nodes.reward_node import RewardNode  # noqa: E402
from sole_r1_ros.nodes.sim_robot_node import SimRobotNode  # noqa: E402
from sole_r1_ros.rl import list_checkpoints, load_latest  # noqa: E402


def _p(**values) -> list[Parameter]:
    return [Parameter(k.replace('__', '.'), value=v) for k, v in values.items()]


def _loop(graph, run_dir, with_reward: bool = True, **learner):
    """Sim robot (20 Hz) + camera node + oracle reward node + learner, all in one graph."""
    sim = graph.add(SimRobotNode(context=graph.context, parameter_overrides=_p(
        task='reach-v3', image_width=48, image_height=48, rate_hz=20.0)))
    if with_reward:
        graph.add(CameraNode(context=graph.context, parameter_overrides=_p(
            stride=3, min_gap=1, use_ground_truth=True)))
        reward = graph.add(RewardNode(context=graph.context, parameter_overrides=_p(
            backend='oracle', autostart=False)))
        reward.trigger_configure()
        reward.trigger_activate()
    params = dict(observation='sim_state', episode_length=15, control_rate_hz=20.0,
                  run_dir=str(run_dir), autostart=False, agent__seed_steps=30,
                  agent__batch_size=16, replay__min_labelled=20, checkpoint_every_s=1.0)
    params.update(learner)
    node = graph.add(LearnerNode(context=graph.context, parameter_overrides=_p(**params)))
    assert node.trigger_configure().name == 'SUCCESS' or node.learner is not None
    node.trigger_activate()
    return sim, node


def test_learner_commands_the_robot_labels_late_rewards_learns_and_checkpoints(
        ros_graph, tmp_path):
    sim, node = _loop(ros_graph, tmp_path)
    probe = ros_graph.probe()
    commands = []
    probe.create_subscription(Float64MultiArray, 'forward_command_controller/commands',
                              commands.append, 50)
    assert ros_graph.wait_for(lambda: node.learner.agent.updates >= 5, timeout=60.0), \
        node.learner.stats()
    stats = node.learner.stats()
    assert stats['labels_applied'] > 5 and stats['episodes_done'] >= 1
    assert len(commands) > 20
    assert all(len(c.data) == 4 and max(abs(v) for v in c.data) <= 1.0 for c in commands)
    assert ros_graph.wait_for(lambda: list_checkpoints(tmp_path / 'checkpoints'), timeout=10.0)


def test_stale_observations_stop_commands_within_the_timeout(ros_graph, tmp_path):
    sim, node = _loop(ros_graph, tmp_path, with_reward=False, camera_timeout_s=0.3,
                      joint_timeout_s=0.3, agent__seed_steps=1000)
    probe = ros_graph.probe()
    commands = []
    probe.create_subscription(
        Float64MultiArray, 'forward_command_controller/commands',
        lambda m: commands.append((time.monotonic(), list(m.data))), 50)
    assert ros_graph.wait_for(lambda: any(any(v != 0 for v in c) for _, c in commands), 30.0)
    stopped = time.monotonic()
    ros_graph.executor.remove_node(sim)     # the robot's sensors go silent
    sim.destroy_node()
    time.sleep(1.5)
    moving_after = [t - stopped for t, c in commands if t > stopped and any(v != 0 for v in c)]
    holds = [t - stopped for t, c in commands if t > stopped and not any(c)]
    assert holds, 'no hold command after the sensors stopped'
    assert not moving_after or max(moving_after) < 0.3 + 0.15, moving_after


def test_pause_holds_the_robot_and_evaluate_reports_per_episode(ros_graph, tmp_path):
    sim, node = _loop(ros_graph, tmp_path, episode_length=8)
    probe = ros_graph.probe()
    pause = probe.create_client(SetBool, 'learner_node/pause')
    assert ros_graph.call(pause, SetBool.Request(data=True)).success
    env_steps = node.learner.env_steps
    time.sleep(0.5)
    assert node.learner.env_steps == env_steps, 'paused learner kept acting'
    assert ros_graph.call(pause, SetBool.Request(data=False)).success

    client = ActionClient(probe, Evaluate, 'learner_node/evaluate')
    assert client.wait_for_server(timeout_sec=10.0)
    feedback = []
    goal_future = client.send_goal_async(Evaluate.Goal(episodes=2, progress_threshold=50.0),
                                         feedback_callback=lambda f: feedback.append(f.feedback))
    assert ros_graph.wait_for(goal_future.done, timeout=10.0)
    result_future = goal_future.result().get_result_async()
    assert ros_graph.wait_for(result_future.done, timeout=60.0)
    result = result_future.result().result
    assert result.episodes_done == 2 and len(result.final_progress) == 2
    assert len(feedback) == 2 and all(f.has_ground_truth for f in feedback)
    assert 0.0 <= result.success_rate_ground_truth <= 1.0
    assert result.success_rate_progress == np.mean([p >= 50.0 for p in result.final_progress])


def test_killed_learner_resumes_with_replay_and_counters_intact(ros_graph, tmp_path):
    sim, node = _loop(ros_graph, tmp_path)
    assert ros_graph.wait_for(lambda: node.learner.stats()['labels_applied'] > 10, 60.0)
    node.save_checkpoint()
    # a kill: the node stops acting and vanishes without cleanup (no final checkpoint);
    # what must come back is the newest checkpoint on disk
    node._stop_threads()
    saved = load_latest(tmp_path / 'checkpoints')
    ros_graph.executor.remove_node(node)
    node.destroy_node()

    again = LearnerNode(context=ros_graph.context, parameter_overrides=_p(
        observation='sim_state', run_dir=str(tmp_path), autostart=False, resume=True,
        agent__batch_size=16, replay__min_labelled=20))
    again.trigger_configure()
    assert again.learner.counters() == saved.counters
    stats = again.learner.replay.stats()
    assert stats['size'] == int(saved.replay_meta['size'])
    assert stats['labels_applied'] == saved.replay_meta['counts']['applied']
    # relabelling a transition of a resumed episode is refused: nothing is labelled twice
    index = int(saved.counters['episode_index'])
    outcome = again.learner.replay.label(index, 0, 50.0)
    assert outcome.value in ('duplicate', 'dropped')
    again.destroy_node()
