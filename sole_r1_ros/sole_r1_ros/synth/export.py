"""Export synthetic episodes as SOLE-R1 fine-tuning examples (JSONL + PNG composites).

Each example is one query exactly as the reward engine would pose it: the composite image from
``reward.protocol`` (first | previous | current, external over wrist, resized for Qwen), the
system and user messages with the previous progress filled in, and a target reply whose
``<think>`` is written from simulator state (how the hand, gripper and object moved between the
previous and current frame, and what is left to do) ending in ``<answer>N%</answer>`` with the
ground-truth progress. Schema: ``FORMAT.md`` beside this file.
"""
import json
import os
from typing import Callable, Iterable, Sequence

import numpy as np

from sole_r1_ros.reward import offline_query_steps, protocol
from sole_r1_ros.synth import format as fmt

EXPORT_FORMAT = 'sole_r1_sft'
EXPORT_VERSION = 1

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


def export_sole_r1(root: str, out: str, tasks: Iterable[str] | None = None,
                   split: str | None = None, queries_per_episode: int = 4,
                   on_episode: Callable[[int], None] | None = None) -> int:
    """Write fine-tuning examples for the selected episodes; return how many were written.

    Writes ``out/examples.jsonl`` (one JSON object per line, appended to in episode order;
    rewritten from scratch on every call) and ``out/images/<id>.png``.
    """
    if queries_per_episode < 1:
        raise ValueError(f'queries_per_episode must be >= 1, got {queries_per_episode}')
    manifest = fmt.read_manifest(root)
    entries = fmt.select_episodes(manifest, tasks, split)
    os.makedirs(os.path.join(out, 'images'), exist_ok=True)
    count = 0
    with open(os.path.join(out, 'examples.jsonl'), 'w', encoding='utf-8') as stream:
        for entry in entries:
            episode = fmt.load_episode(root, entry['episode_id'])
            for example in episode_examples(episode, queries_per_episode, out):
                stream.write(json.dumps(example) + '\n')
                count += 1
            if on_episode is not None:
                on_episode(1)
    with open(os.path.join(out, 'export.json'), 'w', encoding='utf-8') as stream:
        json.dump({'format': EXPORT_FORMAT, 'version': EXPORT_VERSION, 'source': root,
                   'examples': count, 'queries_per_episode': queries_per_episode}, stream,
                  indent=1)
    return count


def episode_examples(episode: fmt.Episode, queries: int, out: str) -> list[dict]:
    """The examples of one episode; saves their composite PNGs under ``out/images``."""
    arrays, meta = episode.arrays, episode.meta
    steps = offline_query_steps(episode.num_frames, num_queries=queries)
    examples = []
    previous_index, previous_progress = 0, 0
    for index in steps:
        progress = int(round(float(arrays['progress'][index])))
        composite = protocol.build_composite(
            arrays['external'][0], arrays['external'][previous_index],
            arrays['external'][index], arrays['wrist'][0], arrays['wrist'][previous_index],
            arrays['wrist'][index])
        example_id = f'{episode.episode_id}_f{index:04d}'
        image_path = os.path.join('images', f'{example_id}.png')
        protocol.to_model_image(composite).save(os.path.join(out, image_path))
        messages = protocol.build_messages(meta['goal'], previous_progress)
        think = reasoning_trace(meta['task'], protocol.normalize_goal(meta['goal']),
                                arrays['state'][previous_index], arrays['state'][index],
                                arrays['state'][0], previous_progress, progress)
        completion = f'<think>{think}</think><answer>{progress}%</answer>'
        examples.append({
            'id': example_id, 'episode_id': episode.episode_id, 'task': meta['task'],
            'behaviour': meta['behaviour'], 'goal': meta['goal'], 'frame': index,
            'env_step': int(arrays['frame_steps'][index]), 'previous_frame': previous_index,
            'previous_progress': previous_progress, 'progress': progress,
            'images': [image_path],
            'messages': [*messages, {'role': 'assistant', 'content': completion}],
            'completion': completion})
        previous_index, previous_progress = index, progress
    return examples


def read_examples(out: str) -> Sequence[dict]:
    """Load an export's examples (for fine-tuning code and tests)."""
    with open(os.path.join(out, 'examples.jsonl'), encoding='utf-8') as stream:
        return [json.loads(line) for line in stream if line.strip()]
