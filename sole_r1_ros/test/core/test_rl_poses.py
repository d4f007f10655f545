"""End-effector poses: invalid poses are reported (never normalised into use); quaternion maths."""
import math

import numpy as np
import pytest

from sole_r1_ros.rl.poses import (
    checked_pose, EePose, pose_problem, quat_conjugate, quat_from_rotvec, quat_multiply,
    rotvec_from_quat, wrap_angle, yaw_of)

DOWN = (1.0, 0.0, 0.0, 0.0)   # tool z axis pointing down: half a turn about x


@pytest.mark.parametrize('position, orientation, reason', [
    ([0, 0, np.nan], [0, 0, 0, 1], 'not finite'),
    ([0, 0, 0], [0, 0, np.inf, 1], 'not finite'),
    ([0, 0, 0], [0, 0, 0, 0], 'norm 0'),
    ([0, 0, 0], [0, 0, 0, 1.01], 'norm 1.01'),
    ([0, 0], [0, 0, 0, 1], 'need 3 position'),
    ([0, 0, 0], [0, 0, 1], '4 quaternion'),
    ([0, 0, 0], ['a', 0, 0, 1], 'not numeric'),
])
def test_pose_problem_names_the_reason_and_never_raises(position, orientation, reason):
    assert reason in pose_problem(position, orientation)


def test_checked_pose_renormalises_within_tolerance_and_rejects_beyond_it():
    pose = checked_pose([0.1, 0.5, 0.2], [0, 0, 0, 1.0005])
    assert np.linalg.norm(pose.orientation) == pytest.approx(1.0, abs=1e-12)
    assert not pose.position.flags.writeable and not pose.orientation.flags.writeable
    with pytest.raises(ValueError, match='norm'):
        checked_pose([0.1, 0.5, 0.2], [0, 0, 0, 1.0005], tolerance=1e-4)
    with pytest.raises(ValueError, match='norm'):
        EePose([0, 0, 0], [0, 0, 0, 1.0005])   # the constructor wants a unit quaternion


def test_rotvec_round_trip_and_composition():
    v = np.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(rotvec_from_quat(quat_from_rotvec(v)), v, atol=1e-12)
    np.testing.assert_allclose(rotvec_from_quat(quat_from_rotvec([0, 0, 0])), 0.0)
    q = quat_from_rotvec(v)
    np.testing.assert_allclose(quat_multiply(q, quat_conjugate(q)), [0, 0, 0, 1], atol=1e-12)
    # two quarter turns about z make a half turn
    quarter = quat_from_rotvec([0, 0, math.pi / 2])
    np.testing.assert_allclose(rotvec_from_quat(quat_multiply(quarter, quarter)),
                               [0, 0, math.pi], atol=1e-9)


def test_yaw_is_the_heading_about_base_z_also_for_a_downward_tool():
    for yaw in (-3.0, -0.5, 0.0, 1.2, 3.1):
        q = quat_multiply(quat_from_rotvec([0, 0, yaw]), DOWN)
        assert yaw_of(q) == pytest.approx(yaw, abs=1e-9)
    assert wrap_angle(math.pi + 0.1) == pytest.approx(-math.pi + 0.1)
