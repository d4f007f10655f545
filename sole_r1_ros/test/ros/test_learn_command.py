"""`sole-r1 learn` end to end in a subprocess: commands, labels, checkpoint, bag, resume, Ctrl-C"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('torch')
pytest.importorskip('metaworld')
pytest.importorskip('rosbags')

_FAST = ['--sim', 'reach-v3', '--reward', 'oracle', '--eval-episodes', '1', '--set',
         'learner_node.episode_length=25', 'learner_node.agent.seed_steps=50',
         'learner_node.agent.batch_size=32', 'learner_node.replay.min_labelled=40',
         'sim_robot_node.rate_hz=20.0', 'learner_node.control_rate_hz=20.0',
         'sim_robot_node.image_width=48', 'sim_robot_node.image_height=48']


def _learn(run_dir, *extra, steps: int, **popen):
    command = [sys.executable, '-m', 'sole_r1_ros.cli', 'learn', '--goal', 'reach the goal',
               '--steps', str(steps), '--run-dir', str(run_dir), *_FAST, *extra]
    env = dict(os.environ, ROS_DOMAIN_ID=str(os.getpid() % 100 + 101), PYTHONUNBUFFERED='1')
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def _bag_messages(bag, topic: str) -> list:
    from rosbags.highlevel import AnyReader

    from sole_r1_ros.recording import make_typestore
    with AnyReader([bag], default_typestore=make_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [reader.deserialize(raw, c.msgtype)
                for c, _, raw in reader.messages(connections=connections)]


def _checkpoint_meta(run_dir) -> dict:
    newest = sorted((run_dir / 'checkpoints').glob('ckpt-*'))[-1]
    return json.loads((newest / 'meta.json').read_text())


def test_learn_writes_checkpoint_bag_and_curves_and_resume_continues(tmp_path):
    run_dir = tmp_path / 'run'
    process = _learn(run_dir, steps=120)
    output, _ = process.communicate(timeout=400)
    assert process.returncode == 0, output[-3000:]
    meta = _checkpoint_meta(run_dir)
    assert meta['counters']['env_steps'] >= 120
    assert meta['replay']['counts']['applied'] > 10, 'no reward was labelled'
    commands = _bag_messages(run_dir / 'bag-001', '/forward_command_controller/commands')
    assert len(commands) > 100 and any(np.abs(c.data).max() > 0 for c in commands)
    assert _bag_messages(run_dir / 'bag-001', '/sole_r1/progress')
    assert (run_dir / 'learning_curves.png').stat().st_size > 10000
    assert json.loads((run_dir / 'evaluation.json').read_text())['episodes'] == 1
    assert (run_dir / 'final_policy.mp4').stat().st_size > 0

    again = _learn(run_dir, steps=100)               # the same run dir without --resume
    output, _ = again.communicate(timeout=60)
    assert again.returncode == 2 and '--resume' in output

    resumed = _learn(run_dir, '--resume', steps=220)
    output, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, output[-3000:]
    assert 'resumed' in output
    after = _checkpoint_meta(run_dir)
    assert after['counters']['env_steps'] >= 220
    assert after['counters']['episode_index'] > meta['counters']['episode_index']
    assert (run_dir / 'bag-002' / 'metadata.yaml').exists()


def test_ctrl_c_stops_the_robot_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run_dir = tmp_path / 'run'
    process = _learn(run_dir, steps=100000)
    episodes = run_dir / 'episodes.jsonl'
    deadline = time.monotonic() + 120   # until the first episode ended: the robot is learning
    while time.monotonic() < deadline and not (episodes.exists() and episodes.read_text()):
        time.sleep(0.5)
    time.sleep(2.0)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output[-3000:]
    assert 'saving a checkpoint' in output
    assert list((run_dir / 'checkpoints').glob('ckpt-*'))
    commands = _bag_messages(run_dir / 'bag-001', '/forward_command_controller/commands')
    assert list(commands[-1].data)[:3] == [0.0, 0.0, 0.0], 'the robot was not stopped last'
