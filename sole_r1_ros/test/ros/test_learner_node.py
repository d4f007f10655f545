"""learner_node over real DDS, with the simulated robot or a fake arm.

Learning from late rewards, every command form, the safety box, holding on stale input, pause,
evaluation, and resuming after a kill.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('torch')
pytest.importorskip('metaworld')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped, TwistStamped  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from fakes import FakeArm, JOINTS, own_name, ROSOUT_QOS, Sink, stamp_s  # noqa: E402
from sole_r1_interfaces.action import Evaluate  # noqa: E402
from sole_r1_ros.nodes.camera_node import CameraNode  # noqa: E402
from sole_r1_ros.nodes.learner_node import LearnerNode  # noqa: E402
from sole_r1_ros.nodes.reward_node import RewardNode  # noqa: E402
from sole_r1_ros.nodes.sim_robot_node import SimRobotNode  # noqa: E402
from sole_r1_ros.rl import list_checkpoints, load_latest  # noqa: E402

_BOX = dict(safety__box_lower=[-0.5, 0.35, 0.05], safety__box_upper=[0.5, 0.95, 0.35])


def _p(**values) -> list[Parameter]:
    return [Parameter(k.replace('__', '.'), value=v) for k, v in values.items()]


def _learner(graph, run_dir, activate: bool = True, **params) -> LearnerNode:
    values = dict(run_dir=str(run_dir), autostart=False, control_rate_hz=20.0,
                  agent__seed_steps=30, agent__batch_size=16, replay__min_labelled=20,
                  command__frame_id='world', reset_service='', wait_for_reward=False, **_BOX)
    values.update(params)
    node = graph.add(LearnerNode(context=graph.context, parameter_overrides=_p(**values)))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    if activate:
        node.trigger_activate()
    return node


def _sim_and_reward(graph, **sim_params) -> SimRobotNode:
    """Sim robot (20 Hz) + camera node + oracle reward node: everything but the learner."""
    sim = graph.add(SimRobotNode(context=graph.context, parameter_overrides=_p(**{
        'task': 'reach-v3', 'image_width': 48, 'image_height': 48, 'rate_hz': 20.0,
        **sim_params})))
    graph.add(CameraNode(context=graph.context, parameter_overrides=_p(
        stride=3, min_gap=1, use_ground_truth=True)))
    reward = graph.add(RewardNode(context=graph.context, parameter_overrides=_p(
        backend='oracle', autostart=False)))
    assert reward.trigger_configure() == TransitionCallbackReturn.SUCCESS
    reward.trigger_activate()
    return sim


def _sim_loop(graph, run_dir, **learner):
    """Sim robot (20 Hz) + camera node + oracle reward node + learner, all in one graph."""
    sim = _sim_and_reward(graph, action_repeat=4)
    params = dict(episode_length=15, reset_service='sim_robot_node/reset',
                  checkpoint_every_s=1.0, command__translation_scale_m=0.04,
                  safety__max_translation_m=0.04, safety__max_speed_m_s=1.0)
    params.update(learner)
    return sim, _learner(graph, run_dir, **params)


def test_learner_commands_the_robot_labels_late_rewards_learns_and_checkpoints(
        ros_graph, tmp_path):
    sim, node = _sim_loop(ros_graph, tmp_path)
    probe = ros_graph.probe()
    commands = Sink()
    probe.create_subscription(Float64MultiArray, 'forward_command_controller/commands',
                              commands, 50)
    assert ros_graph.wait_for(lambda: node.learner.agent.updates >= 5, timeout=60.0), \
        node.learner.stats()
    stats = node.learner.stats()
    assert stats['labels_applied'] > 5 and stats['episodes_done'] >= 1
    assert len(commands) > 20
    assert all(len(c.data) == 4 and max(abs(v) for v in c.data) <= 1.0
               for c in commands.messages)
    assert node._robot.output.sent >= len(commands)   # /diagnostics' count (it stayed 0)
    assert ros_graph.wait_for(lambda: list_checkpoints(tmp_path / 'checkpoints'), timeout=10.0)
    # the policy's inputs are what a robot publishes: no simulator state topic is read
    assert not any(s.topic_name.endswith('ground_truth') for s in node.subscriptions)


def test_no_episode_begins_until_a_reward_node_publishes_progress(ros_graph, tmp_path):
    """An 8B model loading for minutes left the arm exploring with no reward to learn from."""
    ros_graph.add(SimRobotNode(context=ros_graph.context, parameter_overrides=_p(
        task='reach-v3', image_width=48, image_height=48, rate_hz=20.0, action_repeat=4)))
    node = _learner(ros_graph, tmp_path, wait_for_reward=True, episode_length=15,
                    reset_service='sim_robot_node/reset')
    assert ros_graph.wait_for(lambda: node.loop.waiting_to_begin, timeout=20.0)
    time.sleep(1.0)
    assert node.learner.episode_index == -1 and node.learner.env_steps == 0
    graph_camera = ros_graph.add(CameraNode(context=ros_graph.context, parameter_overrides=_p(
        stride=3, min_gap=1, use_ground_truth=True)))
    reward = ros_graph.add(RewardNode(context=ros_graph.context, parameter_overrides=_p(
        backend='oracle', autostart=False)))
    assert graph_camera and reward.trigger_configure() == TransitionCallbackReturn.SUCCESS
    reward.trigger_activate()
    assert ros_graph.wait_for(lambda: node.learner.env_steps > 5, timeout=30.0)
    assert not node.loop.waiting_to_begin


@pytest.mark.parametrize('command_type, topic, kind', [
    ('twist_stamped', 'servo_node/delta_twist_cmds', TwistStamped),
    ('pose_stamped', 'target_pose', PoseStamped)])
def test_cartesian_commands_drive_the_simulated_robot_in_its_frame(
        ros_graph, tmp_path, command_type, topic, kind):
    """Only what a real arm has: cameras, joints, ee_pose; no ground_truth in the graph."""
    ros_graph.add(SimRobotNode(context=ros_graph.context, parameter_overrides=_p(
        task='reach-v3', image_width=48, image_height=48, rate_hz=20.0, action_repeat=4,
        publish_ground_truth=False)))
    node = _learner(ros_graph, tmp_path, command__command_type=command_type,
                    command_topic=topic, episode_length=15, reset_service='sim_robot_node/reset',
                    command__translation_scale_m=0.04, safety__max_translation_m=0.04,
                    safety__max_speed_m_s=1.0, agent__seed_steps=10**6)
    probe = ros_graph.probe()
    commands, poses = Sink(), Sink()
    probe.create_subscription(kind, topic, commands, 50)
    probe.create_subscription(PoseStamped, 'ee_pose', poses, 50)
    assert ros_graph.wait_for(lambda: len(commands) > 30, timeout=30.0)
    assert {c.header.frame_id for c in commands.messages} == {'world'}
    positions = np.array([[m.pose.position.x, m.pose.position.y, m.pose.position.z]
                          for m in poses.messages])
    assert np.ptp(positions, axis=0).max() > 0.02, 'the commands did not move the robot'
    assert node.count_publishers('ground_truth') == 0


@pytest.mark.parametrize('gripper_type, topic', [
    ('float64_multiarray', 'gripper_controller/commands'),
    ('joint_trajectory', 'joint_trajectory_controller/joint_trajectory')])
def test_the_gripper_goes_out_on_its_own_topic_as_open_or_closed_positions(
        ros_graph, tmp_path, gripper_type, topic):
    arm = ros_graph.add(FakeArm(ros_graph.context))
    _learner(ros_graph, tmp_path, joint_names=JOINTS, agent__seed_steps=10**6,
             command__command_type='twist_stamped', command_topic='servo_node/delta_twist_cmds',
             command__gripper_command_type=gripper_type, gripper_topic=topic,
             command__gripper_joint_names=['finger_left', 'finger_right'])
    sink = arm.commands[topic]
    assert ros_graph.wait_for(lambda: len(sink) > 20, timeout=20.0)
    assert len(arm.commands['servo_node/delta_twist_cmds']) > 0
    if gripper_type == 'joint_trajectory':
        assert all(list(m.joint_names) == ['finger_left', 'finger_right'] and len(m.points) == 1
                   for m in sink.messages)
        positions = [tuple(m.points[0].positions) for m in sink.messages]
    else:
        positions = [tuple(m.data) for m in sink.messages]
    assert set(positions) <= {(0.04, 0.04), (0.0, 0.0)}, set(positions)
    assert len(set(positions)) == 2, 'random actions should both open and close it'


def test_a_velocity_command_is_stopped_soon_after_the_cameras_stop(ros_graph, tmp_path):
    """A twist stays in force until the next command, and none came until camera_timeout_s.

    The safety box allows one control period of motion; the arm ran on for the whole timeout
    (172 mm at 2 s). It is now held once 1.5 periods pass without a new moment.
    """
    arm = ros_graph.add(FakeArm(ros_graph.context))
    _learner(ros_graph, tmp_path, joint_names=JOINTS, agent__seed_steps=10**6,
             camera_timeout_s=5.0, command__command_type='twist_stamped',
             command_topic='servo_node/delta_twist_cmds')
    sink = arm.commands['servo_node/delta_twist_cmds']

    def still(msg) -> bool:
        twist = msg.twist
        return not any((twist.linear.x, twist.linear.y, twist.linear.z,
                        twist.angular.x, twist.angular.y, twist.angular.z))
    assert ros_graph.wait_for(lambda: len(sink) > 10 and not still(sink.last()), timeout=20.0)
    arm.publish_images = False
    stopped = time.monotonic()
    assert ros_graph.wait_for(lambda: still(sink.last()), timeout=4.0), (
        'the last velocity command stayed in force after the cameras stopped')
    assert time.monotonic() - stopped < 4.0   # the camera timeout is 5 s


def test_an_activation_waits_for_the_last_actor_or_is_refused(ros_graph, tmp_path):
    """An actor still in a slow inference when the node stopped saw the next activation.

    It sent the command it had computed before the stop (a jump back to where the arm had
    been) and drove the arm beside the new actor: two actors, twice the command rate.
    """
    arm = ros_graph.add(FakeArm(ros_graph.context))
    node = _learner(ros_graph, tmp_path, joint_names=JOINTS, agent__seed_steps=0,
                    stop_budget_s=1.0, command__command_type='twist_stamped',
                    command_topic='servo_node/delta_twist_cmds')
    sink = arm.commands['servo_node/delta_twist_cmds']
    assert ros_graph.wait_for(lambda: len(sink) > 5, timeout=20.0)
    agent, inferring = node.loop.learner.agent, threading.Event()
    act = agent.act

    def slow_act(*args, **kwargs):   # a policy inference of 1.5 s
        inferring.set()
        time.sleep(1.5)
        return act(*args, **kwargs)
    agent.act = slow_act
    assert inferring.wait(10.0)
    node.trigger_deactivate()
    agent.act = act
    state = node.trigger_activate()   # waits 1 s (stop_budget_s) for an actor 1.5 s away
    assert state == TransitionCallbackReturn.FAILURE
    time.sleep(1.0)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert [t.name for t in threading.enumerate()].count('actor') == 1


# Tests of the pose alone: the other inputs may be late by seconds on a loaded 2-core machine
# (one CI run found all four stale at once with the defaults of 0.5 s), never missing.
_SLOW_OTHERS = dict(camera_timeout_s=5.0, joint_timeout_s=5.0)


def _holds_after(graph, sink, stopped: float, is_hold, rate_hz: float, timeout_s: float,
                 lag_s: float = 0.3) -> list:
    """Check the node holds once its input went stale at ``stopped`` and keeps holding.

    Counted in commands, not in the test's receive times, which lag the node's publishing by
    up to seconds while a 2-core machine is loaded: after its input stops, a node at
    ``rate_hz`` sends at most ``rate_hz`` x (``timeout_s`` + a period) moving commands before
    it holds, and ``lag_s`` worth were already in flight; every later one must be a hold (a
    hold may come earlier too: a camera frame late under load). Returns the moving commands
    after ``stopped``.
    """
    def holding() -> bool:
        after = sink.since(stopped)
        return len(after) >= 5 and all(is_hold(m) for m in after[-5:])
    assert graph.wait_for(holding, timeout=10.0), 'no hold after the input went stale'
    held = len(sink.since(stopped))
    assert graph.wait_for(lambda: len(sink.since(stopped)) >= held + 10, timeout=10.0)
    after = sink.since(stopped)
    moving = [i for i, m in enumerate(after) if not is_hold(m)]
    assert not moving or moving[-1] < rate_hz * (timeout_s + 1.0 / rate_hz + lag_s), (
        f'moving commands {moving} of the {len(after)} after the input stopped')
    return [after[i] for i in moving]


@pytest.mark.parametrize('command_type, topic', [
    ('joint_trajectory', 'joint_trajectory_controller/joint_trajectory'),
    ('float64_multiarray', 'forward_command_controller/commands')])
def test_joint_space_commands_go_out_within_the_limits(ros_graph, tmp_path, command_type, topic):
    arm = ros_graph.add(FakeArm(ros_graph.context))
    _learner(ros_graph, tmp_path, action_layout='joint_position', joint_names=JOINTS,
             use_ee_pose=False, command__command_type=command_type, command_topic=topic,
             joints__lower=[0.0, 0.0, 0.0], joints__upper=[0.15, 1.0, 1.0],
             joints__max_step_rad=0.1, joints__max_rate_rad=0.1, joints__max_speed_rad_s=0.4)
    sink = arm.commands[topic]
    assert ros_graph.wait_for(lambda: len(sink) > 10, timeout=20.0)
    targets = []
    for msg in sink.messages:
        if command_type == 'joint_trajectory':
            assert isinstance(msg, JointTrajectory) and list(msg.joint_names) == JOINTS
            (point,) = msg.points
            positions = point.positions
        else:                                            # one position per joint, in order
            positions = msg.data
        assert len(positions) == len(JOINTS)
        assert 0.0 <= positions[0] <= 0.15               # clamped to the joint limits
        # one step from the measured 0.2, and no more than 0.4 rad/s x 0.05 s: the arm does
        # not follow (commands do not move it), and a target 0.1 rad away, to reach in one
        # period, asked 2 rad/s of the controller
        assert abs(positions[1] - 0.2) <= 0.02 + 1e-9
        targets.append(np.asarray(positions))
    # 0.4 rad/s at 20 Hz: 0.02 rad a command, below max_rate_rad (a hold sends the measured
    # joints, [0.1, 0.2, 0.3], and starts again from them)
    moves = [abs(b - a).max() for a, b in zip(targets, targets[1:])
             if not np.allclose(b, [0.1, 0.2, 0.3], atol=0)]
    assert moves and max(moves) <= 0.02 + 1e-9, max(moves)


def test_the_first_hold_after_a_reset_keeps_the_arm_where_the_reset_left_it(
        ros_graph, tmp_path):
    """A reset that homes the arm: the holds of the new episode hold it at home.

    They repeated the joints of the last command's moment, from before the reset: the first
    hold of every episode sent a homed arm back to where the last episode ended.
    """
    from std_srvs.srv import Trigger
    arm = ros_graph.add(FakeArm(ros_graph.context))
    places, resets, learner = ([0.6, 0.7, 0.8], [0.1, 0.2, 0.3]), [], []

    def homing(request, response):   # the robot's own routine moves it, elsewhere each time
        arm.joints = list(places[len(resets) % 2])
        # the commands sent before the reset are in, and the arm said where it now is, twice
        # (a fixed 0.2 s was short of a loaded machine's executor lag)
        ros_graph.wait_for(lambda: learner, timeout=10.0)   # a reset as it activates
        sent, frames = learner[0]._robot.output.sent, arm.frames
        ros_graph.wait_for(lambda: sum(len(s) for s in arm.commands.values()) >= sent
                           and arm.frames >= frames + 2, timeout=10.0)
        resets.append(time.monotonic())
        response.success = True
        return response
    probe = ros_graph.probe()
    probe.create_service(Trigger, 'arm/reset', homing)
    topic = 'forward_command_controller/commands'
    learner.append(_learner(
        ros_graph, tmp_path, action_layout='joint_position', joint_names=JOINTS,
        use_ee_pose=False, command__command_type='float64_multiarray', command_topic=topic,
        reset_service='arm/reset', episode_length=6, joints__max_step_rad=0.1,
        joints__lower=[-1.0, -1.0, -1.0], joints__upper=[1.0, 1.0, 1.0]))
    sink = arm.commands[topic]
    assert ros_graph.wait_for(lambda: len(resets) >= 2, timeout=30.0)
    assert ros_graph.wait_for(lambda: len(sink.messages) > 0 and sink.times[-1] > resets[1]
                              + 0.3, timeout=10.0)
    end = resets[2] if len(resets) > 2 else float('inf')
    after = [np.asarray(m.data) for m, t in zip(sink.messages, sink.times)
             if resets[1] < t < end]   # sent after the second reset answered
    # each is where that reset left the arm or one step from it, never where it was before
    assert after and all(np.abs(a - places[1]).max() <= 0.1 + 1e-9 for a in after), after[:3]


def test_a_slow_reset_is_waited_for_with_the_arm_held_and_never_called_twice(
        ros_graph, tmp_path, monkeypatch):
    """A reset slower than the learner's wait: the next episode's commands went out meanwhile.

    The learner gave up after 30 s and drove the arm while the robot's own reset still moved
    it; its next reset queued behind the first and ran in the middle of a later episode.
    """
    from std_srvs.srv import Trigger
    from sole_r1_ros.nodes import robot_client
    monkeypatch.setattr(robot_client, '_RESET_REPORT_S', 0.3)
    arm = ros_graph.add(FakeArm(ros_graph.context))
    calls = []   # (start, end) of each reset the robot ran

    def slow_reset(request, response):
        index = len(calls)
        calls.append((time.monotonic(), None))
        time.sleep(1.5 if index == 1 else 0.0)   # the second outlasts five waits
        calls[index] = (calls[index][0], time.monotonic())
        response.success = True
        return response
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    robot = Node('slow_robot', context=ros_graph.context)
    robot.create_service(Trigger, 'arm/reset', slow_reset,
                         callback_group=ReentrantCallbackGroup())   # calls may overlap
    executor = MultiThreadedExecutor(num_threads=2, context=ros_graph.context)
    executor.add_node(robot)
    import threading
    threading.Thread(target=executor.spin, daemon=True).start()
    topic = 'forward_command_controller/commands'
    _learner(ros_graph, tmp_path, action_layout='joint_position', joint_names=JOINTS,
             use_ee_pose=False, command__command_type='float64_multiarray', command_topic=topic,
             reset_service='arm/reset', episode_length=6, joints__max_step_rad=0.1,
             joints__lower=[-1.0, -1.0, -1.0], joints__upper=[1.0, 1.0, 1.0])
    sink = arm.commands[topic]
    try:
        assert ros_graph.wait_for(lambda: len(calls) >= 3 and all(c[1] for c in calls[:3]),
                                  timeout=30.0)
    finally:
        executor.shutdown(timeout_sec=2.0)
        robot.destroy_node()
    start, end = calls[1]
    during = [t for t in sink.times if start + 0.1 < t < end]
    assert not during, f'{len(during)} commands while the robot reset'
    assert calls[2][0] >= end   # the next reset was called after it answered, not beside it
    assert any(end < t < calls[2][0] for t in sink.times)   # and an episode ran between


def test_a_stopped_learner_sends_nothing_and_holds_a_jogged_arm_where_it_is(ros_graph, tmp_path):
    """Deactivate, jog the arm, pause, activate: the hold of the stop was sent again later.

    Its target was the joints of the stop: a pause while inactive sent the arm back to them at
    once (1 rad away, with no rate limit), and so did the first hold after the activation.
    """
    arm = ros_graph.add(FakeArm(ros_graph.context))
    topic = 'forward_command_controller/commands'
    node = _learner(ros_graph, tmp_path, action_layout='joint_position', joint_names=JOINTS,
                    use_ee_pose=False, command__command_type='float64_multiarray',
                    command_topic=topic, joints__max_step_rad=0.1, joints__max_rate_rad=0.1,
                    joints__lower=[-1.0, -1.0, -1.0], joints__upper=[1.0, 1.0, 1.0])
    sink = arm.commands[topic]
    assert ros_graph.wait_for(lambda: len(sink) > 5, timeout=20.0)
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    arm.joints = [0.9, -0.8, 0.7]                        # jogged by hand while inactive
    sent = node._robot.output.sent
    assert ros_graph.wait_for(lambda: len(sink) >= sent, timeout=10.0)
    client = ros_graph.probe().create_client(SetBool, 'learner_node/pause')
    assert client.wait_for_service(timeout_sec=10.0)
    answer = ros_graph.call(client, SetBool.Request(data=True))
    assert answer.success
    time.sleep(0.5)
    assert node._robot.output.sent == sent, 'an inactive learner commanded the arm'
    ros_graph.call(client, SetBool.Request(data=False))
    now = len(sink)
    node.trigger_activate()
    assert ros_graph.wait_for(lambda: len(sink) >= now + 5, timeout=20.0)
    after = [np.asarray(m.data) for m in sink.messages[now:]]
    # each within a step of where the arm is now, never back at [0.1, 0.2, 0.3]
    assert all(np.abs(a - arm.joints).max() <= 0.1 + 1e-9 for a in after), after[:3]


def test_a_pose_in_another_frame_is_said_rejected_not_never_received(ros_graph, tmp_path):
    """Every pose refused for its frame is said so, with the reason.

    /diagnostics said it never came, and the terminal asked whether the robot was up.
    """
    ros_graph.add(FakeArm(ros_graph.context, frame='fr3_link0'))
    node = _learner(ros_graph, tmp_path, joint_names=JOINTS, agent__seed_steps=10**6,
                    command__command_type='twist_stamped',
                    command_topic='servo_node/delta_twist_cmds')
    said = "every one rejected: end-effector pose in frame 'fr3_link0'"
    assert ros_graph.wait_for(
        lambda: said in node._robot.sensors.stale_reasons().get('ee_pose', ''),
        timeout=20.0), node._robot.sensors.stale_reasons()
    assert 'camera/external' not in node._robot.sensors.stale_reasons()   # the rest come


def _motion(msg, at: np.ndarray) -> np.ndarray:
    """The x, y, z motion a command asks for (a pose target: from where the arm is)."""
    if isinstance(msg, TwistStamped):
        return np.array([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z])
    if isinstance(msg, PoseStamped):
        p = msg.pose.position
        return np.array([p.x, p.y, p.z]) - at
    return np.asarray(msg.data[:3])


@pytest.mark.parametrize('command_type, topic', [
    ('float64_multiarray', 'forward_command_controller/commands'),
    ('twist_stamped', 'servo_node/delta_twist_cmds'),
    ('pose_stamped', 'target_pose')])
def test_end_effector_commands_hold_without_a_fresh_pose_and_stay_in_the_box(
        ros_graph, tmp_path, command_type, topic):
    arm = ros_graph.add(FakeArm(ros_graph.context))
    arm.position = np.array([0.5, 0.6, 0.2])            # at the box's +x face
    node = _learner(ros_graph, tmp_path, joint_names=JOINTS, pose_timeout_s=0.3,
                    **_SLOW_OTHERS, command__command_type=command_type, command_topic=topic,
                    agent__seed_steps=10**6)            # random actions, all directions
    sink = arm.commands[topic]
    assert ros_graph.wait_for(lambda: len(sink) > 40, timeout=20.0)
    moving = [d for d in (_motion(m, arm.position) for m in sink.messages)
              if np.abs(d).max() > 1e-6]
    assert moving and all(d[0] <= 1e-6 for d in moving), 'a command left the safety box'
    assert any(d[0] < 0 for d in moving)
    if command_type != 'float64_multiarray':
        assert {m.header.frame_id for m in sink.messages} == {'world'}
    assert node.count_publishers('ground_truth') == 0   # no simulator in this graph

    arm.publish_pose = False                            # the pose goes stale
    stopped, stopped_s = time.monotonic(), time.time()
    moving = _holds_after(ros_graph, sink, stopped, lambda m: np.abs(
        _motion(m, arm.position)).max() < 1e-6, rate_hz=20.0, timeout_s=0.3)
    if command_type != 'float64_multiarray':            # the node's own stamps say when
        # counted from when the node took the last pose, which a loaded machine's executor
        # does later than the arm stopped publishing
        last_pose_s = node._robot.sensors._pose.arrived_s
        taken_s = max(stopped_s, time.time() - (time.monotonic() - last_pose_s))
        sent = [stamp_s(m) - taken_s for m in moving]
        assert not sent or max(sent) < 0.3 + 0.05 + 0.45, sent
    assert ros_graph.wait_for(lambda: node._robot.sensors.stale_sources() == ['ee_pose'])
    statuses = Sink()                                   # and /diagnostics names it
    arm.create_subscription(DiagnosticArray, '/diagnostics', statuses, 10)
    name = node.get_fully_qualified_name()
    assert ros_graph.wait_for(lambda: any(
        kv.key == 'stale' and kv.value == 'ee_pose' for array in list(statuses.messages)
        for status in array.status if status.name == name for kv in status.values),
        timeout=5.0)
    from diagnostic_msgs.msg import DiagnosticStatus   # and says so at WARN, for rqt's monitor
    holding = [status for array in list(statuses.messages) for status in array.status
               if status.name == name and 'stale ee_pose' in status.message]
    assert holding and all(s.level == DiagnosticStatus.WARN for s in holding)


def test_a_safety_limit_set_while_running_limits_the_next_commands(ros_graph, tmp_path):
    """``ros2 param set /learner_node safety.max_speed_m_s`` takes effect, not only succeeds."""
    arm = ros_graph.add(FakeArm(ros_graph.context))
    topic = 'servo_node/delta_twist_cmds'
    node = _learner(ros_graph, tmp_path, joint_names=JOINTS, **_SLOW_OTHERS,
                    command__command_type='twist_stamped', command_topic=topic,
                    agent__seed_steps=10**6)            # random actions, all directions
    sink = arm.commands[topic]
    assert ros_graph.wait_for(lambda: len(sink) > 40, timeout=20.0)
    speeds = [np.linalg.norm(_motion(m, arm.position)) for m in sink.messages]
    assert 0.05 < max(speeds) <= 0.25 + 1e-6, max(speeds)    # the default limit binds

    assert node.set_parameters(_p(safety__max_speed_m_s=0.05))[0].successful
    changed = len(sink)
    assert ros_graph.wait_for(lambda: len(sink) > changed + 40, timeout=20.0)
    after = [np.linalg.norm(_motion(m, arm.position)) for m in sink.messages[changed + 2:]]
    assert max(after) <= 0.05 + 1e-6, max(after)


def test_reset_by_hand_holds_between_episodes_and_the_marker_is_in_rviz_frame(
        ros_graph, tmp_path):
    """No reset service: a person resets, hand_reset_s between episodes (not before the first)."""
    from sole_r1_interfaces.msg import Episode
    from visualization_msgs.msg import Marker
    ros_graph.add(FakeArm(ros_graph.context))
    probe = ros_graph.probe()
    episodes, markers = Sink(), Sink()
    probe.create_subscription(Episode, 'episode', episodes, 50)
    probe.create_subscription(Marker, 'sole_r1/learner_marker', markers, 10)
    started = time.monotonic()
    _learner(ros_graph, tmp_path, joint_names=JOINTS, **_SLOW_OTHERS, episode_length=4,
             hand_reset_s=1.5, marker_frame='map')
    assert ros_graph.wait_for(lambda: sum(bool(m.episode_id) for m in episodes.messages) >= 2,
                              timeout=30.0)
    arrivals = [(bool(m.episode_id), t) for m, t in zip(episodes.messages, episodes.times)]
    starts = [t for begun, t in arrivals if begun]
    assert starts[0] - started < 10.0                   # the first: no hold (the scene is set)
    ends = [t for begun, t in arrivals if not begun and t > starts[0]]
    assert starts[1] - ends[0] >= 1.4, (ends[0], starts[1])
    assert ros_graph.wait_for(lambda: markers.messages, timeout=5.0)   # the 1 Hz status too
    assert {m.header.frame_id for m in markers.messages} == {'map'}


@pytest.mark.parametrize('broken', ['quaternion', 'nan', 'frame', 'no frame'])
def test_a_pose_with_a_nan_a_broken_quaternion_or_another_frame_counts_as_stale(
        ros_graph, tmp_path, broken):
    arm = ros_graph.add(FakeArm(ros_graph.context))
    node = _learner(ros_graph, tmp_path, joint_names=JOINTS, pose_timeout_s=0.3, **_SLOW_OTHERS)
    sink = arm.commands['forward_command_controller/commands']
    assert ros_graph.wait_for(lambda: len(sink) > 5, timeout=20.0)
    broke = time.monotonic()
    if broken == 'quaternion':
        arm.orientation = np.array([0.0, 0.0, 0.0, 0.5])
    elif broken == 'frame':                             # a pose in another frame
        arm.frame = 'camera_link'
    elif broken == 'no frame':                          # or in a frame nobody named
        arm.frame = ''
    else:
        arm.position = np.array([0.0, float('nan'), 0.2])
    # the frame is checked at the node's edge, the numbers where the pose is read
    at_edge = broken in ('frame', 'no frame')
    rejected = node.firewall.rejected if at_edge else node._robot.sensors.rejected
    source = 'ee_pose' if at_edge else 'pose'
    assert ros_graph.wait_for(lambda: rejected.get(source, 0) > 0)
    assert ros_graph.wait_for(lambda: node._robot.sensors.stale_sources() == ['ee_pose'])
    _holds_after(ros_graph, sink, broke, lambda m: not any(m.data[:3]), rate_hz=20.0,
                 timeout_s=0.3)


def test_cleanup_destroys_what_configure_made_and_configure_makes_it_again(ros_context, tmp_path):
    """Not spinning: a transition arrives on the executor's own thread in a running node."""
    node = LearnerNode(context=ros_context, parameter_overrides=_p(
        run_dir=str(tmp_path), autostart=False, joint_names=JOINTS, command__frame_id='world',
        reset_service='', **_BOX))

    def entities() -> tuple[set, set, set, int]:
        return ({s.topic_name for s in node.subscriptions},
                {p.topic_name for p in node.publishers},
                {s.srv_name for s in node.services}, len(list(node.timers)))
    bare = entities()
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    configured = entities()
    assert {'/camera/external/image_raw', '/joint_states', '/ee_pose',
            '/sole_r1/progress'} <= configured[0] - bare[0]
    assert any(s.endswith('label_episode') for s in configured[2] - bare[2])
    assert configured[1] - bare[1]
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert entities() == bare and node.loop is None
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert entities() == configured
    # Destroyed without a cleanup (Ctrl-C), it still closes its metrics: TensorBoard's writer
    # holds events in memory and a thread of its own until then.
    metrics = node._metrics
    node.destroy_node()
    assert metrics._writer is None and metrics._jsonl.closed


def test_lifecycle_cycles_and_failures_release_the_learner(ros_context, tmp_path, monkeypatch):
    """What an activation or a failed transition made is let go; a shutdown releases all.

    The heap frozen at activation (gc.freeze) kept every cleaned-up learner for good; a
    transition that raised left the loop, run lock and publishers alive (the next configure
    refused by its own lock, the one after doubled the command publishers); a shutdown kept
    the services, subscriptions and lock, and the process spun on.
    """
    import gc
    import weakref
    node = LearnerNode(context=ros_context, parameter_overrides=_p(
        run_dir=str(tmp_path), autostart=False, joint_names=JOINTS, command__frame_id='world',
        reset_service='', **_BOX))

    def entities() -> tuple[list, list, int]:
        return (sorted(s.topic_name for s in node.subscriptions),
                sorted(p.topic_name for p in node.publishers), len(list(node.timers)))
    bare = entities()
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        configured = entities()
        old = weakref.ref(node.loop)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        gc.collect()
        assert old() is None, 'the cleaned-up learner stayed in the frozen heap'

        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        monkeypatch.setattr(node.loop, 'start', lambda: 1 / 0)   # an activation that raises
        assert node.trigger_activate() != TransitionCallbackReturn.SUCCESS
        assert node.loop is None and node._run_lock is None and entities() == bare
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert entities() == configured, 'entities doubled after a failed transition'

        assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
        assert node.finalized and entities() == bare and node._run_lock is None
    finally:
        node.destroy_node()


def test_resume_false_over_a_runs_checkpoints_is_refused_not_rotated_away(
        ros_context, tmp_path):
    """Numbered on from the old checkpoints, the new run deleted them three checkpoints in."""
    old = tmp_path / 'checkpoints' / 'ckpt-00000039'
    old.mkdir(parents=True)
    node = LearnerNode(context=ros_context, parameter_overrides=_p(
        run_dir=str(tmp_path), autostart=False, resume=False, joint_names=JOINTS,
        command__frame_id='world', reset_service='', **_BOX))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert old.is_dir() and node._run_lock is None
    finally:
        node.destroy_node()


def test_stale_observations_stop_commands_within_the_timeout(ros_graph, tmp_path):
    sim, node = _sim_loop(ros_graph, tmp_path, camera_timeout_s=0.3, joint_timeout_s=0.3,
                          pose_timeout_s=0.3, agent__seed_steps=1000)
    probe = ros_graph.probe()
    commands = Sink()
    probe.create_subscription(Float64MultiArray, 'forward_command_controller/commands',
                              commands, 50)
    assert ros_graph.wait_for(lambda: any(any(m.data) for m in commands.messages), 30.0)
    stopped = time.monotonic()
    ros_graph.remove(sim)     # the robot's sensors go silent
    sim.destroy_node()
    _holds_after(ros_graph, commands, stopped, lambda m: not any(m.data[:3]), rate_hz=20.0,
                 timeout_s=0.3)


def test_pause_holds_the_robot_and_evaluate_reports_per_episode(ros_graph, tmp_path):
    sim, node = _sim_loop(ros_graph, tmp_path, episode_length=8)
    probe = ros_graph.probe()
    pause = probe.create_client(SetBool, 'learner_node/pause')
    assert ros_graph.wait_for(lambda: node.learner.env_steps > 0, timeout=30.0)   # acting
    assert ros_graph.call(pause, SetBool.Request(data=True)).success
    env_steps = node.learner.env_steps
    time.sleep(0.5)
    assert node.learner.env_steps == env_steps, 'paused learner kept acting'
    assert ros_graph.call(pause, SetBool.Request(data=False)).success
    assert ros_graph.wait_for(lambda: node.learner.env_steps > env_steps, timeout=30.0), (
        'the learner did not act again after the pause')

    client = ros_graph.action_client(Evaluate, 'learner_node/evaluate')
    assert client.wait_for_server(timeout_sec=10.0)
    assert ros_graph.call(pause, SetBool.Request(data=True)).success   # paused: it would wait
    refused = client.send_goal_async(Evaluate.Goal(episodes=1))
    assert ros_graph.wait_for(refused.done, timeout=10.0) and not refused.result().accepted
    assert ros_graph.call(pause, SetBool.Request(data=False)).success
    for threshold in (float('nan'), 150.0):   # accepted, it was aborted with a result of zeros
        refused = client.send_goal_async(Evaluate.Goal(episodes=1, progress_threshold=threshold))
        assert ros_graph.wait_for(refused.done, timeout=10.0) and not refused.result().accepted
    feedback = []
    goal_future = client.send_goal_async(Evaluate.Goal(episodes=2, progress_threshold=50.0),
                                         feedback_callback=lambda f: feedback.append(f.feedback))
    assert ros_graph.wait_for(goal_future.done, timeout=10.0)
    second = client.send_goal_async(Evaluate.Goal(episodes=1))   # one evaluation at a time
    assert ros_graph.wait_for(second.done, timeout=10.0) and not second.result().accepted
    result_future = goal_future.result().get_result_async()
    assert ros_graph.wait_for(result_future.done, timeout=60.0)
    result = result_future.result().result
    assert result.episodes_done == 2 and len(result.final_progress) == 2
    assert result.episodes_unscored == 0
    # feedback and result travel apart (a topic and a service): the last feedback may come after
    assert ros_graph.wait_for(lambda: len(feedback) == 2, timeout=10.0), feedback
    assert all(f.has_ground_truth for f in feedback)
    assert result.success_rate_ground_truth == pytest.approx(
        np.mean([f.success_ground_truth for f in feedback]))
    assert result.success_rate_progress == np.mean([p >= 50.0 for p in result.final_progress])
    # the ground-truth subscription outlives the evaluation: destroying it while the executor's
    # thread built its wait set raised InvalidHandle and ended this graph's executor
    assert [s.topic_name for s in node.subscriptions if s.topic_name.endswith('ground_truth')] \
        == ['/ground_truth']


def test_an_evaluation_ended_by_a_deactivate_and_cleanup_gets_its_result(ros_graph, tmp_path):
    """Deactivated and cleaned up back to back, the goal never got a result: a client waited.

    So did one whose learner stopped on Ctrl-C (``spin.run_node`` destroyed it at once).
    """
    from action_msgs.msg import GoalStatus
    sim, node = _sim_loop(ros_graph, tmp_path, episode_length=200)
    client = ros_graph.action_client(Evaluate, 'learner_node/evaluate')
    assert client.wait_for_server(timeout_sec=10.0)
    goal_future = client.send_goal_async(Evaluate.Goal(episodes=3))
    assert ros_graph.wait_for(goal_future.done, timeout=10.0) and goal_future.result().accepted
    result_future = goal_future.result().get_result_async()
    time.sleep(0.5)
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert ros_graph.wait_for(result_future.done, timeout=10.0), 'no result ever came'
    assert result_future.result().status == GoalStatus.STATUS_ABORTED


@pytest.mark.timeout(260)
def test_a_killed_learner_resumes_from_its_newest_checkpoint(ros_graph, tmp_path):
    """A SIGKILL leaves no clean-up at all: the newest checkpoint on disk comes back.

    And a transition already labelled is never labelled again.
    """
    sim = _sim_and_reward(ros_graph)
    args = [f'{k.replace("__", ".")}:={v}' for k, v in dict(
        run_dir=tmp_path, episode_length=15, control_rate_hz=20.0, checkpoint_every_s=1.0,
        agent__seed_steps=30, agent__batch_size=16, replay__min_labelled=20,
        command__frame_id='world').items()]
    child = subprocess.Popen([sys.executable, '-m', 'sole_r1_ros.nodes.learner_node',
                              '--ros-args'] + [a for arg in args for a in ('-p', arg)],
                             env=dict(os.environ), stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT)

    def labelled_checkpoint() -> bool:
        """The newest checkpoint holds steps and applied labels (the first may hold none)."""
        found = list_checkpoints(tmp_path / 'checkpoints')
        try:
            meta = json.loads((found[0] / 'meta.json').read_text()) if len(found) >= 2 else {}
        except (OSError, ValueError):
            return False
        return (meta.get('counters', {}).get('env_steps', 0) > 0
                and meta.get('replay', {}).get('counts', {}).get('applied', 0) > 0)

    try:
        assert ros_graph.wait_for(labelled_checkpoint, timeout=150.0)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    saved = load_latest(tmp_path / 'checkpoints')
    assert saved.counters['env_steps'] > 0 and saved.replay_meta['counts']['applied'] > 0
    again = _learner(ros_graph, tmp_path, activate=False, resume=True, episode_length=15)
    names = saved.counters.pop('episode_names')          # the recent episodes' names, kept
    assert {**again.learner.counters(), 'meaning': again.learner.meaning} == saved.counters
    assert list(again.learner._names) == [name for name, _ in names] and names
    assert again.learner.replay.stats()['labels_applied'] == saved.replay_meta['counts'][
        'applied']
    arrays = saved.replay_arrays                       # a frame the run had labelled
    labelled = np.flatnonzero(~np.isnan(arrays['label']) & (arrays['episode'] >= 0))
    assert labelled.size
    slot = labelled[-1]
    episode, step = int(arrays['episode'][slot]), int(arrays['step'][slot])
    assert again.learner.replay.label(episode, step, 50.0).value == 'duplicate'
    del sim


def test_two_learners_never_share_a_run_directory(ros_graph, tmp_path):
    """They deleted each other's half-written checkpoints and rotated away the finished ones."""
    first = _learner(ros_graph, tmp_path, activate=False)
    second = ros_graph.add(LearnerNode(context=ros_graph.context, parameter_overrides=_p(
        run_dir=str(tmp_path), autostart=False, command__frame_id='world', reset_service='',
        **_BOX)))
    assert second.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert first.trigger_cleanup() == TransitionCallbackReturn.SUCCESS   # the lock goes too
    assert second.trigger_configure() == TransitionCallbackReturn.SUCCESS


def test_a_run_directory_of_another_goal_is_not_resumed(ros_graph, tmp_path):
    """The launch files resume run_dir as it is: another goal's policy and rewards loaded."""
    logs = Sink()
    ros_graph.probe().create_subscription(Log, '/rosout', logs, ROSOUT_QOS)
    first = _learner(ros_graph, tmp_path, activate=False, goal='close the drawer')
    first.learner.save()
    assert first.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    again = ros_graph.add(LearnerNode(
        context=ros_graph.context, cli_args=own_name('learner_of_another_goal'),
        parameter_overrides=_p(run_dir=str(tmp_path), autostart=False, goal='open the drawer',
                               command__frame_id='world', reset_service='', **_BOX)))
    assert again.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert ros_graph.wait_for(lambda: any(
        m.name.endswith('learner_of_another_goal') and "learnt with goal 'close the drawer', "
        "not 'open the drawer'" in m.msg for m in logs.messages), timeout=5.0)
    _learner(ros_graph, tmp_path, activate=False, goal='close the drawer')   # its own goal


def test_a_tf_pose_source_without_tf2_fails_to_configure_with_the_reason(ros_graph, tmp_path):
    try:
        import tf2_ros  # noqa: F401
        pytest.skip('tf2_ros is installed here: test_the_pose_comes_from_tf covers it')
    except ImportError:
        pass
    logs = Sink()
    ros_graph.probe().create_subscription(Log, '/rosout', logs, ROSOUT_QOS)
    node = ros_graph.add(LearnerNode(
        context=ros_graph.context, cli_args=own_name('learner_node_without_tf2'),
        parameter_overrides=_p(run_dir=str(tmp_path), autostart=False, pose_source='tf',
                               reset_service='')))
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert ros_graph.wait_for(lambda: any(
        m.name.endswith('learner_node_without_tf2') and 'tf2_ros' in m.msg
        for m in logs.messages), timeout=5.0), 'the failure does not say tf2_ros is missing'


def test_the_pose_comes_from_tf(ros_graph, tmp_path):
    tf2_ros = pytest.importorskip('tf2_ros', reason='tf2_ros has no PyPI wheel (ROS installs)')
    from geometry_msgs.msg import TransformStamped
    arm = ros_graph.add(FakeArm(ros_graph.context))
    arm.publish_pose = False
    broadcaster = tf2_ros.TransformBroadcaster(arm)
    arm.create_timer(0.05, lambda: broadcaster.sendTransform(TransformStamped(
        header=arm._stamped_header('world'), child_frame_id='tool0')))
    node = _learner(ros_graph, tmp_path, joint_names=JOINTS, pose_source='tf',
                    tf_ee_frame='tool0')
    sink = arm.commands['forward_command_controller/commands']
    assert ros_graph.wait_for(lambda: any(any(m.data[:3]) for m in sink.messages), 20.0)
    assert 'ee_pose' not in node._robot.sensors.stale_sources()


def test_a_human_takes_over_from_the_gripper_as_it_is_not_the_last_action(ros_context):
    """Between the thresholds the last action says nothing of the gripper: its state does."""
    from rclpy.node import Node

    from sole_r1_ros.nodes.command_output import CommandOutput
    from sole_r1_ros.rl.commands import CommandConfig, JointLimits
    from sole_r1_ros.rl.poses import checked_pose
    from sole_r1_ros.rl.safety import SafetyBox
    from sole_r1_ros.rl.sensing import Sensed
    node = Node('gripper_state', context=ros_context)
    try:
        output = CommandOutput(
            node, 'ee_delta', CommandConfig(command_type='twist_stamped',
                                            gripper_command_type='float64_multiarray'),
            SafetyBox(), (), JointLimits(), 'servo_node/delta_twist_cmds',
            'gripper_controller/commands', 0.1)
        sensed = Sensed(1, np.zeros(3, np.float32), {}, np.zeros(2),
                        checked_pose([0.0, 0.6, 0.2], [0.0, 0.0, 0.0, 1.0]))
        for value, closed in ((-0.9, False), (0.3, False), (0.9, True), (0.3, True)):
            output.send(np.array([0.0, 0.0, 0.0, value], np.float32), sensed)
            assert output.gripper == (1.0 if closed else -1.0), value
        # After a reset (or at a restart) the measured fingers say it, not an assumed 'open':
        # a learner restarted while grasping no longer opens the gripper at its first action.
        output.forget()
        output.send(np.array([0.0, 0.0, 0.0, -0.9], np.float32), sensed)   # it opens
        output.forget()
        output.sense_gripper(['gripper_joint', 'other'], [0.002, 0.5])      # closed by the reset
        assert output.gripper == 1.0
        output.sense_gripper(['gripper_joint'], [0.04])   # once known, a command sets it
        assert output.gripper == 1.0
        output.send(np.array([0.0, 0.0, 0.0, 0.3], np.float32), sensed)
        assert output.gripper == 1.0
    finally:
        node.destroy_node()


def _drive_with_a_lagging_pose(ros_context, box, config, action, pose_at, integrate,
                               skew_s=0.0, lag_ns=300_000_000) -> float:
    """Send ``action`` 20 times, 0.1 s apart, to an arm that does what it is told.

    The arm moves in real time, as a Servo-driven one does: each twist from the moment it is
    sent until the next one, for 0.1 s at most (Servo's timeout for a command not renewed).
    Its pose is the arm's of ``lag_ns`` ago at every moment taken (stamped ``skew_s`` ahead of
    our clock), and the command follows 50 ms later (the policy's inference): ``pose_at(value)``
    is the pose of a value, ``integrate(value, twist, dt_s)`` the value after ``dt_s`` of a
    twist. Returns the arm's value after the last command.
    An arm moved 0.1 s per command whatever the time between them (before) left the box by a
    millimetre when a loaded machine spaced the commands unevenly (CI, 2026-12-07).
    """
    from rclpy.node import Node

    from sole_r1_ros.nodes.command_output import CommandOutput
    from sole_r1_ros.rl.commands import JointLimits
    from sole_r1_ros.rl.sensing import Sensed
    node = Node('lagging_pose', context=ros_context)
    sent = []   # (the twist's stamp [ns], twist)

    def value_at(t_ns):
        value = 0.0
        ends = [t for t, _ in sent[1:]] + [None]
        for (start, twist), end in zip(sent, ends):
            stop = start + 100_000_000 if end is None else min(end, start + 100_000_000)
            if min(stop, t_ns) > start:
                value = integrate(value, twist, (min(stop, t_ns) - start) * 1e-9)
        return value

    try:
        output = CommandOutput(node, 'ee_delta', config, box, (), JointLimits(),
                               'servo_node/delta_twist_cmds', '', 0.1)
        twists = []
        node.create_subscription(TwistStamped, 'servo_node/delta_twist_cmds', twists.append, 50)
        executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
        executor.add_node(node)
        clock = node.get_clock()
        for step in range(20):
            start = time.monotonic()   # read before ``now``: the pose is no younger
            now = clock.now().nanoseconds
            sensed = Sensed(1, np.zeros(3, np.float32), {}, np.zeros(2),
                            pose_at(value_at(now - lag_ns)),
                            pose_stamp_ns=now - lag_ns + int(skew_s * 1e9),
                            pose_arrived_s=start - lag_ns * 1e-9)
            time.sleep(0.05)   # the policy's inference, between the moment and the command
            output.send(np.asarray(action, np.float32), sensed)
            while len(twists) <= step and time.monotonic() - start < 5.0:
                executor.spin_once(timeout_sec=0.02)
            assert len(twists) > step, 'no twist within 5 s'
            sent.append((rclpy.time.Time.from_msg(twists[step].header.stamp).nanoseconds,
                         twists[step].twist))   # the arm moves from the command's moment on
            time.sleep(max(0.0, 0.1 - (time.monotonic() - start)))
        executor.shutdown()
        return value_at(sent[-1][0] + 100_000_000)
    finally:
        node.destroy_node()


@pytest.mark.parametrize('skew_s', [0.0, 1.0])
def test_a_velocity_command_counts_the_motion_a_lagging_pose_has_not_seen(ros_context, skew_s):
    """A Servo-driven arm left the box by 10 mm per 0.1 s its pose lagged the commands.

    Velocities move the arm until the next command; the box was checked against a pose that
    had not seen those already sent. Here the arm truly moves as commanded (0.2 m/s in +x, in
    real time) and its pose is 0.3 s old at every moment taken. ``skew_s``: the pose's host
    clock is ahead of ours; its stamp had counted no motion (the arm 30 mm out), and its age
    taken with the moment missed the 50 ms of inference before the command (5 mm out).
    """
    from sole_r1_ros.rl.commands import CommandConfig
    from sole_r1_ros.rl.poses import checked_pose
    from sole_r1_ros.rl.safety import SafetyBox
    x = _drive_with_a_lagging_pose(
        ros_context, SafetyBox(box_lower=(-1.0, 0.0, 0.0), box_upper=(0.1, 1.0, 1.0),
                               max_translation_m=0.02, max_speed_m_s=0.2),
        CommandConfig(command_type='twist_stamped'), [1.0, 0.0, 0.0, 0.0],
        lambda x: checked_pose([x, 0.5, 0.5], [0.0, 0.0, 0.0, 1.0]),
        lambda x, twist, dt: x + dt * twist.linear.x, skew_s)
    assert x > 0.09 and x <= 0.1 + 1e-3, x           # up to the face, not past it


def test_a_velocity_command_counts_the_turn_a_lagging_pose_has_not_seen(ros_context):
    """The yaw limit was checked against the measured orientation alone.

    With the pose 0.3 s old the tool turned 17 degrees past a 0.2 rad limit. Here the arm
    truly turns as commanded (about z, in real time).
    """
    from sole_r1_ros.rl.commands import CommandConfig
    from sole_r1_ros.rl.poses import checked_pose, quat_from_rotvec
    from sole_r1_ros.rl.safety import SafetyBox
    yaw = _drive_with_a_lagging_pose(
        ros_context, SafetyBox(box_lower=(-1.0, 0.0, 0.0), box_upper=(1.0, 1.0, 1.0),
                               yaw_half_range_rad=0.2, max_rotation_rad=0.05,
                               max_angular_speed_rad_s=0.5),
        CommandConfig(command_type='twist_stamped', rotation_actions=True),
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        lambda yaw: checked_pose([0.0, 0.5, 0.5], quat_from_rotvec([0.0, 0.0, yaw])),
        lambda yaw, twist, dt: yaw + dt * twist.angular.z)
    # up to the limit, not past it (within the timing of this test: 0.35 without the turn)
    assert yaw > 0.15 and yaw <= 0.2 + 0.01, yaw


def test_an_end_effector_outside_the_box_is_said_and_only_let_back_in(ros_context):
    """An arm 0.45 m outside the box (a box in another frame) was driven about unsaid."""
    from rclpy.node import Node

    from sole_r1_ros.nodes.command_output import CommandOutput
    from sole_r1_ros.rl.commands import CommandConfig, JointLimits
    from sole_r1_ros.rl.poses import checked_pose
    from sole_r1_ros.rl.safety import SafetyBox
    from sole_r1_ros.rl.sensing import Sensed
    node = Node('outside_box', context=ros_context)
    try:
        output = CommandOutput(node, 'ee_delta', CommandConfig(command_type='twist_stamped'),
                               SafetyBox(), (), JointLimits(), 'servo_node/delta_twist_cmds', '',
                               0.1)
        inside = Sensed(1, np.zeros(3, np.float32), {}, np.zeros(2),
                        checked_pose([0.0, 0.6, 0.2], [0.0, 0.0, 0.0, 1.0]))
        output.send(np.array([1.0, 1.0, 1.0, 0.0], np.float32), inside)
        assert output.outside_box == 0
        outside = inside._replace(pose=checked_pose([1.2, 0.6, 0.9], [0.0, 0.0, 0.0, 1.0]))
        output.send(np.array([1.0, 0.0, 1.0, 0.0], np.float32), outside)
        assert output.outside_box == 1
    finally:
        node.destroy_node()


def test_an_input_that_goes_stale_while_the_policy_decides_holds_instead_of_acting(
        ros_context):
    """A slow inference outlived the joint states' timeout: the action was for an arm unseen."""
    from rclpy.node import Node

    from sole_r1_ros.nodes.robot_client import RobotClient
    from sole_r1_ros.rl import SensingConfig, Sensors

    class Output:
        def __init__(self) -> None:
            self.calls = []

        def send(self, action, sensed):
            self.calls.append('send')

        def hold(self, *measured):
            self.calls.append('hold')

    class Clock:
        now = 100.0

        def __call__(self) -> float:
            return self.now
    clock = Clock()
    sensors = Sensors(SensingConfig(joint_names=('a',), views=('external',), use_ee_pose=False,
                                    proprio_wait_s=0.0, joint_timeout_s=0.2), clock=clock)
    node = Node('stale_while_deciding', context=ros_context)
    try:
        output = Output()
        client = RobotClient(node, sensors=sensors, output=output, reset_service='',
                             firewall=None)
        assert sensors.add_joints(10**9, ['a'], [0.1], []) is None
        assert sensors.add_frame('external', 10**9, np.zeros((8, 8, 3), np.uint8)) is None
        sensed = client.observe()
        assert sensed is not None
        assert client.send(np.zeros(4), sensed) and output.calls == ['send']   # fresh: acts
        clock.now += 0.3   # the inference took longer than joint_timeout_s
        assert not client.send(np.zeros(4), sensed)
        assert output.calls == ['send', 'hold']
    finally:
        node.destroy_node()


@pytest.mark.parametrize('layout', ['pose', 'joints'])
def test_a_hold_target_far_from_the_measured_arm_is_replaced_by_where_it_is(ros_context, layout):
    """An arm moved by hand between holds was sent straight back to the old target, unlimited.

    Within one command's step (a sagging arm) the first target is kept.
    """
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node
    from std_msgs.msg import Float64MultiArray

    from sole_r1_ros.nodes.command_output import CommandOutput
    from sole_r1_ros.rl.commands import CommandConfig, JointLimits
    from sole_r1_ros.rl.poses import checked_pose
    from sole_r1_ros.rl.safety import SafetyBox
    node = Node(f'far_hold_{layout}', context=ros_context)
    try:
        received = []
        if layout == 'pose':
            output = CommandOutput(node, 'ee_delta', CommandConfig(command_type='pose_stamped'),
                                   SafetyBox(), (), JointLimits(), 'target_pose', '', 0.1)
            node.create_subscription(PoseStamped, 'target_pose', lambda m: received.append(
                [m.pose.position.x, m.pose.position.y, m.pose.position.z]), 10)
            start, sagged, moved = ([0.0, 0.6, 0.2], [0.0, 0.6, 0.195], [0.2, 0.6, 0.2])

            def hold(at):
                output.hold(pose=checked_pose(at, [0.0, 0.0, 0.0, 1.0]))
        else:
            output = CommandOutput(
                node, 'joint_position', CommandConfig(command_type='float64_multiarray'),
                SafetyBox(), ('a', 'b'), JointLimits(lower=(-1.0, -1.0), upper=(1.0, 1.0)),
                'joint_commands', '', 0.1)
            node.create_subscription(Float64MultiArray, 'joint_commands',
                                     lambda m: received.append(list(m.data)), 10)
            start, sagged, moved = [0.0, 0.0], [0.0, -0.01], [0.5, 0.0]

            def hold(at):
                output.hold(joints=np.array(at))
        executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
        executor.add_node(node)
        for at in (start, sagged, moved):
            hold(at)
            deadline = time.monotonic() + 5.0
            while len(received) < [start, sagged, moved].index(at) + 1 \
                    and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.02)
        executor.shutdown()
        np.testing.assert_allclose(received, [start, start, moved])
    finally:
        node.destroy_node()


def test_the_who_drives_marker_follows_the_teleop_not_only_its_events(ros_context):
    """A teleop.* parameter change hands back without a Joy event; rviz said HUMAN for ever."""
    import dataclasses

    from rclpy.node import Node
    from sensor_msgs.msg import Joy
    from visualization_msgs.msg import Marker

    from sole_r1_ros.nodes.robot_client import RobotClient
    from sole_r1_ros.rl.teleop import SPACEMOUSE, Teleop

    class Output:
        gripper = 0.0
    node = Node('who_drives', context=ros_context)
    try:
        texts = []
        node.create_subscription(Marker, 'sole_r1/learner_marker',
                                 lambda m: texts.append(m.text), 10)
        client = RobotClient(node, sensors=None, output=Output(), reset_service='',
                             firewall=None)
        client.publishers(None, None, node.create_publisher(Marker, 'sole_r1/learner_marker',
                                                            10))
        client.human = Teleop(SPACEMOUSE)
        client.joy(Joy(axes=[0.3, 0.0, 0.0, 0.0, 0.0, 0.0], buttons=[1, 0]))   # takes over
        client.update('teleop', dataclasses.replace(SPACEMOUSE, axis_scales=(1.0,) * 6))
        client.publish_marker()   # the status timer's
        executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
        executor.add_node(node)
        deadline = time.monotonic() + 5.0
        while len(texts) < 2 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert [t.split('\n')[0] for t in texts] == ['HUMAN driving', 'policy driving']
    finally:
        node.destroy_node()
