"""Tier 0: the simulated human (Meta-World's expert as SpaceMouse Joy) on a real MetaWorldRobot."""
import numpy as np
import pytest

pytest.importorskip('metaworld')

from sole_r1_ros.rl.teleop import motion_from_axes, Teleop, TeleopConfig  # noqa: E402
from sole_r1_ros.sim import MetaWorldRobot, SimConfig  # noqa: E402
from sole_r1_ros.sim.simulated_human import SimulatedHuman  # noqa: E402


def test_it_drives_every_kth_training_episode_from_the_first_until_it_has_driven_n():
    human = SimulatedHuman(3, every=5)
    assert [e for e in range(30) if human.drives(e)] == [1, 6, 11]
    assert [e for e in range(6) if SimulatedHuman(2).drives(e)] == [1, 2]
    assert not any(SimulatedHuman(0).drives(e) for e in range(5))
    for episodes, every in ((-1, 1), (1, 0)):
        with pytest.raises(ValueError, match='episodes >= 0 and every >= 1'):
            SimulatedHuman(episodes, every)


def test_its_messages_are_the_expert_through_the_teleop_mapping_then_one_release():
    human = SimulatedHuman(1)
    config = TeleopConfig()
    with MetaWorldRobot(SimConfig(task='pick-place-v3', image_width=32, image_height=32,
                                  seed=3)) as robot:
        robot.reset(seed=3)
        assert human.joy(robot, 0.0) is None   # before the learner's first episode
        human.episode_started('episode-eval', evaluation=True)
        assert human.joy(robot, 0.0) is None   # an evaluation is left alone
        human.episode_started('episode-1', evaluation=False)
        presses = []
        for _ in range(120):
            expert = robot.expert_action()
            axes, buttons = human.joy(robot, -1.0)   # the learner never flips the gripper
            # what the learner's teleop makes of it is the expert's motion (bar the deadband)
            moved = np.abs(expert[:3]) > config.axis_deadbands[0] * config.axis_scales[0]
            np.testing.assert_allclose(motion_from_axes(axes, config, 3)[moved],
                                       expert[:3][moved], atol=1e-6)
            assert Teleop(config).update(axes, buttons).mode == 'human'   # dead-man held
            presses.append(buttons[config.gripper_toggle_button])
            robot.step(np.r_[expert[:3], -1.0], render=False)
        # the expert closes the gripper on the puck: the toggle is pressed, released, pressed
        # again while the command stays open, never in two messages running
        assert sum(presses) >= 2
        assert not any(a and b for a, b in zip(presses, presses[1:]))
        human.episode_started('', evaluation=False)   # the reset between episodes
        human.episode_started('episode-2', evaluation=False)
        axes, buttons = human.joy(robot, -1.0)
        assert not any(axes) and not any(buttons)     # released, once
        assert human.joy(robot, -1.0) is None
