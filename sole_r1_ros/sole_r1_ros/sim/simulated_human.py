"""A simulated human: Meta-World's scripted expert as the Joy messages of a SpaceMouse.

A stand-in, in simulation only, for a person who takes over now and then (HIL-SERL's
interventions): it reads the simulator's hidden state through the expert, so it never runs on a
robot and no result that uses it is a result of the reward alone. The messages follow the
learner's default ``TeleopConfig``: button 0 is the dead-man, axes 0-2 move the hand (the learner
multiplies by 1.4 and clips), button 1 toggles the gripper.
"""
from typing import Any

import numpy as np

AXIS_SCALE = 1.4
'''``TeleopConfig.axis_scales``' default: an axis value of 1 / 1.4 is a full command.'''
RELEASE = ([0.0] * 6, [0, 0])
'''The message that hands the robot back: dead-man released, nothing moved.'''


class SimulatedHuman:
    """Which episodes the expert drives, and its Joy message for the current state.

    It drives episodes 1, 1 + every, 1 + 2 every, ... (the learner resets before its first
    episode, so that is episode 1), ``episodes`` of them, and releases the dead-man at the first
    message of an episode it does not drive. The gripper toggle is pressed when the expert's
    gripper and the last command's differ, never in two messages running, so a press the
    learner has not acted on yet is not counted twice.
    """

    def __init__(self, episodes: int, every: int = 1) -> None:
        if episodes < 0 or every < 1:
            raise ValueError(f'SimulatedHuman needs episodes >= 0 and every >= 1, got '
                             f'{episodes} and {every}')
        self.episodes, self.every = episodes, every
        self._engaged = False
        self._pressed = False

    def drives(self, episode: int) -> bool:
        """Whether the expert drives this episode (numbered from 1)."""
        index, rest = divmod(episode - 1, self.every)
        return episode >= 1 and rest == 0 and index < self.episodes

    def joy(self, episode: int, robot: Any, gripper_now: float
            ) -> tuple[list[float], list[int]] | None:
        """(axes, buttons) to publish now, or None (nothing to say).

        Args:
            episode: the simulator's episode number (0 before the first reset).
            robot: the ``MetaWorldRobot`` (its ``expert_action``).
            gripper_now: the gripper value of the last command applied, in [-1, 1].
        """
        if not self.drives(episode):
            if not self._engaged:
                return None
            self._engaged, self._pressed = False, False
            return RELEASE
        self._engaged = True
        action = robot.expert_action()
        axes = [float(np.clip(a / AXIS_SCALE, -1.0, 1.0)) for a in action[:3]] + [0.0] * 3
        flip = bool((action[3] > 0) != (gripper_now > 0)) and not self._pressed
        self._pressed = flip
        return axes, [1, int(flip)]
