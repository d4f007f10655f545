"""Tier 0: the simulator's pure parts (config, command clamping, progress maths, task goals)."""
import subprocess
import sys

import numpy as np
import pytest

from sole_r1_ros.sim import (
    check_task_goals, clamp_command, COMMAND_LAYOUT, progress_from_distance, SimConfig,
    TASK_GOALS)
from sole_r1_ros.sim.progress import PROGRESS_TASKS


class TestClampCommand:

    def test_clips_each_component_to_the_unit_range_by_default(self):
        command = clamp_command([0.5, -3.0, 2.0, -1.0])
        np.testing.assert_array_equal(command, [0.5, -1.0, 1.0, -1.0])
        assert command.dtype == np.float64 and command.shape == (len(COMMAND_LAYOUT),)

    def test_scalar_and_per_component_limits(self):
        np.testing.assert_array_equal(clamp_command([1, -1, 0.1, 1], limit=0.5),
                                      [0.5, -0.5, 0.1, 0.5])
        np.testing.assert_array_equal(
            clamp_command([1, -1, 1, 1], limit=[0.1, 0.2, 0.0, 1.0]), [0.1, -0.2, 0.0, 1.0])

    def test_does_not_modify_its_input(self):
        values = np.array([2.0, 0.0, 0.0, 0.0])
        clamp_command(values)
        assert values[0] == 2.0

    @pytest.mark.parametrize('values', [[0.1, 0.2], [0.0] * 5, [], [[0.0] * 4] * 2])
    def test_wrong_length_raises(self, values):
        with pytest.raises(ValueError, match='4 values'):
            clamp_command(values)

    @pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
    def test_non_finite_value_raises(self, bad):
        with pytest.raises(ValueError, match='finite'):
            clamp_command([0.0, bad, 0.0, 0.0])

    @pytest.mark.parametrize('limit', [-0.1, 1.5, float('nan'), [0.5, 0.5]])
    def test_bad_limit_raises(self, limit):
        with pytest.raises(ValueError, match='limit'):
            clamp_command([0.0, 0.0, 0.0, 0.0], limit=limit)


class TestSimConfig:

    def test_defaults_are_valid_and_documented_units_hold(self):
        config = SimConfig()
        assert config.task == 'drawer-close-v3' and config.goal == 'close the drawer'
        assert config.control_period_s == pytest.approx(0.0125)
        assert SimConfig(action_repeat=4).control_period_s == pytest.approx(0.05)

    @pytest.mark.parametrize('field, value', [
        ('task', 'drawer-close-v2'),
        ('image_width', 0),
        ('image_height', 4096),
        ('image_width', True),
        ('image_height', 64.0),
        ('external_camera', 'front'),
        ('wrist_camera', 'wrist'),
        ('seed', -1),
        ('max_episode_steps', 0),
        ('action_repeat', 0),
    ])
    def test_invalid_field_raises_naming_the_field(self, field, value):
        with pytest.raises(ValueError, match=field):
            SimConfig(**{field: value})

    def test_wrist_camera_may_be_disabled(self):
        assert SimConfig(wrist_camera='').wrist_camera == ''


class TestProgressFromDistance:

    def test_is_zero_at_the_start_and_linear_towards_the_threshold(self):
        assert progress_from_distance(0.3, 0.3, 0.05, False) == 0.0
        assert progress_from_distance(0.3, 0.175, 0.05, False) == pytest.approx(50.0)

    def test_moving_away_from_the_goal_clips_at_zero(self):
        assert progress_from_distance(0.3, 0.5, 0.05, False) == 0.0

    def test_is_100_exactly_when_successful(self):
        assert progress_from_distance(0.3, 0.0, 0.05, False) == 99.0
        assert progress_from_distance(0.3, 0.2, 0.05, True) == 100.0

    def test_start_inside_the_threshold_gives_zero_until_success(self):
        assert progress_from_distance(0.04, 0.01, 0.05, False) == 0.0
        assert progress_from_distance(0.04, 0.01, 0.05, True) == 100.0


class TestTaskGoals:

    def test_goals_are_short_imperative_instructions(self):
        for task, goal in TASK_GOALS.items():
            assert goal and goal == goal.strip() and goal[0].islower(), task
            assert not goal.endswith('.') and len(goal) < 80, task
        assert len(set(TASK_GOALS.values())) == len(TASK_GOALS), 'two tasks share a goal'

    def test_goals_cover_exactly_the_metaworld_v3_tasks(self):
        pytest.importorskip('metaworld')
        check_task_goals()
        assert len(TASK_GOALS) == 50

    def test_every_task_has_a_ground_truth_progress_measure(self):
        assert PROGRESS_TASKS == set(TASK_GOALS)


def test_importing_the_sim_package_does_not_load_mujoco_or_metaworld():
    code = ('import sys, sole_r1_ros.sim; '
            "assert not {'mujoco', 'metaworld'} & set(sys.modules), sorted(sys.modules)")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
