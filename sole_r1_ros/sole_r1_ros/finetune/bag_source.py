"""Labelled episodes from a recorded rosbag2 bag (``sole-r1 record``) plus a labels file.

The bag gives the frames (``recording.read_camera_episodes`` splits them at ``Episode``
messages); the labels file gives what a bag cannot, the true progress::

    {"task": "Close the drawer",                  default task of every episode
     "episodes": {"<episode_id>": {"progress": [...]},                    one per frame read
                  "<other_id>":   {"time_s": [0, 4.0], "progress": [0, 100],
                                   "task": "Open the drawer"}}}            keypoints, own task

Keypoint times are seconds since the episode's first external frame (header stamps). Frames
are counted after wrist pairing, so per-frame lists must match what ``read_camera_episodes``
returns; keypoints do not depend on that. Episodes without labels are skipped with a warning.
"""
import json
import logging
import os
from typing import Any, Iterator

from sole_r1_ros.finetune.episodes import QuerySchedule
from sole_r1_ros.labelled import LabelledEpisode, resolve_progress

logger = logging.getLogger(__name__)


def read_labels(path: str) -> dict[str, Any]:
    """Load and shape-check a bag labels file.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not an object with an ``episodes`` object.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no labels file at {path!r}')
    with open(path, encoding='utf-8') as stream:
        try:
            labels = json.load(stream)
        except json.JSONDecodeError as exc:
            raise ValueError(f'{path}: not JSON ({exc})') from exc
    if not isinstance(labels, dict) or not isinstance(labels.get('episodes'), dict):
        raise ValueError(f'{path}: needs an "episodes" object mapping episode ids to labels')
    return labels


def iter_episodes(bag: str, labels_path: str, schedule: QuerySchedule,
                  external_topic: str = 'camera/external/image_raw',
                  wrist_topic: str | None = 'camera/wrist/image_raw'
                  ) -> Iterator[LabelledEpisode]:
    """Yield each labelled episode of ``bag``.

    Raises:
        FileNotFoundError: no bag or labels file.
        ValueError: bad labels, an episode without a task, or no labelled episode at all.
    """
    from sole_r1_ros.recording import frames_near, read_camera_episodes

    labels = read_labels(labels_path)
    wrist_topic = wrist_topic if schedule.use_wrist else None
    # Two reads: the stamps first, then only the frames the queries show (decoded, a long
    # bag's frames did not fit in memory: 30 min of two 640x480 cameras at 30 Hz is 100 GB).
    skeleton = read_camera_episodes(bag, external_topic, wrist_topic,
                                    decode_frame=lambda stamp: False)
    recorded = read_camera_episodes(bag, external_topic, wrist_topic, decode_frame=frames_near([
        episode.stamps_ns[i] for episode in skeleton
        if episode.episode_id in labels['episodes'] and len(episode.stamps_ns) >= 2
        for i in {0, *schedule.steps(len(episode.stamps_ns))}]))
    found = 0
    for episode in recorded:
        entry = labels['episodes'].get(episode.episode_id)
        if entry is None:
            logger.warning('episode %s of %s has no labels; skipped', episode.episode_id, bag)
            continue
        if len(episode.external) < 2:   # a recording stopped right after an episode began
            logger.warning('episode %s of %s has %d frame(s), too few to query; skipped',
                           episode.episode_id, bag, len(episode.external))
            continue
        task = entry.get('task', labels.get('task'))
        if not isinstance(task, str):
            raise ValueError(f'episode {episode.episode_id}: no task text (give "task" at the '
                             'top of the labels file or in the episode entry)')
        start = episode.stamps_ns[0]
        times_s = [(stamp - start) / 1e9 for stamp in episode.stamps_ns]
        progress = resolve_progress(entry, times_s, f'episode {episode.episode_id}')
        found += 1
        yield LabelledEpisode(
            episode_id=episode.episode_id, goal=task, progress=progress,
            external=dict(enumerate(episode.external)),
            wrist=dict(enumerate(episode.wrist)) if episode.wrist else None)
    if not found:
        raise ValueError(f'none of the {len(recorded)} episode(s) in {bag} has labels in '
                         f'{labels_path} (ids in the bag: '
                         f'{[e.episode_id for e in recorded][:5]})')
