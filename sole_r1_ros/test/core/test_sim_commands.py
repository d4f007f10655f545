"""The simulated Sawyer's Twist and Pose forms: units, limits, rejected input (no MuJoCo)."""
import numpy as np
import pytest

from sole_r1_ros.sim.commands import (
    command_from_pose, command_from_twist, EE_STEP_M, gripper_from_position)


def test_a_twist_becomes_the_displacement_of_one_tick():
    # 0.05 m/s for a 0.1 s tick is 5 mm: half of one 1 cm step
    np.testing.assert_allclose(command_from_twist([0.05, -0.02, 0.0], [0.0, 0.0, 3.0], 0.5, 0.1),
                               [0.5, -0.2, 0.0, 0.5])
    # with action_repeat 2 every tick moves twice as far per command unit
    np.testing.assert_allclose(command_from_twist([0.05, 0, 0], tick_period_s=0.1,
                                                  action_repeat=2)[:3], [0.25, 0, 0])
    np.testing.assert_allclose(command_from_twist([1.0, -1.0, 0.02], limit=0.5)[:3],
                               [0.5, -0.5, 0.2])


def test_a_pose_target_becomes_the_step_towards_it():
    current = np.array([0.0, 0.6, 0.2])
    np.testing.assert_allclose(
        command_from_pose(current + [0.004, 0.0, -0.02], current, [0, 0, 0, 1], gripper=-1.0),
        [0.4, 0.0, -1.0, -1.0])
    np.testing.assert_allclose(command_from_pose(current + EE_STEP_M, current)[:3], 1.0)


@pytest.mark.parametrize('call', [
    lambda: command_from_twist([np.nan, 0, 0]),
    lambda: command_from_twist([0, 0]),
    lambda: command_from_twist([0, 0, 0], [0, np.inf, 0]),
    lambda: command_from_twist([0, 0, 0], gripper=np.nan),
    lambda: command_from_twist([0, 0, 0], tick_period_s=0.0),
    lambda: command_from_twist([0, 0, 0], action_repeat=0),
    lambda: command_from_twist([0, 0, 0], limit=2.0),
    lambda: command_from_pose([0, 0, np.nan], [0, 0, 0]),
    lambda: command_from_pose([0, 0, 0], [0, 0, 0], [0, 0, 0, 0.5]),
    lambda: command_from_pose([0, 0, 0], [0, 0, 0], [0, np.nan, 0, 1]),
    lambda: gripper_from_position(np.nan, 0.04, 0.0),
    lambda: gripper_from_position(0.02, 0.04, 0.04),
])
def test_bad_twists_and_poses_are_rejected(call):
    with pytest.raises(ValueError):
        call()


def test_gripper_position_maps_closed_to_plus_one_and_open_to_minus_one():
    values = [gripper_from_position(p, open_position=0.04, closed_position=0.0)
              for p in (0.0, 0.02, 0.04, 0.1, -0.1)]
    assert values == pytest.approx([1.0, 0.0, -1.0, -1.0, 1.0])


def test_sim_command_doctests_hold():
    import doctest

    from sole_r1_ros.sim import commands
    assert doctest.testmod(commands).failed == 0
