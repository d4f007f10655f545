"""Tier 0: the simulated human (Meta-World's expert as SpaceMouse Joy) on a real MetaWorldRobot."""
import numpy as np
import pytest

pytest.importorskip('metaworld')

from sole_r1_ros.sim import MetaWorldRobot, SimConfig  # noqa: E402
from sole_r1_ros.sim.simulated_human import AXIS_SCALE, RELEASE, SimulatedHuman  # noqa: E402


def test_it_drives_every_kth_episode_from_the_first_until_it_has_driven_n():
    human = SimulatedHuman(3, every=5)
    assert [e for e in range(30) if human.drives(e)] == [1, 6, 11]
    assert [e for e in range(6) if SimulatedHuman(2).drives(e)] == [1, 2]
    assert not any(SimulatedHuman(0).drives(e) for e in range(5))
    for episodes, every in ((-1, 1), (1, 0)):
        with pytest.raises(ValueError, match='episodes >= 0 and every >= 1'):
            SimulatedHuman(episodes, every)


def test_its_messages_are_the_expert_then_one_release_and_the_toggle_is_never_held():
    human = SimulatedHuman(1)
    with MetaWorldRobot(SimConfig(task='pick-place-v3', image_width=32, image_height=32,
                                  seed=3)) as robot:
        robot.reset(seed=3)
        assert human.joy(0, robot, 0.0) is None   # before the learner's first reset
        presses = []
        for _ in range(120):
            expert = robot.expert_action()
            axes, buttons = human.joy(1, robot, -1.0)   # the learner never flips the gripper
            np.testing.assert_allclose(axes[:3], np.clip(expert[:3] / AXIS_SCALE, -1, 1))
            assert axes[3:] == [0.0] * 3 and buttons[0] == 1
            presses.append(buttons[1])
            robot.step(np.r_[expert[:3], -1.0], render=False)
        # the expert closes the gripper on the puck: the toggle is pressed, released, pressed
        # again while the command stays open, never in two messages running
        assert sum(presses) >= 2
        assert not any(a and b for a, b in zip(presses, presses[1:]))
        assert human.joy(2, robot, -1.0) == RELEASE
        assert human.joy(2, robot, -1.0) is None and human.joy(3, robot, -1.0) is None
