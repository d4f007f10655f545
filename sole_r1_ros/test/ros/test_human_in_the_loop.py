"""A person steps in over DDS.

A Joy dead-man takes over within a control period and is clamped like the policy, release hands
back, intervened steps are flagged, labels land in the episode log and the bag, and a malformed
Joy message makes the robot hold.
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('torch')
pytest.importorskip('rosbags')

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Joy  # noqa: E402

from fakes import FakeArm, JOINTS, Sink  # noqa: E402
from sole_r1_interfaces.msg import EpisodeResult  # noqa: E402
from sole_r1_interfaces.srv import LabelEpisode  # noqa: E402
from sole_r1_ros.nodes.learner_node import LearnerNode  # noqa: E402
from sole_r1_ros.nodes.recorder_node import RecorderNode  # noqa: E402

PERIOD_S = 0.05
COMMANDS = 'forward_command_controller/commands'


def _learner(graph, run_dir, **params) -> LearnerNode:
    values = {'run_dir': str(run_dir), 'autostart': False, 'control_rate_hz': 1 / PERIOD_S,
              'joint_names': JOINTS, 'teleop': True, 'reset_service': '',
              'command.frame_id': 'world', 'agent.seed_steps': 10**6,   # random policy
              'episode_length': 400, 'teleop.timeout_s': 0.5,
              'wait_for_reward': False}   # no reward node in these graphs
    values.update(params)
    node = graph.add(LearnerNode(context=graph.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in values.items()]))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.trigger_activate()
    return node


def _joy(axes, buttons) -> Joy:
    msg = Joy(axes=[float(a) for a in axes], buttons=list(buttons))
    return msg


def test_the_dead_man_hands_control_to_a_person_and_back(ros_graph, tmp_path):
    arm = ros_graph.add(FakeArm(ros_graph.context, rate_hz=1 / PERIOD_S))
    arm.position = np.array([0.0, 0.6, 0.05])           # on the box floor
    from diagnostic_msgs.msg import DiagnosticArray
    node = _learner(ros_graph, tmp_path)
    probe = ros_graph.probe()
    statuses = Sink()
    probe.create_subscription(DiagnosticArray, '/diagnostics', statuses, 10)
    joy = probe.create_publisher(Joy, 'joy', 10)
    sink = arm.commands[COMMANDS]
    assert ros_graph.wait_for(lambda: len(sink) > 10, timeout=20.0)
    assert ros_graph.wait_for(lambda: joy.get_subscription_count() > 0)
    name = node.get_fully_qualified_name()

    def said_unheard(since: float = 0.0) -> list:
        return [('no Joy message heard' in status.message)
                for array, t in zip(list(statuses.messages), list(statuses.times)) if t > since
                for status in array.status if status.name == name]
    # before any Joy message, /diagnostics says a person could not take over
    assert ros_graph.wait_for(lambda: any(said_unheard()), timeout=5.0)

    pushed = time.monotonic()            # +x and down, into the floor: z must be clamped
    push = _joy([0.5, 0.0, -0.5, 0.0, 0.0, 0.0], [1, 0])

    def takeovers() -> list:
        return [t for m, t in zip(sink.messages, sink.times)
                if t > pushed and np.allclose(m.data[:3], [0.7, 0.0, 0.0], atol=1e-6)]

    def pushing_until_taken_over() -> bool:
        joy.publish(push)
        return bool(takeovers())
    # The human's input is read at every step after the policy's inference (test_rl_loop);
    # here, over DDS on a shared 2-core machine, only "promptly" is checked, not the latency:
    # a first run after set-up once stalled the loop past a fixed 0.5 s of pushing.
    assert ros_graph.wait_for(pushing_until_taken_over, timeout=5.0, interval=PERIOD_S / 2)
    for _ in range(20):                  # the person keeps pushing for a while
        joy.publish(push)
        time.sleep(PERIOD_S / 2)
    assert ros_graph.wait_for(lambda: node.learner.replay.stats()['intervened'] > 5)
    heard = time.monotonic()
    assert ros_graph.wait_for(lambda: said_unheard(heard), timeout=5.0)
    assert not any(said_unheard(heard))
    # the dead-man still held and the driver gone quiet: the arm holds, and it is said
    quiet = time.monotonic()
    assert ros_graph.wait_for(lambda: any(
        'holding for the human: no Joy message' in status.message
        for array, t in zip(list(statuses.messages), list(statuses.times)) if t > quiet
        for status in array.status if status.name == name), timeout=5.0)
    # from the takeover on, only the human's (or a hold, should a Joy message come late)
    human = [m.data for m in sink.since(takeovers()[0])]
    assert human and all(np.allclose(d[:3], [0.7, 0.0, 0.0], atol=1e-6) or not any(d[:3])
                         for d in human), human

    joy.publish(_joy([0.0] * 6, [0, 0]))
    # A few commands after the node has read the release, however long a loaded machine stalls
    # the loop or the release's delivery (a fixed 0.5 s once held a single command, and one
    # command cannot show the policy moving; counted from the test's publish, five commands
    # once all came before the node read it, fresh-clone make test at dc74feb).
    assert ros_graph.wait_for(lambda: not node._robot.human.engaged, timeout=10.0)
    back = time.monotonic() + 2 * PERIOD_S
    assert ros_graph.wait_for(lambda: len(sink.since(back)) >= 5, timeout=10.0)
    policy = [m.data for m in sink.since(back)]
    assert policy and not all(np.allclose(d[:3], policy[0][:3]) for d in policy)


@pytest.mark.parametrize('by', ['service', 'button'])
def test_a_label_ends_the_episode_in_the_log_and_the_bag(ros_graph, tmp_path, by):
    ros_graph.add(FakeArm(ros_graph.context, rate_hz=1 / PERIOD_S))
    recorder = ros_graph.add(RecorderNode(context=ros_graph.context, parameter_overrides=[
        Parameter('bag_path', value=str(tmp_path / 'bag'))]))
    written, write = [], recorder.writer.write

    def spy(topic, *args):   # the recorder takes the results apart from this test's probe
        write(topic, *args)
        written.append(topic)
    recorder.writer.write = spy
    node = _learner(ros_graph, tmp_path / 'run',
                    **{'teleop.success_button': 1, 'teleop.gripper_toggle_button': -1})
    probe = ros_graph.probe()
    results = Sink()
    probe.create_subscription(EpisodeResult, 'episode_result', results, 10)
    label = probe.create_client(LabelEpisode, 'learner_node/label_episode')
    joy = probe.create_publisher(Joy, 'joy', 10)
    assert ros_graph.wait_for(lambda: node.loop.episode_id is not None, timeout=20.0)
    if by == 'service':
        assert ros_graph.call(label, LabelEpisode.Request(label='success')).success
        assert not ros_graph.call(label, LabelEpisode.Request(label='great')).success
    else:                                # press and release the success button
        assert ros_graph.wait_for(lambda: joy.get_subscription_count() > 0)
        for buttons in ([0, 0], [0, 1], [0, 0]):
            joy.publish(_joy([0.0] * 6, buttons))
            time.sleep(PERIOD_S)
    assert ros_graph.wait_for(lambda: any(r.label == 'success' for r in results.messages))
    seen = len(results)                  # the labelled one among them: the bag has as many
    assert ros_graph.wait_for(lambda: written.count('/episode_result') >= seen, timeout=10.0)
    # Finish the bag, not the node: a node destroyed while the executor spins may still be in
    # its wait set (InvalidHandle in the spinning thread, one fresh-clone make test); the
    # graph destroys it at teardown, and what it receives until then is dropped.
    recorder.writer.close()
    from rosbags.highlevel import AnyReader

    from sole_r1_ros.recording import make_typestore
    with AnyReader([tmp_path / 'bag'], default_typestore=make_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == '/episode_result']
        labels = [reader.deserialize(raw, c.msgtype).label
                  for c, _, raw in reader.messages(connections=connections)]
    assert 'success' in labels


@pytest.mark.parametrize('axes, buttons', [
    ([0.5, 0.0], [1, 0]),                                  # missing axes
    ([float('nan'), 0, 0, 0, 0, 0], [1, 0]),               # NaN
    ([0.5, 0, 0, 0, 0, 0], [1])])                          # buttons missing
def test_a_malformed_joy_message_is_rejected_and_the_robot_holds(
        ros_graph, tmp_path, axes, buttons):
    arm = ros_graph.add(FakeArm(ros_graph.context, rate_hz=1 / PERIOD_S))
    # The hold lasts teleop.invalid_hold_s after the message. Long, so that a loaded 2-core machine
    # (3 commands not seen within 2 s once, fresh-clone make test, 2026-12-05) still shows
    # several held commands inside it; the waits below return as soon as they are seen.
    hold_s = 8.0
    node = _learner(ros_graph, tmp_path, **{'teleop.invalid_hold_s': hold_s})
    probe = ros_graph.probe()
    joy = probe.create_publisher(Joy, 'joy', 10)
    sink = arm.commands[COMMANDS]
    assert ros_graph.wait_for(lambda: len(sink) > 10, timeout=20.0)
    assert ros_graph.wait_for(lambda: joy.get_subscription_count() > 0)
    sent = time.monotonic()
    joy.publish(_joy(axes, buttons))
    assert ros_graph.wait_for(lambda: node.firewall.rejected.get('joy', 0) == 1, timeout=5.0)
    rejected = time.monotonic()          # the message has arrived: the hold is in force
    assert ros_graph.wait_for(lambda: len(sink.since(rejected + 2 * PERIOD_S)) >= 3,
                              timeout=hold_s / 2)
    # a command decided before the message arrived may still be on its way; from the first
    # hold on, nothing moves until the hold ends
    first = next(t for m, t in zip(sink.messages, sink.times)
                 if t >= rejected and not any(m.data[:3]))
    assert first - rejected < hold_s / 2
    held = [m.data for m, t in zip(sink.messages, sink.times) if first <= t < sent + hold_s]
    assert held and all(not any(d[:3]) for d in held), 'moved on a malformed Joy message'
    assert node.firewall.rejected.get('joy', 0) == 1
