"""Safety: every limit is hit, bad input is rejected, the watchdog goes stale on a fake clock."""
import subprocess
import sys

import numpy as np
import pytest

from sole_r1_ros.rl.safety import (
    clamp_delta_to_workspace, clamp_to_limits, clamp_to_workspace, EeDeltaAdapter,
    JointTargetAdapter, rate_limit, StaleWatchdog)

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
    target = adapter.command([1.0, -1.0, 1.0], current)
    np.testing.assert_allclose(target, [0.2, -2.0, 0.5])          # lower and upper limits hit
    np.testing.assert_allclose(adapter.command([5.0, 0.0, 0.0], current), [0.2, -1.95, 0.45])
    limited = adapter.command([1.0, 1.0, -1.0], current, previous_target=[0.0, -1.95, 0.45])
    np.testing.assert_allclose(limited, [0.1, -1.85, 0.35])        # rate limit hit
    with pytest.raises(ValueError, match='lacks'):
        adapter.positions_in_order(['shoulder', 'elbow'], [0.0, 0.0])
    with pytest.raises(ValueError):
        adapter.command([0.0, 0.0], current)
    with pytest.raises(ValueError):
        JointTargetAdapter(joint_names=('a', 'a'), lower=(0, 0), upper=(1, 1))


def test_safety_imports_without_torch():
    code = ('import sys; sys.modules["torch"] = None; '
            'import sole_r1_ros.rl.safety, sole_r1_ros.rl; '
            'from sole_r1_ros.rl import ReplayBuffer, StaleWatchdog, DrQConfig')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_safety_doctests_hold():
    import doctest

    from sole_r1_ros.rl import safety
    assert doctest.testmod(safety).failed == 0
