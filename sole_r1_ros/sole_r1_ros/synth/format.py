"""On-disk format of a synthetic episode dataset (see ``FORMAT.md`` beside this file).

One compressed ``.npz`` per episode holds the frames and per-frame labels; a ``.json`` sidecar
with the episode's metadata is written after it and marks the episode finished, so an interrupted
run resumes by skipping episodes that have a sidecar. ``manifest.json`` indexes the sidecars and
is rebuilt from them at the end of every run.
"""
from dataclasses import dataclass
import json
import os
from typing import Any, Iterable, Mapping

import numpy as np

FORMAT_NAME = 'sole_r1_synth'
FORMAT_VERSION = 1
MANIFEST = 'manifest.json'
EPISODES_DIR = 'episodes'

FRAME_ARRAYS: tuple[str, ...] = (
    'external', 'wrist', 'frame_steps', 'progress', 'success', 'state', 'ee_position',
    'gripper_opening', 'joint_positions')
'''Arrays with one entry per stored frame (the first axis), in every episode file.'''
STEP_ARRAYS: tuple[str, ...] = ('step_progress', 'step_success', 'actions')
'''Arrays with one entry per env step: progress/success at steps 0..T, actions 1..T.'''


@dataclass(frozen=True, eq=False)
class Episode:
    """One loaded episode: metadata plus its arrays (frames are uint8, labels float32)."""

    meta: Mapping[str, Any]
    '''The sidecar JSON (episode_id, task, goal, behaviour, split, success, ...).'''
    arrays: Mapping[str, np.ndarray]
    '''``FRAME_ARRAYS`` and ``STEP_ARRAYS`` by name.'''

    @property
    def episode_id(self) -> str:
        return str(self.meta['episode_id'])

    @property
    def num_frames(self) -> int:
        return int(self.arrays['external'].shape[0])


def episode_paths(root: str, episode_id: str) -> tuple[str, str]:
    """Return (npz path, sidecar json path) of an episode under dataset folder ``root``."""
    folder = os.path.join(root, EPISODES_DIR)
    return os.path.join(folder, f'{episode_id}.npz'), os.path.join(folder, f'{episode_id}.json')


def is_finished(root: str, episode_id: str) -> bool:
    """True when both files of the episode exist (the sidecar is written last)."""
    npz_path, json_path = episode_paths(root, episode_id)
    return os.path.isfile(npz_path) and os.path.isfile(json_path)


def write_episode(root: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write one episode atomically: npz first, then the sidecar (temp file + rename each).

    Raises:
        ValueError: an array is missing or the frame arrays disagree in length.
    """
    missing = [name for name in FRAME_ARRAYS + STEP_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f'episode {meta.get("episode_id")}: missing arrays {missing}')
    lengths = {name: len(arrays[name]) for name in FRAME_ARRAYS}
    if len(set(lengths.values())) != 1:
        raise ValueError(f'episode {meta.get("episode_id")}: frame arrays differ in length '
                         f'{lengths}')
    npz_path, json_path = episode_paths(root, str(meta['episode_id']))
    os.makedirs(os.path.dirname(npz_path), exist_ok=True)
    temp = npz_path + '.tmp.npz'
    np.savez_compressed(temp, **arrays)
    os.replace(temp, npz_path)
    temp = json_path + '.tmp'
    with open(temp, 'w', encoding='utf-8') as stream:
        json.dump(dict(meta), stream, indent=1)
    os.replace(temp, json_path)


def read_meta(root: str, episode_id: str) -> dict[str, Any]:
    """Return an episode's sidecar metadata."""
    with open(episode_paths(root, episode_id)[1], encoding='utf-8') as stream:
        return json.load(stream)


def load_episode(root: str, episode_id: str) -> Episode:
    """Load one finished episode.

    Raises:
        FileNotFoundError: the episode is missing or unfinished.
    """
    npz_path, _ = episode_paths(root, episode_id)
    if not is_finished(root, episode_id):
        raise FileNotFoundError(f'episode {episode_id} is not finished in {root}')
    with np.load(npz_path) as data:
        arrays = {name: data[name] for name in data.files}
    return Episode(read_meta(root, episode_id), arrays)


def write_manifest(root: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild ``manifest.json`` from every finished episode's sidecar and return it."""
    folder = os.path.join(root, EPISODES_DIR)
    episodes = []
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if name.endswith('.json') and not name.endswith('.tmp'):
                episode_id = name[:-len('.json')]
                if is_finished(root, episode_id):
                    episodes.append(read_meta(root, episode_id))
    manifest = {'format': FORMAT_NAME, 'version': FORMAT_VERSION, 'config': dict(config),
                'episodes': episodes}
    temp = os.path.join(root, MANIFEST + '.tmp')
    with open(temp, 'w', encoding='utf-8') as stream:
        json.dump(manifest, stream, indent=1)
    os.replace(temp, os.path.join(root, MANIFEST))
    return manifest


def read_manifest(root: str) -> dict[str, Any]:
    """Return the dataset's manifest.

    Raises:
        FileNotFoundError: ``root`` has no manifest.json.
        ValueError: the manifest is not this format or a newer version.
    """
    path = os.path.join(root, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no {MANIFEST} in {root}: not a synthetic dataset folder '
                                '(make one with `sole-r1 synth`)')
    with open(path, encoding='utf-8') as stream:
        manifest = json.load(stream)
    if manifest.get('format') != FORMAT_NAME or manifest.get('version', 0) > FORMAT_VERSION:
        raise ValueError(f'{path}: format {manifest.get("format")!r} version '
                         f'{manifest.get("version")} is not {FORMAT_NAME} <= {FORMAT_VERSION}')
    return manifest


def select_episodes(manifest: Mapping[str, Any], tasks: Iterable[str] | None = None,
                    split: str | None = None, behaviours: Iterable[str] | None = None
                    ) -> list[dict[str, Any]]:
    """Return the manifest entries matching every given filter (None: no filter)."""
    task_set = None if tasks is None else set(tasks)
    behaviour_set = None if behaviours is None else set(behaviours)
    return [e for e in manifest['episodes']
            if (task_set is None or e['task'] in task_set)
            and (split is None or split == 'all' or e['split'] == split)
            and (behaviour_set is None or e['behaviour'] in behaviour_set)]
