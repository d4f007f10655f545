"""Command forms: every form comes from the same safe step; holds; gripper hysteresis."""
import math

import numpy as np
import pytest

from sole_r1_ros.rl.commands import (
    CommandConfig, ee_command, gripper_command, hold_joints, hold_normalized, hold_pose,
    hold_twist, JointLimits, split_action)
from sole_r1_ros.rl.poses import EePose, quat_conjugate, quat_multiply, rotvec_from_quat
from sole_r1_ros.rl.safety import SafetyBox

PERIOD_S = 0.1
POSE = EePose([0.0, 0.6, 0.2], [1.0, 0.0, 0.0, 0.0])
BOX = SafetyBox(box_lower=(-0.5, 0.4, 0.05), box_upper=(0.5, 0.9, 0.3), max_translation_m=0.02,
                max_rotation_rad=0.1, max_speed_m_s=0.15)


def test_every_form_derives_from_the_same_clamped_step():
    config = CommandConfig(command_type='twist_stamped', translation_scale_m=0.01)
    command = ee_command([0.5, -3.0, 0.0, 0.8], POSE, config, BOX, PERIOD_S)
    np.testing.assert_allclose(command.delta.translation_m, [0.005, -0.01, 0.0])   # clipped
    np.testing.assert_allclose(command.linear_m_s, [0.05, -0.1, 0.0])
    np.testing.assert_allclose(command.angular_rad_s, 0.0)
    np.testing.assert_allclose(command.target.position, [0.005, 0.59, 0.2])
    np.testing.assert_allclose(command.target.orientation, POSE.orientation)
    np.testing.assert_allclose(command.normalized, [0.5, -1.0, 0.0, 0.8])
    assert command.gripper == 0.8 and command.delta.limits == ()


def test_the_box_and_the_speed_limit_shape_twist_and_target_alike():
    config = CommandConfig(translation_scale_m=0.05)
    near_top = EePose([0.0, 0.6, 0.295], POSE.orientation)
    command = ee_command([0.0, 1.0, 1.0, 0.0], near_top, config, BOX, PERIOD_S)
    # 5 cm asked on y and z: the norm is cut to 0.015 m (0.15 m/s), then z to the box top
    step = 0.015 / math.sqrt(2)
    np.testing.assert_allclose(command.delta.translation_m, [0.0, step, 0.005], atol=1e-12)
    assert command.delta.limits == ('speed', 'box')
    np.testing.assert_allclose(command.linear_m_s, command.delta.translation_m / PERIOD_S)
    assert command.target.position[2] == pytest.approx(0.3)
    np.testing.assert_allclose(command.normalized[:3], command.delta.translation_m / 0.05)


def test_rotation_actions_give_angular_velocity_and_a_turned_target():
    config = CommandConfig(command_type='pose_stamped', rotation_actions=True,
                           rotation_scale_rad=0.05)
    assert config.action_dim == 7
    command = ee_command([0, 0, 0, 0, 0, 1.0, -1.0], POSE, config, BOX, PERIOD_S)
    np.testing.assert_allclose(command.angular_rad_s, [0, 0, 0.5])
    turn = quat_multiply(command.target.orientation, quat_conjugate(POSE.orientation))
    np.testing.assert_allclose(rotvec_from_quat(turn), [0, 0, 0.05], atol=1e-12)
    assert command.gripper == -1.0 and command.normalized.size == 4


@pytest.mark.parametrize('action', [[0, 0, 0], [0, 0, np.nan, 0], [0, 0, 0, 0, 0, 0, 0]])
def test_a_bad_action_is_rejected(action):
    with pytest.raises(ValueError, match='action'):
        split_action(action, CommandConfig())


def test_holds_keep_the_arm_where_it_is():
    linear, angular = hold_twist()
    assert not linear.any() and not angular.any()
    assert hold_pose(POSE) is POSE
    np.testing.assert_array_equal(hold_normalized(0.7), [0, 0, 0, 0.7])
    np.testing.assert_array_equal(hold_normalized(np.nan), [0, 0, 0, 0])
    current = np.array([0.1, -0.2])
    held = hold_joints(current)
    np.testing.assert_array_equal(held, current)
    assert held is not current
    with pytest.raises(ValueError):
        hold_joints([0.0, np.nan])


def test_gripper_hysteresis_keeps_its_state_between_the_thresholds():
    config = CommandConfig(gripper_close_threshold=0.5, gripper_open_threshold=-0.5,
                           gripper_open_position=0.08, gripper_closed_position=0.01)
    closed = False
    positions = []
    for value in (0.4, 0.5, 0.0, -0.4, -0.5, 0.3, np.nan, 0.9):
        closed, position = gripper_command(value, closed, config)
        positions.append(position)
    assert positions == [0.08, 0.01, 0.01, 0.01, 0.08, 0.08, 0.08, 0.01]


@pytest.mark.parametrize('overrides', [
    {'command_type': 'trajectory'}, {'gripper_open_threshold': 0.6},
    {'gripper_command_type': 'joint_trajectory', 'gripper_joint_names': ()},
    {'frame_id': ''}, {'translation_scale_m': 0.0}])
def test_bad_command_configs_are_rejected(overrides):
    with pytest.raises(ValueError):
        CommandConfig(**overrides)


def test_doctests_of_commands_and_poses_hold():
    import doctest

    from sole_r1_ros.rl import commands, poses
    assert doctest.testmod(commands).failed == 0 and doctest.testmod(poses).failed == 0


def test_joint_targets_change_by_the_speed_limit_times_the_period_at_most():
    limits = JointLimits(max_rate_rad=0.05, max_speed_rad_s=0.5)
    assert limits.rate_per_command(0.1) == pytest.approx(0.05)    # 10 Hz: the rate limit
    assert limits.rate_per_command(0.01) == pytest.approx(0.005)  # 100 Hz: still 0.5 rad/s
