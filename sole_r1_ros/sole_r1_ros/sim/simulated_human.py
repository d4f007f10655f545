"""A simulated human: Meta-World's scripted expert as the Joy messages of a SpaceMouse.

A stand-in, in simulation only, for a person who takes over now and then (HIL-SERL's
interventions): it reads the simulator's hidden state through the expert, so it never runs on a
robot and no result that uses it is a result of the reward alone. The messages follow the
learner's default ``TeleopConfig`` (``rl.teleop``): the dead-man button held, the motion axes
at the expert's command over their scale, the gripper by the toggle button.
"""
from typing import Any

import numpy as np

from sole_r1_ros.rl.teleop import TeleopConfig

_MAPPING = TeleopConfig()


class SimulatedHuman:
    """Which training episodes the expert drives, and its Joy message for the current state.

    It counts the learner's training episodes as they are announced (evaluations are left
    alone), drives the 1st, the (1 + every)-th, ... of them, ``episodes`` in all, and
    releases the dead-man at the first message of an episode it does not drive. The gripper
    toggle is pressed when the expert's gripper and the last command's differ, never in two
    messages running, so a press the learner has not acted on yet is not counted twice.
    """

    def __init__(self, episodes: int, every: int = 1) -> None:
        if episodes < 0 or every < 1:
            raise ValueError(f'SimulatedHuman needs episodes >= 0 and every >= 1, got '
                             f'{episodes} and {every}')
        self.episodes, self.every = episodes, every
        self._trained = 0   # training episodes announced so far
        self._current = 0   # the running one's number among them; 0: none, or an evaluation
        self._engaged = False
        self._pressed = False

    def drives(self, episode: int) -> bool:
        """Whether the expert drives this training episode (numbered from 1)."""
        index, rest = divmod(episode - 1, self.every)
        return episode >= 1 and rest == 0 and index < self.episodes

    def episode_started(self, episode_id: str, evaluation: bool) -> None:
        """The learner announced an episode (``''``: the running one ended)."""
        if episode_id and not evaluation:
            self._trained += 1
            self._current = self._trained
        else:
            self._current = 0

    def joy(self, robot: Any, gripper_now: float) -> tuple[list[float], list[int]] | None:
        """(axes, buttons) to publish now, or None (nothing to say).

        Args:
            robot: the ``MetaWorldRobot`` (its ``expert_action``).
            gripper_now: the gripper value of the last command applied, in [-1, 1].
        """
        # a SpaceMouse's own counts (6 axes, 2 buttons); the mapping may leave them unchecked
        axes = [0.0] * max(_MAPPING.num_axes, _MAPPING.axes_needed)
        buttons = [0] * max(_MAPPING.num_buttons, _MAPPING.buttons_needed)
        if not self.drives(self._current):
            if not self._engaged:
                return None
            self._engaged, self._pressed = False, False
            return axes, buttons   # released, nothing moved
        self._engaged = True
        action = robot.expert_action()
        for value, axis, sign, scale in zip(action[:3], _MAPPING.motion_axes,
                                            _MAPPING.axis_signs, _MAPPING.axis_scales):
            axes[axis] = float(np.clip(value / (sign * scale), -1.0, 1.0))
        flip = bool((action[3] > 0) != (gripper_now > 0)) and not self._pressed
        self._pressed = flip
        buttons[_MAPPING.deadman_button] = 1
        buttons[_MAPPING.gripper_toggle_button] = int(flip)
        return axes, buttons
