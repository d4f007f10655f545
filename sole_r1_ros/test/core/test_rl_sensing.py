"""The newest whole observation from sensors on their own schedules.

Pairing views of one moment, freshness, and rejecting what cannot be used (never raising).
"""
import threading

import numpy as np
import pytest

from sole_r1_ros.rl import SensingConfig, Sensors

JOINTS = ('a', 'b')
MS = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _frame(value: int = 1) -> np.ndarray:
    return np.full((8, 8, 3), value, np.uint8)


def _sensors(**config) -> tuple[Sensors, Clock]:
    clock = Clock()
    config = SensingConfig(**{'joint_names': JOINTS, 'proprio_wait_s': 0.0, **config})
    return Sensors(config, clock=clock), clock


def _feed(sensors: Sensors, stamp_ms: int, views=('external', 'wrist')) -> None:
    assert sensors.add_joints(stamp_ms * MS, ['b', 'a', 'c'], [2.0, 1.0, 9.0], []) is None
    assert sensors.add_pose(stamp_ms * MS, [0.1, 0.6, 0.2], [0.0, 0.0, 0.0, 1.0]) is None
    for view in views:
        assert sensors.add_frame(view, stamp_ms * MS, _frame(stamp_ms % 250)) is None


def test_a_whole_moment_gives_state_views_joints_and_pose():
    sensors, _ = _sensors()
    _feed(sensors, 10)
    assert sensors.wait_ready(0.0)
    sensed = sensors.take()
    assert sensed.stamp_ns == 10 * MS and set(sensed.views) == {'external', 'wrist'}
    # joint positions in joint_names order, velocities (missing: 0), then the pose
    assert sensed.state.tolist() == pytest.approx([1.0, 2.0, 0.0, 0.0, 0.1, 0.6, 0.2, 0, 0, 0, 1])
    assert sensed.state.dtype == np.float32 and sensed.joint_positions.tolist() == [1.0, 2.0]
    assert sensors.config.state_dim() == sensed.state.size
    assert sensors.take() is None and not sensors.wait_ready(0.0)   # taken: wait for the next


def test_the_poses_arrival_is_on_the_monotonic_clock_for_the_command_to_age_it():
    """The pose's age was taken with the moment: the policy's inference went uncounted."""
    import time
    sensors, clock = _sensors()
    _feed(sensors, 10)
    clock.now += 0.3                     # taken 0.3 s after the pose came, on the sensors' clock
    sensed = sensors.take()
    assert sensed.pose_stamp_ns == 10 * MS
    assert time.monotonic() - sensed.pose_arrived_s == pytest.approx(0.3, abs=0.05)


def test_a_quaternion_whose_sign_flips_gives_the_policy_the_same_numbers():
    """A pose source keeping w >= 0 flips the sign near a gripper pointing down (w near 0).

    The state's four numbers flipped with no motion.
    """
    sensors, _ = _sensors()
    tilted, other_way = [0.99995, 0.0, 0.0, 0.01], [0.99995, 0.0, 0.0, -0.01]   # (x, y, z, w)
    # as a source keeping w >= 0 sends them; the first the other way (any sign may come first)
    sent = [np.negative(tilted), np.negative(other_way), tilted]
    taken = []
    for stamp_ms, quaternion in zip((10, 20, 30), sent):
        sensors.add_joints(stamp_ms * MS, ['b', 'a', 'c'], [2.0, 1.0, 9.0], [])
        assert sensors.add_pose(stamp_ms * MS, [0.1, 0.6, 0.2], quaternion) is None
        for view in ('external', 'wrist'):
            sensors.add_frame(view, stamp_ms * MS, _frame())
        taken.append(sensors.take().state[-4:].tolist())
    # the first made canonical (its largest component positive), the others beside it
    assert taken == [pytest.approx(tilted), pytest.approx(other_way), pytest.approx(tilted)]


def test_views_of_different_moments_are_not_paired():
    sensors, _ = _sensors(max_skew_s=0.005)
    _feed(sensors, 10, views=('external',))
    sensors.add_frame('wrist', 30 * MS, _frame())
    assert not sensors.wait_ready(0.0) and sensors.take() is None
    assert '20 ms apart, more than max_skew_s (5 ms)' in sensors.unpaired_reason()
    sensors.add_frame('external', 31 * MS, _frame())
    assert sensors.take().stamp_ns == 31 * MS and sensors.unpaired_reason() == ''


def test_cameras_not_synced_in_hardware_pair_at_10_hz_by_default():
    sensors, _ = _sensors()                      # wrist frames 25 ms after the external ones
    for tick in range(5):
        _feed(sensors, 100 * tick + 10, views=('external',))
        sensors.add_frame('wrist', (100 * tick + 35) * MS, _frame())
        assert sensors.take() is not None


def test_a_camera_delivered_later_than_the_other_still_makes_moments():
    """A wrist camera 110 ms later than the external one (USB beside GigE) at 30 Hz.

    Only the newest frame of each was kept, and the newest frames were never within
    max_skew_s: 0.1 moments a second, the robot held for good.
    """
    sensors, clock = _sensors(max_skew_s=0.02, camera_timeout_s=1.0)
    arrivals = sorted([(t + 10, 'external', t) for t in range(0, 3000, 33)]
                      + [(t + 120, 'wrist', t) for t in range(0, 3000, 33)])
    taken = []
    for arrived_ms, view, stamp_ms in arrivals:
        clock.now = 100.0 + arrived_ms / 1000
        assert sensors.add_joints(arrived_ms * MS, ['a', 'b'], [0.0, 0.0], []) is None
        assert sensors.add_pose(arrived_ms * MS, [0.1, 0.6, 0.2], [0, 0, 0, 1.0]) is None
        sensors.add_frame(view, stamp_ms * MS, _frame(stamp_ms % 250))
        if view == 'wrist' and (sensed := sensors.take()) is not None:
            taken.append(sensed.stamp_ns // MS)
            # both views of the moment: the wrist frame of the same stamp
            assert sensed.views['wrist'][0, 0, 0] == sensed.views['external'][0, 0, 0]
    assert len(taken) > 80 and taken == sorted(taken)


def test_a_simulators_time_reset_does_not_hold_the_robot_for_ever():
    sensors, _ = _sensors()
    _feed(sensors, 50_000)
    assert sensors.take() is not None
    sensors.clear_frames()                       # a new episode; the world's clock restarts
    _feed(sensors, 1_000)
    assert sensors.take() is not None


def test_stamps_that_go_back_in_the_middle_of_an_episode_are_followed_not_held_for_ever():
    """A simulator restarted under sim time, a looped bag: no frame was ever newer again.

    The arm held as long as the jump (hours), every input fresh, nothing said why.
    """
    sensors, _ = _sensors(camera_timeout_s=0.5)
    _feed(sensors, 3_600_000)
    assert sensors.take() is not None
    _feed(sensors, 3_599_800)                    # 0.2 s back: a late frame, not a jump
    assert not sensors.wait_ready(0.0) and sensors.take() is None
    _feed(sensors, 1_000)                        # an hour back, as every input says
    assert sensors.stale_reasons() == {}
    assert sensors.wait_ready(0.0) and sensors.take().stamp_ns == 1_000 * MS
    assert sensors.clock_jumps == 1
    _feed(sensors, 1_100)
    assert sensors.take().stamp_ns == 1_100 * MS and sensors.clock_jumps == 1


@pytest.mark.parametrize('source, timeout', [('camera/wrist', 'camera_timeout_s'),
                                             ('joint_states', 'joint_timeout_s'),
                                             ('ee_pose', 'pose_timeout_s')])
def test_anything_older_than_its_timeout_makes_the_robot_hold(source, timeout):
    sensors, clock = _sensors(**{timeout: 0.2})
    _feed(sensors, 10)
    clock.now += 0.1
    if source != 'camera/wrist':
        sensors.add_frame('wrist', 20 * MS, _frame())
    if source != 'joint_states':
        sensors.add_joints(20 * MS, list(JOINTS), [0.0, 0.0], [0.0, 0.0])
    if source != 'ee_pose':
        sensors.add_pose(20 * MS, [0, 0.6, 0.2], [0, 0, 0, 1])
    sensors.add_frame('external', 20 * MS, _frame())
    clock.now += 0.15
    assert sensors.stale_sources() == [source] and sensors.take() is None


def test_a_late_delivered_pose_is_stale_by_its_stamp_though_it_just_arrived():
    sensors, clock = _sensors(pose_timeout_s=0.2)
    _feed(sensors, 1000)
    clock.now += 0.5                                   # the pose publisher went quiet at 1.0 s
    sensors.add_joints(1500 * MS, list(JOINTS), [0.0, 0.0], [0.0, 0.0])
    for view in ('external', 'wrist'):
        sensors.add_frame(view, 1500 * MS, _frame())
    sensors.add_pose(1100 * MS, [0, 0.6, 0.2], [0, 0, 0, 1])   # ... and this one came late
    assert sensors.stale_sources() == ['ee_pose'] and sensors.take() is None
    assert sensors.stale_reasons()['ee_pose'].startswith('stamped 0.40 s before')
    sensors.add_pose(1450 * MS, [0, 0.6, 0.2], [0, 0, 0, 1])   # within the timeout: fresh
    assert sensors.stale_sources() == [] and sensors.take() is not None


def test_a_camera_buffering_old_frames_is_stale_against_the_joint_states():
    sensors, clock = _sensors(camera_timeout_s=0.3)
    _feed(sensors, 1000)
    clock.now += 0.1
    sensors.add_joints(2000 * MS, list(JOINTS), [0.0, 0.0], [0.0, 0.0])
    sensors.add_pose(2000 * MS, [0, 0.6, 0.2], [0, 0, 0, 1])
    for view in ('external', 'wrist'):
        sensors.add_frame(view, 1200 * MS, _frame())         # arriving now, 0.8 s old
    assert sensors.stale_sources() == ['camera/external', 'camera/wrist']
    assert 'joint_states' in sensors.stale_reasons()['camera/wrist']


def test_the_same_message_again_is_not_news():
    """A TF lookup returns the last transform again every period after its publisher died."""
    sensors, clock = _sensors(pose_timeout_s=0.2, camera_timeout_s=5.0, joint_timeout_s=5.0)
    _feed(sensors, 1000)
    for _ in range(5):
        clock.now += 0.1
        assert sensors.add_pose(1000 * MS, [0, 0.6, 0.2], [0, 0, 0, 1]) is None
    assert sensors.stale_reasons() == {'ee_pose': (
        'nothing new for 0.50 s, though messages keep coming: all stamped 1.000 s (a driver '
        'that does not stamp them, or a tf lookup whose publisher stopped)')}
    clock.now += 0.3                                  # and once they stop too
    assert sensors.stale_reasons() == {'ee_pose': 'nothing new for 0.80 s'}


def test_an_input_never_received_is_named():
    sensors, _ = _sensors()
    sensors.add_frame('external', 10 * MS, _frame())
    assert sensors.stale_reasons() == {'camera/wrist': 'never received',
                                       'joint_states': 'never received',
                                       'ee_pose': 'never received'}
    # an input whose every message is refused (here at the node's edge) says so, and why:
    # 'never received' sent a person looking for a robot that was up
    for _ in range(3):
        sensors.note_rejection('ee_pose', "end-effector pose in frame 'fr3_link0'")
    sensors.note_rejection('camera/wrist', 'unsupported image encoding')
    assert sensors.stale_reasons()['ee_pose'] == (
        "3 received, every one rejected: end-effector pose in frame 'fr3_link0'")
    assert sensors.stale_reasons()['camera/wrist'].startswith('1 received, every one')


@pytest.mark.parametrize('feed, source', [
    (lambda s: s.add_joints(0, ['a', 'b'], [1.0, float('nan')], []), 'joints'),
    (lambda s: s.add_joints(0, ['a'], [1.0], []), 'joints'),              # joint b missing
    (lambda s: s.add_joints(0, ['a', 'b'], [1.0], []), 'joints'),         # lengths differ
    (lambda s: s.add_joints(0, ['a', 'b'], ['x', 1.0], []), 'joints'),
    (lambda s: s.add_pose(0, [0, 0, float('inf')], [0, 0, 0, 1]), 'pose'),
    (lambda s: s.add_pose(0, [0, 0, 0.2], [0, 0, 0, 0.7]), 'pose'),       # not a unit quat
    (lambda s: s.add_pose(0, [0, 0], [0, 0, 0, 1]), 'pose'),
    (lambda s: s.add_frame('external', 0, np.zeros((4, 4), np.uint8)), 'external'),
    (lambda s: s.add_frame('external', 0, np.zeros((4, 4, 3), np.float32)), 'external'),
    (lambda s: s.add_sim_state(0, [float('nan')] * 3), 'sim_state'),
])
def test_unusable_input_is_rejected_with_a_reason_and_counted(feed, source):
    sensors, _ = _sensors()
    reason = feed(sensors)
    assert isinstance(reason, str) and reason
    assert sensors.rejected == {source: 1}


def test_a_rejected_pose_leaves_the_pose_stale():
    sensors, _ = _sensors()
    _feed(sensors, 10)
    sensors.take()
    sensors.add_pose(20 * MS, [0, 0.6, 0.2], [0.0, 0.0, 0.0, 2.0])
    _feed(sensors, 20, views=())
    assert sensors.add_pose(30 * MS, [0, 0.6, 0.2], [float('nan')] * 4) is not None
    assert 'ee_pose' not in sensors.stale_sources()   # the earlier valid pose still counts


def test_the_actor_waits_briefly_for_proprioception_of_the_same_moment():
    sensors, _ = _sensors(proprio_wait_s=1.0)
    _feed(sensors, 10)
    sensors.take()
    sensors.add_frame('external', 100 * MS, _frame())
    sensors.add_frame('wrist', 100 * MS, _frame())
    late = threading.Timer(0.05, lambda: (
        sensors.add_joints(100 * MS, list(JOINTS), [5.0, 6.0], [0.0, 0.0]),
        sensors.add_pose(100 * MS, [0, 0.6, 0.2], [0, 0, 0, 1])))
    late.start()
    assert sensors.wait_ready(1.0)
    assert sensors.take().state[:2].tolist() == [5.0, 6.0]
    late.join()


def test_the_privileged_baseline_pairs_the_simulator_state_with_its_frame():
    sensors, _ = _sensors(observation='sim_state_privileged', use_ee_pose=False,
                          views=('external',))
    sensors.add_frame('external', 10 * MS, _frame())
    assert not sensors.wait_ready(0.0)                 # the state of that moment is missing
    sensors.add_sim_state(10 * MS, np.arange(39.0))
    assert sensors.take().state.tolist() == list(range(39))
    assert sensors.config.state_dim(39) == 39


def test_frames_from_before_an_episode_start_are_forgotten():
    sensors, _ = _sensors()
    _feed(sensors, 10)
    sensors.clear_frames()
    assert sensors.take() is None


def test_a_hold_measures_the_arm_only_from_fresh_inputs_that_came_after_a_reset():
    """A hold kept the arm at a stale reading, or at one from before a reset homed it."""
    sensors, clock = _sensors(joint_timeout_s=0.2, pose_timeout_s=0.2)
    _feed(sensors, 10)
    joints, pose = sensors.measured()
    assert joints.tolist() == [1.0, 2.0] and pose is not None
    assert sensors.measured(since_s=clock.now + 0.01) == (None, None)   # came before the reset
    clock.now += 0.3   # silent longer than their timeouts
    assert sensors.measured() == (None, None)
