"""Privileged ground-truth task progress in [0, 100] from Meta-World simulator state.

Progress is how far the task's own success distance has shrunk from its value at reset towards the
success threshold. It is the yardstick the video-language reward is checked against, so it reads
the same quantity Meta-World's ``evaluate_state`` uses to decide success, per task.

It measures the task's object, not the arm: progress stays near 0 while the arm reaches and
grasps, and tasks whose object moves only at the end (buttons, hammer, coffee-button) jump
from 0 to 100 within a few steps. bench/bench_sim.py --progress-check shows it per task.
"""
from dataclasses import dataclass
import math
from typing import Any, Callable, Mapping

import numpy as np

# Progress reported while not successful never exceeds this, so 100 means exactly "success".
_MAX_PROGRESS_WITHOUT_SUCCESS = 99.0
# Below this span (m or rad) between the reset distance and the threshold the task starts solved
# or nearly so, and the ratio would only amplify noise.
_MIN_SPAN = 1e-6

_Distance = Callable[[Any, np.ndarray, Mapping[str, Any]], float]


@dataclass(frozen=True)
class _Measure:
    distance: _Distance
    '''Current success distance from the env, its 39-d observation and step info (m or rad).'''
    threshold: float
    '''Success when the distance is at most this (same unit as distance).'''


def _obj_to_target(env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
    return float(info['obj_to_target'])


def _box_lid_to_target(env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
    # box-close: success is ||lid - goal|| < 0.08.
    return float(np.linalg.norm(obs[4:7] - env._target_pos))


def _door_x_to_target(env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
    # door-open: success is |handle x - goal x| <= 0.08.
    return float(abs(obs[4] - env._target_pos[0]))


def _nut_to_peg(env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
    # assembly: success is the nut centre less than 2 cm from the peg axis and below the peg top,
    # so the distance is 0 exactly when both hold.
    error = env._target_pos - env._get_site_pos('RoundNut')
    return float(max(0.0, np.linalg.norm(error[:2]) - 0.02) + max(0.0, -error[2]))


def _nut_below_target(env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
    # disassemble: success is nut height above the goal height.
    return float(max(0.0, env._target_pos[2] - obs[6]))


def _nail_left(env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
    # hammer: success is the nail joint driven in by more than 9 cm.
    return float(max(0.0, 0.09 - env.data.joint('NailSlideJoint').qpos.item()))


def _lever_error(env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
    # lever-pull: success is the lever within pi/24 of vertical; info's obj_to_target is the
    # shoulder-to-lever distance instead.
    angle = -env.data.joint('LeverAxis').qpos.item()
    return float(abs(angle - math.pi / 2.0))


def _container_to_target(env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
    # stick-push / stick-pull: the box (second object) within 12 cm of the goal.
    return float(np.linalg.norm(obs[11:14] - env._target_pos))


def _info(threshold: float) -> _Measure:
    return _Measure(_obj_to_target, threshold)


# Thresholds copied from each task's evaluate_state (metaworld 3.1.1).
_MEASURES: dict[str, _Measure] = {
    'assembly-v3': _Measure(_nut_to_peg, 0.0),
    'basketball-v3': _info(0.08),
    'bin-picking-v3': _info(0.05),
    'box-close-v3': _Measure(_box_lid_to_target, 0.08),
    'button-press-topdown-v3': _info(0.024),
    'button-press-topdown-wall-v3': _info(0.024),
    'button-press-v3': _info(0.02),
    'button-press-wall-v3': _info(0.03),
    'coffee-button-v3': _info(0.02),
    'coffee-pull-v3': _info(0.07),
    'coffee-push-v3': _info(0.07),
    'dial-turn-v3': _info(0.07),
    'disassemble-v3': _Measure(_nut_below_target, 0.0),
    'door-close-v3': _info(0.08),
    'door-lock-v3': _info(0.02),
    'door-open-v3': _Measure(_door_x_to_target, 0.08),
    'door-unlock-v3': _info(0.02),
    'drawer-close-v3': _info(0.065),
    'drawer-open-v3': _info(0.03),
    'faucet-close-v3': _info(0.07),
    'faucet-open-v3': _info(0.07),
    'hammer-v3': _Measure(_nail_left, 0.0),
    'hand-insert-v3': _info(0.05),
    'handle-press-side-v3': _info(0.02),
    'handle-press-v3': _info(0.02),
    'handle-pull-side-v3': _info(0.08),
    'handle-pull-v3': _info(0.05),
    'lever-pull-v3': _Measure(_lever_error, math.pi / 24.0),
    'peg-insert-side-v3': _info(0.07),
    'peg-unplug-side-v3': _info(0.07),
    'pick-out-of-hole-v3': _info(0.07),
    'pick-place-v3': _info(0.07),
    'pick-place-wall-v3': _info(0.07),
    'plate-slide-back-side-v3': _info(0.07),
    'plate-slide-back-v3': _info(0.07),
    'plate-slide-side-v3': _info(0.07),
    'plate-slide-v3': _info(0.07),
    'push-back-v3': _info(0.07),
    'push-v3': _info(0.05),
    'push-wall-v3': _info(0.07),
    'reach-v3': _info(0.05),
    'reach-wall-v3': _info(0.05),
    'shelf-place-v3': _info(0.07),
    'soccer-v3': _info(0.07),
    'stick-pull-v3': _Measure(_container_to_target, 0.12),
    'stick-push-v3': _Measure(_container_to_target, 0.12),
    'sweep-into-v3': _info(0.05),
    'sweep-v3': _info(0.05),
    'window-close-v3': _info(0.05),
    'window-open-v3': _info(0.05),
}

PROGRESS_TASKS: frozenset[str] = frozenset(_MEASURES)
'''Tasks with a ground-truth progress measure (all 50 Meta-World v3 tasks).'''


def progress_from_distance(
    start: float, current: float, threshold: float, success: bool
) -> float:
    """Map a success distance to progress in [0, 100]; 100 exactly when the task succeeds.

    ``clip((start - current) / (start - threshold), 0, 1) * 100``, capped at 99 while the
    simulator does not report success (some tasks need more than the distance, e.g. a grasp).

    Args:
        start: the distance at reset.
        current: the distance now.
        threshold: the distance at or below which the task counts as solved.
        success: Meta-World's success flag for this step.

    Returns:
        Progress in percent.

    >>> progress_from_distance(0.3, 0.175, 0.05, False)
    50.0
    >>> progress_from_distance(0.3, 0.04, 0.05, True)
    100.0
    """
    if success:
        return 100.0
    span = start - threshold
    if span < _MIN_SPAN:
        return 0.0
    fraction = min(max((start - current) / span, 0.0), 1.0)
    return min(fraction * 100.0, _MAX_PROGRESS_WITHOUT_SUCCESS)


class TaskProgress:
    """Track one episode's ground-truth progress for a Meta-World task.

    Call ``start`` after every reset, then ``update`` after every step. Reads privileged
    simulator state (object poses, joint angles, the hidden goal), so the result belongs in
    step info only, never in what a policy observes.
    """

    def __init__(self, task: str) -> None:
        if task not in _MEASURES:
            raise ValueError(f'no progress measure for task {task!r}')
        self._measure = _MEASURES[task]
        self._start: float | None = None

    @property
    def threshold(self) -> float:
        """The success distance of this task (m, or rad for lever-pull)."""
        return self._measure.threshold

    def distance(self, env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
        """Return the current success distance in m (rad for lever-pull)."""
        return self._measure.distance(env, obs, info)

    def start(self, env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> None:
        """Record the distance at reset as the zero-progress reference."""
        self._start = self.distance(env, obs, info)

    def update(self, env: Any, obs: np.ndarray, info: Mapping[str, Any]) -> float:
        """Return progress in [0, 100] for the state after a step.

        Raises:
            RuntimeError: ``start`` was not called since construction.
        """
        if self._start is None:
            raise RuntimeError('TaskProgress.update called before start')
        success = bool(info['success'])
        return progress_from_distance(
            self._start, self.distance(env, obs, info), self._measure.threshold, success)
