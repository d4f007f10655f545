"""Undoing episodes: successful training episodes played backwards under a goal that undoes them.

A drawer that closes, played backwards, is a drawer that opens: under "open the drawer" its
progress is 100 minus the original's. Trained beside the forward episodes, the same scene
with the same objects moving is progress under one goal and regress under another, so the
network must read the goal and the direction of motion, not only the scene.

A task is reversed only where its reverse is none of the 16 Meta-World tasks outside the
compact model's 34 (the 6 held out for selection, the 10 kept for evaluation): door-open
(-> door-close), door-unlock (-> door-lock), plate-slide-back (-> plate-slide),
plate-slide-side (-> plate-slide-back-side), push (-> push-back) and window-open
(-> window-close) are not, nor are pick-place, pick-place-wall and push-wall, whose puck
brought back from the goal to its start is push-back's motion in scenes that render as
push's (2026-12-07). Button presses, bin-picking (its own reverse) and sweep (the puck
leaves the table) have no reverse. The successful expert, noisy and pause episodes of the
training split are used; each reversed episode's ``meta['scene']`` is the task it came from.
"""
from typing import Callable, Iterable

import numpy as np

from sole_r1_ros.labelled import folder as labelled_folder, LabelledEpisode

UNDO_GOALS: dict[str, tuple[str, str, str]] = {
    'assembly-v3': ('lift the nut off the peg', 'take the nut off the peg',
                    'remove the ring from the peg'),
    'disassemble-v3': ('pick up the nut and place it onto the peg', 'put the nut on the peg',
                       'drop the ring over the peg'),
    'basketball-v3': ('take the ball out of the basket and put it back on the table',
                      'lift the ball out of the basket',
                      'bring the ball back down from the basket'),
    'coffee-pull-v3': ('push the mug under the coffee machine',
                       'slide the mug into the coffee machine',
                       'put the cup under the coffee machine'),
    'coffee-push-v3': ('pull the mug out from under the coffee machine',
                       'take the mug out of the coffee machine',
                       'pull the cup away from the coffee machine'),
    'drawer-open-v3': ('close the drawer', 'push the drawer shut', 'slide the drawer closed'),
    'drawer-close-v3': ('open the drawer', 'pull the drawer open', 'slide the drawer open'),
    'hammer-v3': ('pull the nail back out of the wall with the hammer',
                  'take the nail out with the hammer', 'put the hammer back down'),
    'hand-insert-v3': ('take the gripper out of the hole', 'pull the hand out of the hole',
                       'lift the gripper out of the hole'),
    'handle-press-v3': ('pull the handle up', 'lift the handle up', 'pull up on the handle'),
    'handle-pull-v3': ('press the handle down', 'push the handle down',
                       'press down on the handle'),
    'peg-insert-side-v3': ('unplug the peg from the hole sideways',
                           'pull the peg out of the hole sideways', 'unplug the peg'),
    'peg-unplug-side-v3': ('pick up the peg and insert it sideways into the hole',
                           'put the peg into the hole from the side',
                           'slide the peg sideways into the hole'),
    'pick-out-of-hole-v3': ('put the puck down into the hole', 'place the puck in the hole',
                            'drop the puck into the hole'),
    'reach-v3': ('move the gripper back from the goal position',
                 'move the hand away from the target',
                 'bring the end effector back from the goal'),
    'reach-wall-v3': ('move the gripper back over the wall away from the goal',
                      'move the hand back over the wall',
                      'reach back from the goal behind the wall'),
    'shelf-place-v3': ('take the puck off the shelf and put it back on the table',
                       'remove the puck from the shelf', 'lift the puck down from the shelf'),
    'soccer-v3': ('pull the ball back out of the goal', 'take the ball out of the net',
                  'drag the ball back from the goal'),
    'stick-pull-v3': ('grasp the stick and use it to push the box',
                      'use the stick to push the box', 'push the box with the stick'),
    'stick-push-v3': ('grasp the stick and use it to pull the box',
                      'use the stick to pull the box', 'pull the box with the stick'),
}
'''Task -> (goal that undoes it, two paraphrases).'''
REVERSED_BEHAVIOURS = ('expert', 'noisy', 'pause')


def undo_episode(episode: LabelledEpisode) -> LabelledEpisode:
    """``episode`` backwards, asked with its undoing goal; progress 100 - the original's.

    Raises:
        ValueError: the episode's task has no undoing goal.
    """
    if episode.task_id not in UNDO_GOALS:
        raise ValueError(f'{episode.task_id!r} has no undoing goal; tasks with one: '
                         f'{", ".join(sorted(UNDO_GOALS))}')
    progress = np.asarray(episode.progress, dtype=np.float64)
    reversed_progress = np.clip(100.0 - progress[::-1], 0.0, 100.0)
    reversed_progress[0] = 0.0
    count = len(progress)
    external = [episode.external[count - 1 - i] for i in range(count)]
    wrist = None if episode.wrist is None else [
        episode.wrist[count - 1 - i] for i in range(count)]
    goal, *paraphrases = UNDO_GOALS[episode.task_id]
    return LabelledEpisode(
        episode_id=episode.episode_id + '-reversed', goal=goal,
        progress=reversed_progress.tolist(), external=external, wrist=wrist,
        task=episode.task_id.replace('-v3', '-reversed-v3'), success=True, behaviour='expert',
        split='train', paraphrases=tuple(paraphrases), meta={'scene': episode.task_id})


def write_undo_episodes(source: str, out: str, tasks: Iterable[str] | None = None,
                        on_episode: Callable[[str], None] | None = None) -> int:
    """Write the undoing episodes of ``source``'s training split to ``out``; return how many.

    Args:
        tasks: tasks to reverse (default: every task with an undoing goal).

    Raises:
        ValueError: a task without an undoing goal, or nothing to reverse in ``source``.
    """
    tasks = sorted(UNDO_GOALS) if tasks is None else list(tasks)
    unknown = [t for t in tasks if t not in UNDO_GOALS]
    if unknown:
        raise ValueError(f'no undoing goal for {unknown}; tasks with one: '
                         f'{", ".join(sorted(UNDO_GOALS))}')
    written = 0
    for episode in labelled_folder.iter_episodes(source, tasks=tasks, split='train'):
        if not episode.succeeded or episode.behaviour not in REVERSED_BEHAVIOURS:
            continue
        reversed_episode = undo_episode(episode)
        labelled_folder.write_episode(out, reversed_episode)
        written += 1
        if on_episode is not None:
            on_episode(reversed_episode.episode_id)
    if not written:
        raise ValueError(f'no successful expert, noisy or pause training episode of '
                         f'{tasks} in {source} to reverse')
    return written
