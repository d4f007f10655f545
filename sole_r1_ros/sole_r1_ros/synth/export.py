"""Synthetic episodes as SOLE-R1 fine-tuning examples, with reasoning grounded in sim state.

The examples are written by ``finetune.episodes.write_dataset``, the writer of ``sole-r1
finetune prepare`` (format: ``finetune/FORMAT.md``); what synthetic data adds is the target's
``<think>``: how the hand, gripper and object moved between the previous and the current frame,
and what is left to do, from simulator state.
"""
import os
from typing import Callable, Iterable, Iterator

import numpy as np

from sole_r1_ros.labelled import folder as labelled_folder, LabelledEpisode
from sole_r1_ros.reward import protocol

# What the task's first object is, for readable traces (others say 'the object').
_OBJECTS = {
    'drawer': 'the drawer', 'door': 'the door', 'window': 'the window', 'button': 'the button',
    'handle': 'the handle', 'pick-place': 'the puck', 'push': 'the puck', 'faucet': 'the faucet',
    'lever': 'the lever', 'plate': 'the plate', 'coffee': 'the mug', 'dial': 'the dial',
    'reach': 'the goal position',
}
_MOVED_CM = 1.0
_AXES = (('right', 'left'), ('forward', 'back'), ('up', 'down'))


def object_name(task: str) -> str:
    """A short noun phrase for the task's main object."""
    for prefix, name in _OBJECTS.items():
        if task.startswith(prefix):
            return name
    return 'the object'


def _direction(delta_m: np.ndarray) -> str:
    words = []
    for value, (positive, negative) in zip(delta_m, _AXES):
        if abs(value) * 100 >= _MOVED_CM and abs(value) >= 0.4 * np.abs(delta_m).max():
            words.append(positive if value > 0 else negative)
    return ' and '.join(words) or 'slightly'


def reasoning_trace(task: str, goal: str, previous_state: np.ndarray, state: np.ndarray,
                    start_state: np.ndarray, previous_progress: float, progress: float) -> str:
    """Describe, from simulator state, what changed between two queried frames and what remains.

    States are 39-d Meta-World observations (hand xyz [0:3], gripper opening [3], first
    object xyz [4:7], goal xyz [36:39]); progress values are ground truth [%].
    """
    thing = 'the gripper' if task.startswith('reach') else object_name(task)
    hand = state[0:3] - previous_state[0:3]
    sentences = []
    distance_cm = float(np.linalg.norm(hand)) * 100
    if distance_cm < _MOVED_CM:
        sentences.append('Between the previous and the current frame the gripper barely moved.')
    else:
        sentences.append(f'Between the previous and the current frame the gripper moved about '
                         f'{distance_cm:.0f} cm {_direction(hand)}.')
    opening = float(state[3] - previous_state[3])
    if abs(opening) > 0.2:
        sentences.append('The gripper ' + ('opened.' if opening > 0 else 'closed.'))
    if task.startswith('reach'):
        goal_cm = float(np.linalg.norm(state[-3:] - state[0:3])) * 100
        sentences.append(f'The gripper is now about {goal_cm:.0f} cm from the goal position.')
    else:
        shift_cm = float(np.linalg.norm(state[4:7] - previous_state[4:7])) * 100
        reach_cm = float(np.linalg.norm(state[4:7] - state[0:3])) * 100
        if shift_cm >= _MOVED_CM:
            sentences.append(f'{thing.capitalize()} moved about {shift_cm:.0f} cm.')
        elif progress <= 0:
            sentences.append(f'{thing.capitalize()} has not moved yet; the gripper is about '
                             f'{reach_cm:.0f} cm from it.')
        else:
            sentences.append(f'{thing.capitalize()} did not move.')
    change = progress - previous_progress
    if progress >= 100:
        sentences.append(f'The task "{goal}" is complete.')
    else:
        trend = ('more of the task is done than before' if change >= 1 else
                 'some earlier progress was undone' if change <= -1 else
                 'progress has not changed')
        sentences.append(f'Compared with the previous timestep, {trend}; about '
                         f'{100 - round(progress)}% of "{goal}" still remains.')
    return ' '.join(sentences)


def episode_reasoning(episode: LabelledEpisode, previous: int, current: int) -> str | None:
    """Return the grounded ``<think>`` text of one query of a synthetic episode.

    None without state: the fine-tuning writer then uses its template.
    """
    states = episode.extras.get('state')
    if states is None:
        return None
    return reasoning_trace(
        episode.task_id, protocol.normalize_goal(episode.goal), states[previous],
        states[current], states[0], round(float(episode.progress[previous])),
        round(float(episode.progress[current])))


def export_finetune(root: str, out: str, tasks: Iterable[str] | None = None,
                    split: str | None = None, queries_per_episode: int = 4,
                    on_episode: Callable[[int], None] | None = None) -> int:
    """Write the selected episodes as a SOLE-R1 fine-tuning dataset; return the example count.

    The writer is ``finetune.episodes.write_dataset``, the one ``sole-r1 finetune prepare``
    uses, with the reasoning written from simulator state.
    """
    from sole_r1_ros.finetune.episodes import QuerySchedule, write_dataset

    schedule = QuerySchedule(num_queries=queries_per_episode)

    def episodes() -> Iterator[LabelledEpisode]:
        for episode in labelled_folder.iter_episodes(root, tasks=tasks, split=split):
            yield episode
            if on_episode is not None:
                on_episode(1)

    return write_dataset(episodes(), out, schedule, {'synth': os.path.abspath(root)},
                         reasoning=episode_reasoning)
