"""The one folder layout of labelled episodes (``FORMAT.md`` beside this file).

::

    ROOT/episodes/<episode_id>/labels.json   {"goal": "close the drawer", "progress": [...]}
    ROOT/episodes/<episode_id>/frames.npz    external [+ wrist] [+ per-frame extras] (lossless)
                         or external.mp4 [+ wrist.mp4]                                (videos)

``labels.json`` is written last, so a folder without it is an unfinished episode and is
skipped (a synthesis run resumes there). Two older layouts are still read, each with a
deprecation warning: the ``NAME.mp4`` + ``NAME.json`` folders of ``sole-r1 eval reward`` and
the ``manifest.json`` datasets of the first ``sole-r1 synth``.
"""
import json
import logging
import os
from typing import Any, Callable, Iterable, Iterator, Mapping
import warnings
import zipfile

import numpy as np

from sole_r1_ros.labelled import video
from sole_r1_ros.labelled.episode import LabelledEpisode
from sole_r1_ros.labelled.labels import resolve_progress

logger = logging.getLogger(__name__)

FORMAT_NAME = 'sole_r1_labelled'
FORMAT_VERSION = 1
EPISODES_DIR = 'episodes'
LABELS = 'labels.json'
FRAMES = 'frames.npz'
EXTERNAL_VIDEO = 'external.mp4'
WRIST_VIDEO = 'wrist.mp4'
_VIEWS = ('external', 'wrist')
LOSSLESS_MAX_PX = 128
'''``write_episode(videos=None)`` keeps frames up to this size lossless (a 64 px frame in an MP4
loses much of what a 64 px progress model looks at).'''
# Keys of labels.json that LabelledEpisode holds as fields; the rest goes to ``meta``.
_FIELDS = ('goal', 'progress', 'time_s', 'task', 'success', 'behaviour', 'split', 'paraphrases')
_LEGACY_SYNTH = 'manifest.json'
_FINETUNE_HEADER = 'dataset.json'   # finetune.examples.HEADER (that layer sits above this one)
_LEGACY_VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')

Wanted = Callable[[int], Iterable[int]]
'''Given an episode's frame count, the frame indices to load (None loads all).'''
VideoTransform = Callable[[np.ndarray], np.ndarray]
'''Applied to each frame of a video as it is decoded (e.g. letterboxing to a network's size), so
a long camera-resolution recording is never held whole; ``frames.npz`` is read as stored.'''


def episode_dir(root: str, episode_id: str) -> str:
    if not episode_id or '/' in episode_id or episode_id in ('.', '..'):
        raise ValueError(f'episode id {episode_id!r} cannot name a folder')
    return os.path.join(root, EPISODES_DIR, episode_id)


def is_finished(root: str, episode_id: str) -> bool:
    """True when the episode's labels.json exists (it is written after the frames)."""
    return os.path.isfile(os.path.join(episode_dir(root, episode_id), LABELS))


def check_not_taken(root: str | None, episode_ids: Iterable[str], source_key: str,
                    source: str) -> None:
    """Refuse to write over an episode of ``root`` that another recording wrote.

    Scoring the same bag or video again replaces its episodes; one of another, under the same
    name (two bags without episode messages, two videos of one name), would be lost without a
    word. ``source_key``: the labels.json key naming the recording ('bag', 'video').

    Raises:
        ValueError: naming the episode, the recording it holds and what to do.
    """
    if not root:
        return
    for episode_id in episode_ids:
        if not is_finished(root, episode_id):
            continue
        theirs = read_labels(root, episode_id).get(source_key)
        if theirs is None or os.path.realpath(str(theirs)) != os.path.realpath(source):
            held = theirs or 'another source'
            raise ValueError(f'{root} already holds episode {episode_id!r}, of {held}; {source} '
                             'would replace it: write to another folder, or move it away first')


def write_episode(root: str, episode: LabelledEpisode, videos: bool | None = False,
                  fps: float = video.DEFAULT_FPS) -> str:
    """Write one episode: frames first, labels.json last (each via a temporary file).

    Args:
        videos: store MP4 videos (small, lossy) instead of ``frames.npz`` (lossless); extras
            need ``frames.npz``. None: videos for frames larger than ``LOSSLESS_MAX_PX``, where
            compression artefacts are small next to the picture.

    Returns:
        The episode folder.

    Raises:
        ValueError: frames missing for some labelled frame, or extras with videos.
    """
    folder = episode_dir(root, episode.episode_id)
    os.makedirs(folder, exist_ok=True)
    count = episode.num_frames
    views = {'external': _all_frames(episode.external, count, episode, 'external')}
    if episode.wrist is not None:
        views['wrist'] = _all_frames(episode.wrist, count, episode, 'wrist')
    if videos is None:
        videos = max(views['external'][0].shape[:2]) > LOSSLESS_MAX_PX and not episode.extras
    if videos:
        if episode.extras:
            raise ValueError(f'episode {episode.episode_id}: extras need frames.npz, not video')
        for name, frames in views.items():
            temp = os.path.join(folder, f'.{name}.tmp.mp4')
            video.write_video(temp, frames, fps)
            os.replace(temp, os.path.join(folder, f'{name}.mp4'))
    else:
        temp = os.path.join(folder, '.frames.tmp.npz')
        np.savez_compressed(temp, **{k: np.stack(v) for k, v in views.items()},
                            **{k: np.asarray(v) for k, v in episode.extras.items()})
        os.replace(temp, os.path.join(folder, FRAMES))
    labels = {**dict(episode.meta), 'goal': episode.goal,
              'progress': [round(float(v), 3) for v in episode.progress],
              'task': episode.task_id, 'behaviour': episode.behaviour}
    if episode.split:
        labels['split'] = episode.split
    if episode.success is not None:
        labels['success'] = bool(episode.success)
    if episode.paraphrases:
        labels['paraphrases'] = list(episode.paraphrases)
    if videos:
        labels['fps'] = float(fps)
    temp = os.path.join(folder, '.labels.tmp.json')
    with open(temp, 'w', encoding='utf-8') as stream:
        json.dump(labels, stream, indent=1)
    os.replace(temp, os.path.join(folder, LABELS))
    return folder


def _all_frames(frames: Any, count: int, episode: LabelledEpisode, view: str) -> list:
    try:
        return [np.asarray(frames[i], dtype=np.uint8) for i in range(count)]
    except (KeyError, IndexError) as exc:
        raise ValueError(f'episode {episode.episode_id}: {view} frames do not cover its '
                         f'{count} labels') from exc


def read_labels(root: str, episode_id: str) -> dict[str, Any]:
    """The labels.json of one episode, with ``episode_id`` added.

    Raises:
        FileNotFoundError: no labels.json; ValueError: not a JSON object with a goal.
    """
    path = os.path.join(episode_dir(root, episode_id), LABELS)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'episode {episode_id}: missing {path}')
    try:
        with open(path, encoding='utf-8') as stream:
            labels = json.load(stream)
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path}: not JSON: {exc}') from exc
    if not isinstance(labels, dict):
        raise ValueError(f'{path}: must hold a JSON object')
    # The first version of this layout (finetune's episode folders) named the goal "task".
    goal = labels.get('goal', labels.get('task'))
    if not isinstance(goal, str):
        raise ValueError(f'{path}: needs a "goal" string (the task in words)')
    labels['goal'] = goal
    split = labels.get('split', '')
    if split not in ('', 'train', 'val'):   # 'test' or 'Val' was trained on without a word
        raise ValueError(f'{path}: "split" must be "train", "val" or absent, got {split!r}')
    paraphrases = labels.get('paraphrases', [])
    if not (isinstance(paraphrases, list) and all(isinstance(p, str) for p in paraphrases)):
        # a string was read as one phrasing per character
        raise ValueError(f'{path}: "paraphrases" must be a list of strings, got '
                         f'{paraphrases!r}')
    labels['episode_id'] = episode_id
    return labels


def list_episodes(root: str) -> list[dict[str, Any]]:
    """The labels of every finished episode under ``root``, sorted by episode id.

    Raises:
        FileNotFoundError: ``root`` has no ``episodes/`` folder.
    """
    folder = os.path.join(root, EPISODES_DIR)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'no {EPISODES_DIR}/ folder in {root!r} (layout: '
                                f'{EPISODES_DIR}/<id>/{LABELS} + {FRAMES} or {EXTERNAL_VIDEO})')
    return [read_labels(root, name) for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name, LABELS))]


def known_tasks(roots: Iterable[str]) -> set[str]:
    """Every task name (or goal, where an episode has no task) of the episodes in ``roots``.

    Folders of the older layouts are not looked into.
    """
    known: set[str] = set()
    for root in roots:
        if os.path.isdir(os.path.join(root, EPISODES_DIR)):
            known.update(entry.get('task') or entry['goal'] for entry in list_episodes(root))
    return known


def split_task_names(text: str, roots: Iterable[str]) -> list[str]:
    """A comma-separated ``--tasks`` value as names, keeping commas that a task of ``roots`` has.

    ``score-bag`` names an episode's task by its goal, which may hold a comma ("close the
    drawer, then let go"): split at every comma, it selected nothing. The longest run of pieces
    that names a known task is taken whole.
    """
    pieces, known = text.split(','), known_tasks(roots)
    names, start = [], 0
    while start < len(pieces):
        end = next((end for end in range(len(pieces), start + 1, -1)
                    if ','.join(pieces[start:end]).strip() in known), start + 1)
        name = ','.join(pieces[start:end]).strip()
        if name:
            names.append(name)
        start = end
    return names


def unknown_tasks(roots: Iterable[str], names: Iterable[str]) -> list[str]:
    """The task names (or goals) of ``names`` that no episode in ``roots`` has, sorted.

    For a filter's typo: a list of tasks with one misspelt otherwise selects the rest without a
    word. Folders of the older layouts are not looked into (nothing is reported for them).
    """
    roots = list(roots)
    if not all(os.path.isdir(os.path.join(root, EPISODES_DIR)) for root in roots):
        return []
    return sorted(set(names) - known_tasks(roots))


def select(entries: Iterable[Mapping[str, Any]], tasks: Iterable[str] | None = None,
           split: str | None = None, behaviours: Iterable[str] | None = None,
           limit: int | None = None, exclude_tasks: Iterable[str] = ()
           ) -> list[Mapping[str, Any]]:
    """Return the entries matching every filter, at most ``limit`` per task, in order.

    None or split 'all': no filter; an entry without a split passes any. ``exclude_tasks``
    drops those tasks whatever ``tasks`` says.
    """
    tasks = None if tasks is None else set(tasks)
    excluded = set(exclude_tasks)
    behaviours = None if behaviours is None else set(behaviours)
    counts: dict[str, int] = {}
    chosen = []
    for entry in entries:
        task = entry.get('task') or entry['goal']
        if (tasks is not None and task not in tasks) or task in excluded:
            continue
        if split not in (None, 'all') and entry.get('split') not in (None, '', split):
            continue
        if behaviours is not None and entry.get('behaviour', 'expert') not in behaviours:
            continue
        counts[task] = counts.get(task, 0) + 1
        if limit is None or counts[task] <= limit:
            chosen.append(entry)
    return chosen


def load_episode(root: str, entry: Mapping[str, Any], wanted: Wanted | None = None,
                 use_wrist: bool = True, video_transform: VideoTransform | None = None
                 ) -> LabelledEpisode:
    """Load one episode of the folder layout from its labels (``list_episodes`` entry).

    Raises:
        FileNotFoundError: no frames; ValueError: unreadable frames or bad labels.
    """
    episode_id = entry['episode_id']
    folder = episode_dir(root, episode_id)
    npz_path = os.path.join(folder, FRAMES)
    where = f'episode {episode_id}'
    extras: dict[str, np.ndarray] = {}
    if os.path.isfile(npz_path):
        try:
            with np.load(npz_path) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # truncated, foreign
            raise ValueError(f'{where}: unreadable {npz_path}: {exc}') from exc
        if 'external' not in arrays:
            raise ValueError(f'{npz_path}: no "external" frames')
        count = len(arrays['external'])
        frames = {view: arrays.pop(view) for view in _VIEWS if view in arrays}
        if 'wrist' in frames and len(frames['wrist']) != count:   # as _videos refuses it
            raise ValueError(f'{npz_path}: {len(frames["wrist"])} wrist frames for {count} '
                             'external ones: the two views must be paired frame by frame')
        extras = arrays
        if 'time_s' in entry and 'fps' not in entry:
            # read at the default 10 fps, a 30 fps episode's keypoints landed three times late
            raise ValueError(f'{where}: time_s keypoints need the frames\' rate: give "fps" '
                             'in its labels.json (an npz does not say it)')
        fps = float(entry.get('fps', video.DEFAULT_FPS))
    else:
        frames, count, fps = _videos(folder, where, wanted, use_wrist, video_transform)
    progress = resolve_progress(entry, [i / fps for i in range(count)], where)
    if not use_wrist:
        frames.pop('wrist', None)
    return LabelledEpisode(
        episode_id=episode_id, goal=entry['goal'], progress=progress,
        external=frames['external'], wrist=frames.get('wrist'), task=entry.get('task') or '',
        success=entry.get('success'), behaviour=entry.get('behaviour', 'expert'),
        split=entry.get('split', ''), paraphrases=tuple(entry.get('paraphrases', ())),
        extras=extras, meta={k: v for k, v in entry.items() if k not in _FIELDS})


def _videos(folder: str, where: str, wanted: Wanted | None, use_wrist: bool,
            transform: VideoTransform | None) -> tuple[dict[str, Any], int, float]:
    external = os.path.join(folder, EXTERNAL_VIDEO)
    if not os.path.isfile(external):
        raise FileNotFoundError(f'{where}: no {FRAMES} or {EXTERNAL_VIDEO} in {folder}')
    count, fps = video.count_frames(external), video.video_fps(external)
    paths = {'external': external}
    wrist = os.path.join(folder, WRIST_VIDEO)
    if use_wrist and os.path.isfile(wrist):
        wrist_count = video.count_frames(wrist)
        if wrist_count != count:
            raise ValueError(f'{where}: {WRIST_VIDEO} has {wrist_count} frames, '
                             f'{EXTERNAL_VIDEO} has {count}')
        paths['wrist'] = wrist
    indices = None if wanted is None else {0, *wanted(count)}
    return {k: video.read_frames(p, indices, transform) for k, p in paths.items()}, count, fps


def iter_episodes(root: str, tasks: Iterable[str] | None = None, split: str | None = None,
                  behaviours: Iterable[str] | None = None, limit: int | None = None,
                  wanted: Wanted | None = None, use_wrist: bool = True,
                  video_transform: VideoTransform | None = None,
                  exclude_tasks: Iterable[str] = ()) -> Iterator[LabelledEpisode]:
    """Yield the matching episodes of any layout this module reads, one at a time.

    ``video_transform`` applies to the videos of the folder layout (``VideoTransform``).
    Episodes of ``exclude_tasks`` are skipped before their frames are read.

    Raises:
        FileNotFoundError: ``root`` holds no labelled episodes.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f'no {EPISODES_DIR}/ folder in {root!r}: no such folder')
    if os.path.isfile(os.path.join(root, _FINETUNE_HEADER)):   # not a legacy NAME.json
        raise ValueError(f'{root} is a SOLE-R1 fine-tuning dataset (sole-r1 finetune prepare), '
                         'not labelled episodes: give the folder it was prepared from')
    if os.path.isfile(os.path.join(root, _LEGACY_SYNTH)):
        yield from _legacy_synth(root, tasks, split, behaviours, limit, use_wrist,
                                 exclude_tasks)
        return
    if not os.path.isdir(os.path.join(root, EPISODES_DIR)) and _legacy_video_names(root):
        episodes = _legacy_videos(root, use_wrist)
        chosen = {e['episode_id'] for e in select(
            [{'episode_id': e.episode_id, 'goal': e.goal, 'behaviour': e.behaviour}
             for e in episodes], tasks, split, behaviours, limit, exclude_tasks)}
        yield from (e for e in episodes if e.episode_id in chosen)
        return
    entries = select(list_episodes(root), tasks, split, behaviours, limit, exclude_tasks)
    if not entries:
        logger.warning('no labelled episode in %s matches the filters', root)
    largest, frames = 0.0, 0
    for entry in entries:
        episode = load_episode(root, entry, wanted, use_wrist, video_transform)
        largest = max(largest, float(np.max(np.abs(episode.progress))))
        frames += episode.num_frames
        yield episode
    if 0.0 < largest <= 1.0 and frames > 5:
        # Fractions for percentages: 0.9 is 0.9 %, and a model trained on them learns nothing.
        # Said of the folder: one episode that barely moved is within [-1, 1] rightly.
        logger.warning('%s: every label of its %d episode(s) is within [-1, 1]: labels are '
                       'percentages (0-100); if these are fractions, multiply them by 100',
                       root, len(entries))


def load_episodes(root: str, **filters: Any) -> list[LabelledEpisode]:
    """``iter_episodes`` as a list."""
    return list(iter_episodes(root, **filters))


# ------------------------------------------------------------------ deprecated layouts
def _deprecated(root: str, what: str) -> None:
    warnings.warn(f'{root}: {what} is a deprecated layout; it is still read, but write new data '
                  f'as {EPISODES_DIR}/<id>/{LABELS} + {FRAMES} or {EXTERNAL_VIDEO} '
                  '(sole_r1_ros/labelled/FORMAT.md)', FutureWarning, stacklevel=3)


def _legacy_video_names(root: str) -> list[str]:
    return sorted(n for n in os.listdir(root) if n.endswith('.json'))


def _legacy_videos(root: str, use_wrist: bool) -> list[LabelledEpisode]:
    """``NAME.mp4`` + ``NAME.json`` ({"task description", "ground-truth rewards"}) folders."""
    _deprecated(root, 'NAME.mp4 + NAME.json ("task description", "ground-truth rewards")')
    return [_legacy_video(root, name, use_wrist) for name in _legacy_video_names(root)]


def _legacy_video(root: str, name: str, use_wrist: bool) -> LabelledEpisode:
    path = os.path.join(root, name)
    with open(path, encoding='utf-8') as stream:
        data = json.load(stream)
    try:
        goal = str(data['task description'])
        rewards = np.asarray(data['ground-truth rewards'], dtype=np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f'{path}: needs "task description" and a list of "ground-truth '
                         f'rewards": {exc}') from exc
    if len(rewards) < 2 or not np.all(np.isfinite(rewards)):
        raise ValueError(f'{path}: need at least 2 finite ground-truth rewards')
    if np.abs(rewards).max() <= 1.0:  # fractions
        rewards = rewards * 100.0
    stem = name[:-len('.json')]
    candidates = [data['video']] if data.get('video') else [
        stem + ext for ext in _LEGACY_VIDEO_EXTENSIONS]
    found = [c for c in candidates if os.path.isfile(os.path.join(root, c))]
    if not found:
        raise FileNotFoundError(f'no video for {name} in {root} (tried {candidates})')
    external = video.read_frames(os.path.join(root, found[0]))
    wrist = (video.read_frames(os.path.join(root, data['wrist video']))
             if use_wrist and data.get('wrist video') else None)
    for label, frames in (('video', external), ('wrist video', wrist)):
        if frames is not None and len(frames) != len(rewards):
            raise ValueError(f'{path}: {label} has {len(frames)} frames but there are '
                             f'{len(rewards)} ground-truth rewards')
    return LabelledEpisode(
        episode_id=stem, goal=goal, progress=list(rewards), external=external, wrist=wrist,
        success=data.get('success'), behaviour='expert' if data.get('expert', True) else 'other',
        meta={'video': os.path.join(root, found[0])})


def _legacy_synth(root: str, tasks: Iterable[str] | None, split: str | None,
                  behaviours: Iterable[str] | None, limit: int | None, use_wrist: bool,
                  exclude_tasks: Iterable[str]) -> Iterator[LabelledEpisode]:
    """Datasets of the first ``sole-r1 synth`` (manifest.json + episodes/<id>.npz + .json)."""
    _deprecated(root, 'manifest.json + episodes/<id>.npz (the first sole-r1 synth)')
    with open(os.path.join(root, _LEGACY_SYNTH), encoding='utf-8') as stream:
        manifest = json.load(stream)
    for entry in select(manifest['episodes'], tasks, split, behaviours, limit, exclude_tasks):
        with np.load(os.path.join(root, EPISODES_DIR, f"{entry['episode_id']}.npz")) as data:
            arrays = {name: data[name] for name in data.files}
        yield LabelledEpisode(
            episode_id=entry['episode_id'], goal=entry['goal'],
            progress=[float(v) for v in arrays['progress']], external=arrays['external'],
            wrist=arrays['wrist'] if use_wrist else None, task=entry['task'],
            success=bool(arrays['success'][-1]), behaviour=entry['behaviour'],
            split=entry['split'], extras={'state': arrays['state']},
            meta={k: v for k, v in entry.items() if k not in _FIELDS})
