"""sim_robot_node over real DDS: cameras, commands, reset, malformed input, a scripted expert."""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('metaworld')

from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import PoseStamped, TwistStamped  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, JointState, Joy  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from fakes import own_name, ROSOUT_QOS, Sink, stamp_s  # noqa: E402
from sole_r1_interfaces.msg import Episode, TaskState  # noqa: E402
from sole_r1_ros.nodes.sim_robot_node import SimRobotNode  # noqa: E402


def _sim(graph, name: str = '', **overrides) -> SimRobotNode:
    """The sim node; a test that reads its /rosout gives it a ``name`` of its own (own_name)."""
    params = dict(image_width=64, image_height=48, rate_hz=10.0)
    params.update(overrides)
    node = SimRobotNode(context=graph.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()],
        cli_args=own_name(name) if name else None)
    return graph.add(node)


def _subscribe(probe, msg_type, topic, qos=10) -> Sink:
    sink = Sink()
    probe.create_subscription(msg_type, topic, sink, qos)
    return sink


def test_frames_arrive_with_configured_size_and_rate(ros_graph):
    _sim(ros_graph, rate_hz=10.0)
    probe = ros_graph.probe()
    external = _subscribe(probe, Image, 'camera/external/image_raw', qos_profile_sensor_data)
    wrist = _subscribe(probe, Image, 'camera/wrist/image_raw', qos_profile_sensor_data)
    assert ros_graph.wait_for(lambda: external.count() >= 3 and wrist.count() >= 3)
    # The node's period, from its own stamps: the median of 20 gaps. A stall of the process
    # on a loaded 2-core machine (a spell of 2 frames in 2 s was seen) or a dropped frame
    # lengthens a gap or two, and the test's receive times lag by the stall, but most gaps
    # stay one period; 5 Hz or 20 Hz fall outside the bounds. A stall lasting most of a window
    # (medians of 0.17 s were seen on a fresh-clone `make test`, 2026-12-04 and 12-06; their
    # cause, the test graph's multi-threaded executor starving the sim thread, is gone: see
    # conftest.RosGraph) is measured again, up to three windows: one steady window says the rate.
    medians = []
    for _ in range(3):
        start = external.count()
        assert ros_graph.wait_for(lambda: external.count() >= start + 21, timeout=30.0)
        gaps = np.diff([stamp_s(m) for m in external.messages[start:start + 21]])
        assert np.all(gaps > 0), 'frames out of order or stamped twice'
        medians.append(float(np.median(gaps)))
        if 0.08 <= medians[-1] <= 0.125:
            break
    else:
        pytest.fail(f'no window at 10 Hz; median gap of each window [s]: {medians}')
    for msg in (external.last(), wrist.last()):
        assert (msg.width, msg.height, msg.encoding, msg.step) == (64, 48, 'rgb8', 64 * 3)
        assert np.frombuffer(msg.data, np.uint8).mean() > 5, 'black frame'
    assert external.last().header.frame_id == 'external_camera'


def test_command_moves_the_arm_and_reset_restores_it(ros_graph):
    # One tick per command: in 'realtime' mode the arm keeps settling after a reset (about
    # 0.018 rad a tick for the first ticks), so two readings match only at the same tick, which
    # a probe cannot tell (failed on a fresh clone, 2026-12-03). Nothing moves between commands.
    _sim(ros_graph, fixed_reset=True, step_mode='on_command')
    probe = ros_graph.probe()
    joints = _subscribe(probe, JointState, 'joint_states')
    commands = probe.create_publisher(Float64MultiArray, 'forward_command_controller/commands', 10)
    reset = probe.create_client(Trigger, 'sim_robot_node/reset')

    def reset_and_read() -> np.ndarray:
        before = joints.count()
        response = ros_graph.call(reset, Trigger.Request())
        assert response.success, response.message
        assert ros_graph.wait_for(lambda: joints.count() > before)
        return np.array(joints.last().position)
    initial = reset_and_read()

    def moved() -> float:
        return float(np.abs(np.array(joints.last().position) - initial).max())
    # Commands at 10 Hz until the arm has moved 2 cm in joint space (a loaded machine delivers
    # them late), then none until every one sent has stepped (a second without a new joint
    # state): none may be in flight when the reset comes.
    deadline = time.monotonic() + 15.0
    while moved() <= 0.02 and time.monotonic() < deadline:
        commands.publish(Float64MultiArray(data=[0.0, -1.0, 1.0, 0.0]))
        time.sleep(0.1)
    assert moved() > 0.02, 'the arm did not move'
    counts = [joints.count()]

    def settled() -> bool:
        counts.append(joints.count())
        return len(counts) > 10 and counts[-1] == counts[-11]
    assert ros_graph.wait_for(settled, timeout=10.0, interval=0.1)  # 1 s without a new one
    np.testing.assert_allclose(reset_and_read(), initial, atol=1e-9)


def test_in_realtime_the_fingers_keep_the_last_command_between_commands(ros_graph):
    """A tick with no new command holds the gripper as a driver does.

    It sent the fingers 0 (half-closed) before: an object the policy grasped at 10 Hz was
    loosened on every physics tick in between.
    """
    _sim(ros_graph, step_mode='realtime', rate_hz=20.0)
    probe = ros_graph.probe()
    joints = _subscribe(probe, JointState, 'joint_states')
    commands = probe.create_publisher(Float64MultiArray, 'forward_command_controller/commands', 10)
    assert ros_graph.wait_for(lambda: commands.get_subscription_count() > 0)

    def fingers_after(gripper: float) -> float:
        heard = joints.count()
        commands.publish(Float64MultiArray(data=[0.0, 0.0, 0.0, gripper]))
        # 30 ticks with no command, counted (a starved simulator ticks fewer in a fixed time)
        assert ros_graph.wait_for(lambda: joints.count() >= heard + 30, timeout=30.0)
        return float(np.abs(np.array(joints.last().position[7:9])).sum())
    opened, closed = fingers_after(-1.0), fingers_after(1.0)
    reopened = fingers_after(-1.0)
    assert abs(closed - opened) > 0.02, (opened, closed)
    assert abs(reopened - opened) < 0.005, (opened, reopened)


def _position(pose: PoseStamped) -> np.ndarray:
    p = pose.pose.position
    return np.array([p.x, p.y, p.z])


def _settled(graph, poses: Sink, ticks: int = 10) -> np.ndarray:
    """The hand's position once ``ticks`` more poses came (a starved simulator ticks late)."""
    seen = poses.count()
    assert graph.wait_for(lambda: poses.count() >= seen + ticks, timeout=30.0)
    return _position(poses.last())


def _commanded_in_realtime(graph, kind, topic: str, **params):
    """A realtime sim, a probe's publisher on ``topic`` and poses: (poses, publisher, start)."""
    _sim(graph, step_mode='realtime', **params)
    probe = graph.probe()
    poses = _subscribe(probe, PoseStamped, 'ee_pose')
    publisher = probe.create_publisher(kind, topic, 10)
    assert graph.wait_for(lambda: publisher.get_subscription_count() > 0 and poses.count())
    return poses, publisher, _settled(graph, poses)


def test_in_realtime_a_twist_is_a_velocity_kept_until_its_timeout(ros_graph):
    """One twist moves the arm for ``command_timeout_s``, as MoveIt Servo's does, then it holds.

    It was acted on for one tick: twists at 10 Hz against ticks at 40 Hz moved the arm at a
    quarter of the asked speed.
    """
    poses, twists, start = _commanded_in_realtime(
        ros_graph, TwistStamped, 'servo_node/delta_twist_cmds', rate_hz=40.0, action_repeat=2,
        command_timeout_s=0.5)
    twist = TwistStamped()
    twist.header.frame_id, twist.twist.linear.y = 'world', 0.04   # 1 mm a tick
    twists.publish(twist)
    time.sleep(1.0)                                     # twice the timeout
    moved = _settled(ros_graph, poses)
    assert moved[1] - start[1] > 0.006, f'one twist moved the hand {moved - start} m'
    held = _settled(ros_graph, poses, ticks=20)
    assert np.abs(held - moved).max() < 0.002, 'the arm ran on past the timeout'


def test_a_twist_that_waited_past_its_timeout_is_still_acted_on_once(ros_graph):
    """Its age was checked before its first tick: at 5 Hz one twist in four never moved."""
    node = _sim(ros_graph, step_mode='realtime', command_timeout_s=0.0)
    waited = ('twist', np.array([0.5, 0.0, 0.0, 0.0]), time.monotonic() - 1.0)
    action, kept = node._action(None, waited, new=True)
    assert action[0] == 0.5 and kept is not None
    action, kept = node._action(None, kept, new=False)   # the next tick: timed out
    assert not action[:3].any() and kept is None


def test_in_realtime_a_target_pose_is_tracked_until_reached(ros_graph):
    """A target further than one tick can go is reached over several ticks (it went one)."""
    poses, targets, start = _commanded_in_realtime(   # 1 cm a tick
        ros_graph, PoseStamped, 'target_pose', rate_hz=80.0, action_repeat=1)
    target = PoseStamped()
    target.header.frame_id = 'world'
    target.pose.position.x, target.pose.position.y, target.pose.position.z = start + [0, 0, 0.06]
    target.pose.orientation.w = 1.0
    targets.publish(target)
    assert ros_graph.wait_for(
        lambda: abs(_position(poses.last())[2] - start[2] - 0.06) < 0.005, timeout=20.0), (
        f'the hand went {_position(poses.last()) - start} m of 0.06 up')


def test_a_hold_at_the_measured_pose_does_not_move_the_arm(ros_graph):
    """A target pose is where the hand should be, in ee_pose's frame.

    Read as the mocap's set point, which sits a few millimetres from the hand, every hold at
    the measured pose moved the arm by that offset: 2.5 cm in 400 ticks.
    """
    _sim(ros_graph, step_mode='on_command')
    probe = ros_graph.probe()
    poses = _subscribe(probe, PoseStamped, 'ee_pose')
    targets = probe.create_publisher(PoseStamped, 'target_pose', 10)
    commands = probe.create_publisher(Float64MultiArray, 'forward_command_controller/commands', 10)
    assert ros_graph.wait_for(lambda: targets.get_subscription_count() > 0
                              and commands.get_subscription_count() > 0)
    time.sleep(0.3)
    for _ in range(60):   # the hand settles below its mocap after start-up: 2.8 mm in 150
        seen = poses.count()
        commands.publish(Float64MultiArray(data=[0.0, 0.0, 0.0, 0.0]))
        assert ros_graph.wait_for(lambda: poses.count() > seen)
    start = _position(poses.last())
    for _ in range(150):
        seen = poses.count()
        hold = PoseStamped()
        hold.header.frame_id, hold.pose = 'world', poses.last().pose
        targets.publish(hold)
        assert ros_graph.wait_for(lambda: poses.count() > seen), 'no step'
    drift = np.abs(_position(poses.last()) - start).max()
    assert drift < 0.001, f'150 holds moved the hand {drift * 1e3:.1f} mm'


def test_a_reset_opens_the_fingers_as_at_start_up(ros_graph):
    """The last episode's gripper command is not the next one's: it closed the new fingers."""
    _sim(ros_graph, step_mode='on_command', fixed_reset=True)
    probe = ros_graph.probe()
    joints = _subscribe(probe, JointState, 'joint_states')
    commands = probe.create_publisher(Float64MultiArray, 'forward_command_controller/commands', 10)
    twists = probe.create_publisher(TwistStamped, 'servo_node/delta_twist_cmds', 10)
    reset = probe.create_client(Trigger, 'sim_robot_node/reset')
    assert ros_graph.wait_for(lambda: commands.get_subscription_count() > 0
                              and twists.get_subscription_count() > 0)
    time.sleep(0.3)

    def fingers_after(publisher, message, ticks: int = 15) -> float:
        for _ in range(ticks):
            seen = joints.count()
            publisher.publish(message)
            assert ros_graph.wait_for(lambda: joints.count() > seen), 'no step'
        return float(np.abs(np.array(joints.last().position[7:9])).sum())
    still = TwistStamped()
    still.header.frame_id = 'world'
    fresh = fingers_after(twists, still)                # no gripper command yet
    closed = fingers_after(commands, Float64MultiArray(data=[0.0, 0.0, 0.0, 1.0]))
    assert abs(closed - fresh) > 0.01, (fresh, closed)
    assert ros_graph.call(reset, Trigger.Request()).success
    after_reset = fingers_after(twists, still)
    assert abs(after_reset - fresh) < 0.003, (fresh, closed, after_reset)


def test_past_max_episode_steps_the_arm_steps_on_and_the_node_says_so(ros_graph):
    """A live robot does not freeze at a count: it did, commands dropped, nothing said."""
    _sim(ros_graph, 'sim_past_the_end', step_mode='on_command', max_episode_steps=3)
    probe = ros_graph.probe()
    joints = _subscribe(probe, JointState, 'joint_states')
    logs = _subscribe(probe, Log, '/rosout', ROSOUT_QOS)
    statuses = _subscribe(probe, DiagnosticArray, '/diagnostics')
    commands = probe.create_publisher(Float64MultiArray, 'forward_command_controller/commands', 10)
    assert ros_graph.wait_for(lambda: commands.get_subscription_count() > 0)
    time.sleep(0.3)
    for _ in range(4):
        seen = joints.count()
        commands.publish(Float64MultiArray(data=[0.0, -1.0, 1.0, 0.0]))
        assert ros_graph.wait_for(lambda: joints.count() > seen), 'no step'
    before = np.array(joints.last().position)
    for _ in range(3):
        seen = joints.count()
        commands.publish(Float64MultiArray(data=[0.0, -1.0, 1.0, 0.0]))
        assert ros_graph.wait_for(lambda: joints.count() > seen), 'no step past the end'
    assert np.abs(np.array(joints.last().position) - before).max() > 0.01, 'the arm froze'
    assert ros_graph.wait_for(lambda: any(
        'past max_episode_steps' in m.msg and m.level == Log.WARN for m in list(logs.messages)))
    assert ros_graph.wait_for(lambda: any(
        s.level == DiagnosticStatus.WARN and 'past max_episode_steps' in s.message
        for array in list(statuses.messages) for s in array.status), timeout=5.0)


def test_malformed_commands_are_rejected_and_logged_while_the_node_keeps_running(ros_graph):
    _sim(ros_graph, 'sim_malformed_commands', step_mode='on_command')
    probe = ros_graph.probe()
    truth = _subscribe(probe, TaskState, 'ground_truth')
    logs = _subscribe(probe, Log, '/rosout', 100)
    commands = probe.create_publisher(Float64MultiArray, 'forward_command_controller/commands', 10)
    assert ros_graph.wait_for(lambda: commands.get_subscription_count() > 0)
    time.sleep(0.3)
    before = truth.count()
    commands.publish(Float64MultiArray(data=[0.1, 0.2]))             # wrong length
    commands.publish(Float64MultiArray(data=[float('nan'), 0, 0, 0]))  # not finite
    assert ros_graph.wait_for(lambda: sum(
        'rejected commands' in m.msg and m.level >= Log.ERROR for m in list(logs.messages)) >= 1)
    time.sleep(0.3)
    assert truth.count() == before, 'a malformed command stepped the simulator'
    commands.publish(Float64MultiArray(data=[0.0, 0.0, 0.0, 0.0]))
    assert ros_graph.wait_for(lambda: truth.count() > before), 'node stopped serving'


@pytest.mark.parametrize('task', ['reach-v3', 'drawer-close-v3', 'button-press-v3'])
def test_scripted_expert_through_the_topics_succeeds(ros_graph, task):
    from metaworld.policies import ENV_POLICY_MAP
    _sim(ros_graph, task=task, step_mode='on_command', image_width=32, image_height=32)
    probe = ros_graph.probe()
    truth = _subscribe(probe, TaskState, 'ground_truth')
    commands = probe.create_publisher(Float64MultiArray, 'forward_command_controller/commands', 10)
    assert ros_graph.wait_for(lambda: commands.get_subscription_count() > 0)
    time.sleep(0.2)
    commands.publish(Float64MultiArray(data=[0.0, 0.0, 0.0, 0.0]))  # one step: a first state
    assert ros_graph.wait_for(lambda: truth.count() >= 1)
    policy = ENV_POLICY_MAP[task]()
    for _ in range(300):
        state = truth.last()
        if state.success:
            break
        seen = truth.count()
        action = np.clip(policy.get_action(np.array(state.state)), -1.0, 1.0)
        commands.publish(Float64MultiArray(data=action.tolist()))
        assert ros_graph.wait_for(lambda: truth.count() > seen, timeout=5.0), 'no step'
    progress = truth.last().progress
    assert truth.last().success, f'{task}: expert did not succeed, progress {progress}'
    assert truth.last().progress == pytest.approx(100.0)


def test_the_simulated_human_drives_its_episodes_through_joy_then_hands_back(ros_graph):
    """expert_joy_episodes=1: the expert picks and places in the first training episode.

    A probe plays the learner's part: it announces episodes on ``episode`` (an evaluation
    first, left alone), follows the Joy messages (axes x 1.4, the gripper by the toggle), and
    the next training episode gets one release message, then nothing.
    """
    _sim(ros_graph, task='pick-place-v3', step_mode='on_command', image_width=32,
         image_height=32, expert_joy_episodes=1)
    probe = ros_graph.probe()
    joy = _subscribe(probe, Joy, 'joy')
    truth = _subscribe(probe, TaskState, 'ground_truth')
    commands = probe.create_publisher(Float64MultiArray, 'forward_command_controller/commands', 10)
    episodes = probe.create_publisher(Episode, 'episode', 10)
    reset = probe.create_client(Trigger, 'sim_robot_node/reset')
    assert ros_graph.wait_for(lambda: commands.get_subscription_count() > 0
                              and episodes.get_subscription_count() > 0)

    def start(name: str, evaluation: bool = False) -> None:
        episodes.publish(Episode(episode_id=name, evaluation=evaluation))
        time.sleep(0.3)   # the sim has it before the reset's first frame
        assert ros_graph.call(reset, Trigger.Request()).success

    def step() -> None:
        seen = truth.count()
        commands.publish(Float64MultiArray(data=[0.0, 0.0, 0.0, 0.0]))
        assert ros_graph.wait_for(lambda: truth.count() > seen)

    start('episode-eval', evaluation=True)
    for _ in range(3):
        step()
    time.sleep(0.3)
    assert joy.count() == 0, 'Joy in an evaluation episode'
    start('episode-train-1')
    assert ros_graph.wait_for(lambda: joy.count() >= 1)
    gripper, presses = 0.0, []
    for _ in range(300):
        if truth.last().success:
            break
        message, seen = joy.last(), joy.count()
        assert list(message.buttons[:1]) == [1] and len(message.axes) == 6
        assert all(-1.0 <= a <= 1.0 for a in message.axes)
        presses.append(message.buttons[1])
        if message.buttons[1]:
            gripper = -1.0 if gripper > 0 else 1.0
        commands.publish(Float64MultiArray(
            data=[*(1.4 * np.asarray(message.axes[:3])).clip(-1, 1), gripper]))
        assert ros_graph.wait_for(lambda: joy.count() > seen, timeout=5.0), 'no step'
    assert truth.last().success, f'the simulated human failed: {truth.last().progress:.0f} %'
    assert sum(presses) >= 1, 'the gripper never closed on the puck'
    assert not any(a and b for a, b in zip(presses, presses[1:])), 'toggle pressed twice running'
    before = joy.count()
    start('episode-train-2')
    assert ros_graph.wait_for(lambda: joy.count() == before + 1)
    assert list(joy.last().buttons) == [0, 0] and not any(joy.last().axes)   # handed back
    step()
    time.sleep(0.3)
    assert joy.count() == before + 1, 'Joy after its episodes'


def _make_robot_fail(monkeypatch, method: str, fails) -> None:
    """``MetaWorldRobot.<method>`` raises on the calls ``fails(n)`` picks (n counts from 1)."""
    from sole_r1_ros.sim import MetaWorldRobot
    original, calls = getattr(MetaWorldRobot, method), []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if fails(len(calls)):
            raise RuntimeError(f'MuJoCo could not {method}')
        return original(self, *args, **kwargs)
    monkeypatch.setattr(MetaWorldRobot, method, failing)


def test_an_exception_in_the_physics_thread_is_reported_and_the_simulator_goes_on(
        ros_graph, monkeypatch):
    _make_robot_fail(monkeypatch, 'step', lambda n: n == 5)
    node = _sim(ros_graph, rate_hz=20.0)
    poses = _subscribe(ros_graph.probe(), JointState, 'joint_states')
    assert ros_graph.wait_for(lambda: node.firewall.rejected.get('physics', 0) == 1)
    assert ros_graph.wait_for(lambda: node._episode == 1), (
        'the new scene went on under the old episode number')
    seen = poses.count()
    assert ros_graph.wait_for(lambda: poses.count() > seen + 5), 'the simulator stopped'
    reset = ros_graph.probe('resetter').create_client(Trigger, 'sim_robot_node/reset')
    assert ros_graph.call(reset, Trigger.Request()).success


def test_a_reset_that_raises_is_answered_after_the_recovery_not_left_waiting(
        ros_graph, monkeypatch):
    _make_robot_fail(monkeypatch, 'reset', lambda n: n == 2)   # the first is the start-up's
    node = _sim(ros_graph, rate_hz=20.0)
    reset = ros_graph.probe('resetter').create_client(Trigger, 'sim_robot_node/reset')
    asked = time.monotonic()
    response = ros_graph.call(reset, Trigger.Request())
    assert response.success and time.monotonic() - asked < 5.0, response.message
    assert node.firewall.rejected.get('physics', 0) == 1
    poses = _subscribe(ros_graph.probe(), JointState, 'joint_states')
    assert ros_graph.wait_for(lambda: poses.count() > 5), 'the simulator stopped'


def test_a_simulator_that_cannot_reset_stops_loudly_and_answers_at_once(
        ros_graph, monkeypatch):
    _make_robot_fail(monkeypatch, 'reset', lambda n: n >= 2)   # every reset after start-up
    _sim(ros_graph, 'sim_cannot_reset', rate_hz=20.0)
    logs = _subscribe(ros_graph.probe(), Log, '/rosout', ROSOUT_QOS)   # late joiners get it too
    reset = ros_graph.probe('resetter').create_client(Trigger, 'sim_cannot_reset/reset')
    asked = time.monotonic()
    response = ros_graph.call(reset, Trigger.Request())
    assert not response.success and 'stopped' in response.message
    assert time.monotonic() - asked < 5.0, 'the reset request waited for its 30 s timeout'
    assert ros_graph.wait_for(lambda: any(
        'the simulator stops' in m.msg and m.level >= Log.ERROR for m in list(logs.messages)))
    response = ros_graph.call(reset, Trigger.Request())   # later requests too
    assert not response.success and 'stopped' in response.message
