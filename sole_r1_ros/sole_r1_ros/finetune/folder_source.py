"""Labelled episodes from a folder of per-episode videos (a small LeRobot-like layout).

::

    ROOT/episodes/<episode_id>/external.mp4   external camera (any video OpenCV decodes)
    ROOT/episodes/<episode_id>/wrist.mp4      optional wrist camera, same frame count
    ROOT/episodes/<episode_id>/labels.json    {"task": "Close the drawer",
                                               "progress": [0, 0, 3, ...]}   one per frame
                                              or {"task": ..., "time_s": [...], "progress": [...]}

``finetune.labels`` describes the label forms; keypoint times are frame index / video fps.
Only the first frame and the queried frames are kept in memory.
"""
import json
import logging
import os
from typing import Iterator

import numpy as np

from sole_r1_ros.finetune.episodes import LabelledEpisode, QuerySchedule
from sole_r1_ros.finetune.labels import resolve_progress

logger = logging.getLogger(__name__)

EPISODES_DIR = 'episodes'
EXTERNAL_VIDEO = 'external.mp4'
WRIST_VIDEO = 'wrist.mp4'
LABELS = 'labels.json'
_DEFAULT_FPS = 10.0


def _capture(path: str):
    import cv2

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f'cannot read video {path}')
    return capture


def video_info(path: str) -> tuple[int, float]:
    """(decoded frame count, fps) of a video; counting decodes it, container counts can lie."""
    import cv2

    capture = _capture(path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count, (fps if fps and np.isfinite(fps) and fps > 0 else _DEFAULT_FPS)


def read_frames(path: str, wanted: set[int]) -> dict[int, np.ndarray]:
    """RGB frames of ``path`` at the indices in ``wanted``."""
    import cv2

    capture = _capture(path)
    frames: dict[int, np.ndarray] = {}
    index = 0
    try:
        while len(frames) < len(wanted) and capture.grab():
            if index in wanted:
                ok, frame = capture.retrieve()
                if not ok:
                    raise ValueError(f'cannot decode frame {index} of {path}')
                frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    return frames


def load_episode(folder: str, schedule: QuerySchedule) -> LabelledEpisode:
    """Read one episode folder.

    Raises:
        FileNotFoundError: the external video or labels.json is missing.
        ValueError: unreadable videos, frame counts that differ, or bad labels.
    """
    episode_id = os.path.basename(os.path.normpath(folder))
    external_path = os.path.join(folder, EXTERNAL_VIDEO)
    labels_path = os.path.join(folder, LABELS)
    for path in (external_path, labels_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'episode {episode_id}: missing {path}')
    with open(labels_path, encoding='utf-8') as stream:
        labels = json.load(stream)
    if not isinstance(labels, dict) or not isinstance(labels.get('task'), str):
        raise ValueError(f'{labels_path}: needs a "task" string')
    num_frames, fps = video_info(external_path)
    wrist_path = os.path.join(folder, WRIST_VIDEO)
    has_wrist = schedule.use_wrist and os.path.isfile(wrist_path)
    if has_wrist and video_info(wrist_path)[0] != num_frames:
        raise ValueError(f'episode {episode_id}: wrist.mp4 has {video_info(wrist_path)[0]} '
                         f'frames, external.mp4 has {num_frames}')
    progress = resolve_progress(labels, [i / fps for i in range(num_frames)],
                                f'episode {episode_id}')
    wanted = {0, *schedule.steps(num_frames)}
    return LabelledEpisode(
        episode_id=episode_id, goal=labels['task'], progress=progress,
        external=read_frames(external_path, wanted),
        wrist=read_frames(wrist_path, wanted) if has_wrist else None)


def iter_episodes(root: str, schedule: QuerySchedule) -> Iterator[LabelledEpisode]:
    """Yield the episodes under ``ROOT/episodes`` in sorted order.

    Raises:
        FileNotFoundError: ``ROOT/episodes`` does not exist or holds no episode folder.
    """
    folder = os.path.join(root, EPISODES_DIR)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'no {EPISODES_DIR}/ folder in {root!r} (layout: '
                                f'{EPISODES_DIR}/<id>/{EXTERNAL_VIDEO} + {LABELS})')
    names = sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n)))
    if not names:
        raise FileNotFoundError(f'{folder} holds no episode folders')
    for name in names:
        yield load_episode(os.path.join(folder, name), schedule)
