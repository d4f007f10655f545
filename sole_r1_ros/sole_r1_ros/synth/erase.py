"""Robot-erased copies of labelled episodes, from the episodes and their robot masks.

``sole-r1 synth --robot-masks`` writes, for the same seed, the same episodes with each frame
replaced by the robot's mask; this module pairs the two folders episode by episode and writes
the episodes with the robot taken out (``camera.robot_eraser``: background memory on the fixed
external camera, gray on the wrist camera). Labels, goals, splits and extras are the source's.
"""
import dataclasses
from typing import Callable, Iterable

import numpy as np

from sole_r1_ros.camera.robot_eraser import erase_episode
from sole_r1_ros.labelled import folder as labelled_folder, LabelledEpisode


def erase_robot(episode: LabelledEpisode, masks: LabelledEpisode, grow: int = 1
                ) -> LabelledEpisode:
    """``episode`` without the robot, ``masks`` being the same episode rendered as robot masks.

    Raises:
        ValueError: the two are not the same episode (frame counts, progress labels or views
            differ).
    """
    where = f'episode {episode.episode_id}'
    if masks.num_frames != episode.num_frames:
        raise ValueError(f'{where}: {episode.num_frames} frames but {masks.num_frames} robot '
                         f'masks: the masks were made with other settings or another seed')
    if not np.allclose(np.asarray(masks.progress), np.asarray(episode.progress), atol=1e-3):
        raise ValueError(f'{where}: the mask episode has other progress labels: not the same '
                         f'episode (another seed, task variation or behaviour?)')
    if (episode.wrist is None) != (masks.wrist is None):
        raise ValueError(f'{where}: one of the two folders has a wrist view, the other not')
    erased = {}
    for view, fixed_camera in (('external', True), ('wrist', False)):
        if getattr(episode, view) is None:
            continue
        view_masks = np.stack(getattr(masks, view))
        if not np.isin(view_masks, (0, 255)).all():
            raise ValueError(f'{where}: its {view} "masks" are not black and white: not a '
                             f'--robot-masks folder')
        erased[view] = list(erase_episode(np.stack(getattr(episode, view)), view_masks,
                                          fixed_camera, grow=grow))
    return dataclasses.replace(
        episode, external=erased['external'], wrist=erased.get('wrist'),
        meta={**dict(episode.meta), 'robot_erased': True})


def write_erased_episodes(source: str, out: str, tasks: Iterable[str] | None = None,
                          on_episode: Callable[[str], None] | None = None, *,
                          masks: str) -> int:
    """Write every episode of ``source`` (all splits) without the robot to ``out``.

    ``masks`` is the folder of the same episodes made with ``--robot-masks``.

    Raises:
        ValueError: an episode of ``source`` has no mask episode in ``masks``, or they differ,
            or ``source`` has no episode of ``tasks``.
    """
    tasks = None if tasks is None else list(tasks)
    mask_entries = {entry['episode_id']: entry
                    for entry in labelled_folder.list_episodes(masks)}
    written = 0
    for episode in labelled_folder.iter_episodes(source, tasks=tasks):
        entry = mask_entries.get(episode.episode_id)
        if entry is None:
            raise ValueError(f'episode {episode.episode_id} of {source} has no robot masks in '
                             f'{masks}: make them with the same sole-r1 synth command plus '
                             f'--robot-masks')
        mask_episode = labelled_folder.load_episode(masks, entry)
        labelled_folder.write_episode(out, erase_robot(episode, mask_episode))
        written += 1
        if on_episode is not None:
            on_episode(episode.episode_id)
    if not written:
        raise ValueError(f'no episode{" of " + ", ".join(tasks) if tasks else ""} in {source}')
    return written
