"""Safety: every limit is hit, bad input is rejected, the watchdog goes stale on a fake clock."""
import math
import subprocess
import sys

import numpy as np
import pytest

from sole_r1_ros.rl.poses import EePose, quat_from_rotvec, quat_multiply, wrap_angle, yaw_of
from sole_r1_ros.rl.safety import (
    clamp_delta_to_workspace, clamp_to_limits, clamp_to_workspace, EeDeltaAdapter,
    JointTargetAdapter, rate_limit, safe_ee_delta, safe_ee_target, SafetyBox, StaleWatchdog)

BOX_LOWER, BOX_UPPER = (-0.5, 0.4, 0.05), (0.5, 0.9, 0.3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_clamp_to_limits_hits_lower_and_upper_and_returns_a_new_array():
    values = np.array([-3.0, 0.5, 3.0])
    out = clamp_to_limits(values, [-1.0, -1.0, -2.0], [1.0, 1.0, 2.0])
    np.testing.assert_array_equal(out, [-1.0, 0.5, 2.0])
    np.testing.assert_array_equal(values, [-3.0, 0.5, 3.0])
    np.testing.assert_array_equal(clamp_to_limits([5.0, -5.0], -1.0, 1.0), [1.0, -1.0])


@pytest.mark.parametrize('call', [
    lambda: clamp_to_limits([np.nan, 0.0], -1.0, 1.0),
    lambda: clamp_to_limits([np.inf], -1.0, 1.0),
    lambda: clamp_to_limits([0.0, 0.0], [-1.0, -1.0, -1.0], 1.0),
    lambda: clamp_to_limits([0.0], 1.0, -1.0),
    lambda: clamp_to_limits([0.0], -1.0, np.nan),
    lambda: rate_limit([0.0, 1.0], [0.0], 0.1),
    lambda: rate_limit([0.0], [np.nan], 0.1),
    lambda: rate_limit([0.0], [0.0], -0.1),
    lambda: clamp_to_workspace([0.0, 0.5], BOX_LOWER, BOX_UPPER),
    lambda: clamp_to_workspace([0.0, 0.5, np.nan], BOX_LOWER, BOX_UPPER),
    lambda: clamp_delta_to_workspace([0.0, 0.5, 0.1], [0.0, 0.0], BOX_LOWER, BOX_UPPER),
    lambda: clamp_delta_to_workspace([0.0, 0.5, 0.1], [0.0] * 3, BOX_UPPER, BOX_LOWER),
])
def test_non_finite_and_wrong_length_inputs_are_rejected(call):
    with pytest.raises(ValueError):
        call()


def test_rate_limit_caps_the_change_in_both_directions_per_element():
    out = rate_limit([1.0, -1.0, 0.05], [0.0, 0.0, 0.0], [0.1, 0.2, 0.1])
    np.testing.assert_allclose(out, [0.1, -0.2, 0.05])


def test_clamp_to_workspace_hits_every_face_of_the_box():
    for axis in range(3):
        for bound, outside in ((BOX_LOWER, -10.0), (BOX_UPPER, 10.0)):
            position = np.array([0.0, 0.6, 0.1])
            position[axis] = outside
            out = clamp_to_workspace(position, BOX_LOWER, BOX_UPPER)
            assert out[axis] == bound[axis]


def test_workspace_delta_cuts_only_the_part_that_leaves_the_box():
    position = [0.45, 0.6, 0.28]
    delta = clamp_delta_to_workspace(position, [0.1, -0.05, 0.1], BOX_LOWER, BOX_UPPER)
    np.testing.assert_allclose(delta, [0.05, -0.05, 0.02])
    # outside the box: further out is cut to zero, back in is allowed
    outside = [0.7, 0.6, 0.0]
    np.testing.assert_allclose(
        clamp_delta_to_workspace(outside, [0.1, 0.0, -0.01], BOX_LOWER, BOX_UPPER), [0, 0, 0])
    np.testing.assert_allclose(
        clamp_delta_to_workspace(outside, [-0.01, 0.0, 0.01], BOX_LOWER, BOX_UPPER),
        [-0.01, 0.0, 0.01])


def test_watchdog_goes_stale_after_each_sources_timeout():
    clock = FakeClock()
    watchdog = StaleWatchdog({'camera': 0.5, 'joint_states': 0.2}, clock=clock)
    assert watchdog.stale_sources() == ['camera', 'joint_states']   # never heard from
    watchdog.touch('camera')
    watchdog.touch('joint_states')
    assert not watchdog.is_stale()
    clock.now += 0.3
    assert watchdog.stale_sources() == ['joint_states']
    watchdog.touch('joint_states')                 # at 100.3
    clock.now += 0.15
    assert not watchdog.is_stale()
    watchdog.touch('joint_states')                 # at 100.45
    clock.now += 0.1
    assert watchdog.stale_sources() == ['camera']  # 0.55 s > 0.5 s; joint states 0.1 s
    assert watchdog.is_stale(now=clock.now) and not watchdog.is_stale(now=100.5)


def test_watchdog_rejects_unknown_sources_and_bad_timeouts():
    with pytest.raises(ValueError, match='unknown'):
        StaleWatchdog({'camera': 1.0}, clock=FakeClock()).touch('lidar')
    with pytest.raises(ValueError, match='timeout'):
        StaleWatchdog({'camera': 0.0})
    with pytest.raises(ValueError):
        StaleWatchdog({})


def test_ee_delta_adapter_clamps_rate_limits_and_keeps_the_box():
    adapter = EeDeltaAdapter(box_lower=BOX_LOWER, box_upper=BOX_UPPER, ee_step_m=0.01,
                             max_command_delta=0.5)
    centre = [0.0, 0.6, 0.1]
    np.testing.assert_allclose(adapter.command([3.0, -3.0, 0.2, 7.0], centre), [1, -1, 0.2, 1])
    np.testing.assert_allclose(adapter.command([1.0, 1.0, 1.0, -1.0], centre, [0, 0, 0, 0]),
                               [0.5, 0.5, 0.5, -0.5])
    near_top = [0.0, 0.6, 0.295]   # 5 mm below the box top: dz is cut to 0.5 of a step
    np.testing.assert_allclose(adapter.command([0.0, 0.0, 1.0, 0.0], near_top),
                               [0.0, 0.0, 0.5, 0.0], atol=1e-9)
    with pytest.raises(ValueError):
        adapter.command([np.nan, 0, 0, 0], centre)
    with pytest.raises(ValueError):
        EeDeltaAdapter(box_lower=BOX_UPPER, box_upper=BOX_LOWER)


def test_joint_adapter_hits_joint_limits_and_rate_limit_in_name_order():
    adapter = JointTargetAdapter(joint_names=('shoulder', 'elbow', 'wrist'),
                                 lower=(-1.0, -2.0, -0.5), upper=(1.0, 2.0, 0.5),
                                 max_step_rad=0.2, max_rate_rad=0.1)
    current = adapter.positions_in_order(['wrist', 'elbow', 'shoulder', 'finger'],
                                         [0.45, -1.95, 0.0, 0.02])
    np.testing.assert_allclose(current, [0.0, -1.95, 0.45])
    target = adapter.command([1.0, -1.0, 1.0], current)   # the first, or the first after a hold:
    np.testing.assert_allclose(target, [0.1, -2.0, 0.5])  # the rate limit from where it is
    np.testing.assert_allclose(adapter.command([1.0, -1.0, 1.0], current, [0.05, -1.95, 0.45]),
                               [0.15, -2.0, 0.5])          # lower and upper limits hit
    np.testing.assert_allclose(adapter.command([5.0, 0.0, 0.0], current), [0.1, -1.95, 0.45])
    # A joint measured outside its limits comes back by a step at most, never further out.
    outside = [2.5, -2.3, 0.0]
    np.testing.assert_allclose(adapter.command([-1.0, -1.0, 0.0], outside), [2.4, -2.3, 0.0])
    np.testing.assert_allclose(adapter.command([-1.0, 1.0, 0.0], outside, outside),
                               [2.4, -2.2, 0.0])
    limited = adapter.command([1.0, 1.0, -1.0], current, previous_target=[0.0, -1.95, 0.45])
    np.testing.assert_allclose(limited, [0.1, -1.85, 0.35])        # rate limit hit
    with pytest.raises(ValueError, match='lacks'):
        adapter.positions_in_order(['shoulder', 'elbow'], [0.0, 0.0])
    with pytest.raises(ValueError):
        adapter.command([0.0, 0.0], current)
    with pytest.raises(ValueError):
        JointTargetAdapter(joint_names=('a', 'a'), lower=(0, 0), upper=(1, 1))


def test_a_joint_target_stays_a_step_from_the_arm_after_a_reading_wraps():
    """A reading wrapped by 2 pi does not pull the target 6.2 rad from the arm.

    A continuous joint read as -3.163 after a target of 3.12: the rate limit from that target
    sent +3.07 to a controller that does not unwrap.
    """
    adapter = JointTargetAdapter(joint_names=('j',), lower=(-3.1,), upper=(3.1,),
                                 max_step_rad=0.05, max_rate_rad=0.05)
    target = adapter.command([1.0], [-3.163], previous_target=[3.12])
    assert abs(target[0] - -3.163) <= 0.05 + 1e-12, target
    # a controller lagging a step or two behind its targets moves as before
    np.testing.assert_allclose(adapter.command([1.0], [0.0], previous_target=[0.04]), [0.05])


def test_a_last_target_past_a_joint_limit_never_carries_the_next_one_past_it():
    """The rate limit from a last target beyond the limit ends outside it: 1.1 of a 1.0 limit.

    A target sent while the arm was measured outside its limits (1.3, coming back) may itself
    lie outside them; once the arm is back inside, no later target may.
    """
    adapter = JointTargetAdapter(joint_names=('j',), lower=(-1.0,), upper=(1.0,),
                                 max_step_rad=0.2, max_rate_rad=0.1)
    target = adapter.command([1.0], [0.98], previous_target=[1.2])
    assert target[0] <= 1.0, target
    np.testing.assert_allclose(target, [1.0])


def test_safety_imports_without_torch():
    code = ('import sys; sys.modules["torch"] = None; sys.modules["rclpy"] = None; '
            'sys.modules["mujoco"] = None; '
            'import sole_r1_ros.rl.safety, sole_r1_ros.rl; '
            'import sole_r1_ros.rl.commands, sole_r1_ros.rl.teleop, sole_r1_ros.sim.commands; '
            'from sole_r1_ros.rl import ReplayBuffer, StaleWatchdog, DrQConfig')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_safety_doctests_hold():
    import doctest

    from sole_r1_ros.rl import safety
    assert doctest.testmod(safety).failed == 0


# ------------------------------------------------------------------ end-effector safety box

def _pose(position=(0.0, 0.6, 0.2), yaw=0.0) -> EePose:
    """A downward-pointing tool at ``position`` turned by ``yaw`` about the base z axis."""
    return EePose(position, quat_multiply(quat_from_rotvec([0.0, 0.0, yaw]), [1, 0, 0, 0]))


def test_safe_ee_delta_caps_translation_norm_keeping_direction():
    box = SafetyBox(max_translation_m=0.02, max_speed_m_s=10.0)
    delta = safe_ee_delta(box, _pose(), [0.03, 0.04, 0.0], period_s=0.1)
    np.testing.assert_allclose(delta.translation_m, [0.012, 0.016, 0.0])
    assert delta.limits == ('translation',)
    small = safe_ee_delta(box, _pose(), [0.001, 0.0, -0.001])
    np.testing.assert_allclose(small.translation_m, [0.001, 0.0, -0.001])
    assert small.limits == () and np.all(small.rotation_rad == 0)


def test_safe_ee_delta_caps_speed_with_the_control_period():
    box = SafetyBox(max_translation_m=0.05, max_speed_m_s=0.1)
    delta = safe_ee_delta(box, _pose(), [0.0, 0.0, -0.05], period_s=0.1)
    np.testing.assert_allclose(delta.translation_m, [0.0, 0.0, -0.01])   # 0.1 m/s x 0.1 s
    assert delta.limits == ('speed',)
    slower = safe_ee_delta(box, _pose(), [0.0, 0.0, -0.05], period_s=0.2)
    np.testing.assert_allclose(slower.translation_m, [0.0, 0.0, -0.02])


def test_safe_ee_delta_caps_the_rotation_angle():
    box = SafetyBox(max_rotation_rad=0.1)
    delta = safe_ee_delta(box, _pose(), [0, 0, 0], [0.0, 0.3, 0.4])
    np.testing.assert_allclose(delta.rotation_rad, [0.0, 0.06, 0.08])
    assert delta.limits == ('rotation',)


def test_safe_ee_delta_keeps_the_box_after_the_step_limits():
    box = SafetyBox(box_lower=BOX_LOWER, box_upper=BOX_UPPER, max_translation_m=0.05)
    near_top = _pose((0.0, 0.6, 0.295))
    delta = safe_ee_delta(box, near_top, [0.01, 0.0, 0.02])
    np.testing.assert_allclose(delta.translation_m, [0.01, 0.0, 0.005], atol=1e-12)
    assert delta.limits == ('box',)
    # outside the box: never further out, back in as asked
    outside = _pose((0.7, 0.6, 0.2))
    np.testing.assert_allclose(
        safe_ee_delta(box, outside, [0.01, 0.0, 0.0]).translation_m, [0, 0, 0])
    np.testing.assert_allclose(
        safe_ee_delta(box, outside, [-0.01, 0.0, 0.0]).translation_m, [-0.01, 0, 0])
    target, _ = safe_ee_target(box, near_top, [0.0, 0.0, 0.04])
    assert target.position[2] == pytest.approx(BOX_UPPER[2])


def test_yaw_limit_cuts_only_the_outward_yaw_and_wraps_through_pi():
    centre = math.pi - 0.1
    box = SafetyBox(yaw_centre_rad=centre, yaw_half_range_rad=0.2)
    pose = _pose(yaw=centre + 0.15)                 # past +pi: yaw reads as about -pi + 0.05
    delta = safe_ee_delta(box, pose, [0, 0, 0], [0.0, 0.0, 0.1])
    np.testing.assert_allclose(delta.rotation_rad, [0.0, 0.0, 0.05], atol=1e-9)
    assert delta.limits == ('yaw',)
    target, _ = safe_ee_target(box, pose, [0, 0, 0], [0.0, 0.0, 0.1])
    assert wrap_angle(yaw_of(target.orientation) - centre) == pytest.approx(0.2)
    inward = safe_ee_delta(box, pose, [0, 0, 0], [0.0, 0.0, -0.1])
    np.testing.assert_allclose(inward.rotation_rad, [0.0, 0.0, -0.1], atol=1e-9)
    beyond = _pose(yaw=centre + 0.5)                # already outside: no further out
    np.testing.assert_allclose(
        safe_ee_delta(box, beyond, [0, 0, 0], [0.0, 0.0, 0.05]).rotation_rad, 0.0, atol=1e-9)


def test_the_turning_rate_is_capped_per_second_not_only_per_step():
    box = SafetyBox(max_rotation_rad=0.1, max_angular_speed_rad_s=1.0)
    assert np.linalg.norm(safe_ee_delta(box, _pose(), [0, 0, 0], [0, 0, 0.1],
                                        period_s=0.1).rotation_rad) == pytest.approx(0.1)
    fast = safe_ee_delta(box, _pose(), [0, 0, 0], [0, 0, 0.1], period_s=0.001)   # 1 kHz
    assert np.linalg.norm(fast.rotation_rad) == pytest.approx(0.001)
    assert fast.limits == ('angular speed',)


@pytest.mark.parametrize('pitch', [1.2, math.pi / 2 - 0.01])
def test_a_yaw_cut_never_turns_the_tool_further_than_asked(pitch):
    """Near a vertical tool axis yaw is ill-conditioned: a cut once turned it by up to pi."""
    box = SafetyBox(yaw_half_range_rad=0.5)
    orientation = quat_multiply(quat_from_rotvec([0.0, 0.0, 0.5]),
                                quat_from_rotvec([0.0, pitch, 0.0]))
    pose = EePose([0.0, 0.6, 0.2], orientation)
    for asked in ([0.0, 0.05, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.1], [0.05, 0.05, 0.05]):
        delta = safe_ee_delta(box, pose, [0, 0, 0], asked)
        assert np.linalg.norm(delta.rotation_rad) <= np.linalg.norm(asked) + 1e-12
        assert np.linalg.norm(delta.rotation_rad) <= box.max_rotation_rad + 1e-12
        target, _ = safe_ee_target(box, pose, [0, 0, 0], asked)
        assert abs(wrap_angle(yaw_of(target.orientation))) <= 0.5 + 1e-6


@pytest.mark.parametrize('call', [
    lambda box: safe_ee_delta(box, _pose(), [np.nan, 0, 0]),
    lambda box: safe_ee_delta(box, _pose(), [0, 0]),
    lambda box: safe_ee_delta(box, _pose(), [0, 0, 0], [0, np.inf, 0]),
    lambda box: safe_ee_delta(box, _pose(), [0, 0, 0], period_s=0.0),
    lambda box: safe_ee_delta(box, _pose(), [0, 0, 0], period_s=np.nan),
])
def test_safe_ee_delta_rejects_bad_input(call):
    with pytest.raises(ValueError):
        call(SafetyBox())


@pytest.mark.parametrize('field, value', [
    ('box_lower', (0.0, 1.0, 0.5)), ('box_upper', (0.0, 0.0)), ('max_speed_m_s', -1.0),
    ('yaw_half_range_rad', 4.0), ('max_translation_m', float('nan'))])
def test_safety_box_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match='box_lower|' + field):
        SafetyBox(**{field: value})
