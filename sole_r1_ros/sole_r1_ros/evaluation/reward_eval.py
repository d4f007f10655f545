"""Reward-quality evaluation: score labelled episodes with any backend (or read predictions
``sole-r1 score`` wrote) and compare with ground-truth progress.

Sources of labelled episodes: a synthetic dataset (``sole-r1 synth``), or a folder of videos
with per-frame ground truth in JSON (``{"task description": ..., "ground-truth rewards": [...]}``,
see ``load_external``). Scoring goes through ``RewardEngine`` + ``score_episodes``, exactly as
the reward node scores a live robot, so a backend is evaluated on the queries it would get.
"""
from dataclasses import dataclass, field
import json
import math
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sole_r1_ros.evaluation import metrics
from sole_r1_ros.reward import EpisodeFrames, offline_query_steps, score_episodes

# Ground truth given as fractions (max |value| <= this) is scaled to percent.
_FRACTION_MAX = 1.0
# External episodes without a success flag count as successful when they end this high [%].
_SUCCESS_PCT = 95.0
_VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')


@dataclass(frozen=True, eq=False)
class LabelledEpisode:
    """A video with per-frame ground-truth progress."""

    episode_id: str
    task: str
    '''Task id (synthetic) or the goal text (external data).'''
    goal: str
    external: Sequence[np.ndarray]
    truth: np.ndarray
    '''Ground-truth progress per frame [%].'''
    success: bool
    '''The episode ends successful (the AUROC label).'''
    behaviour: str = 'expert'
    '''Synthetic behaviour label; 'expert' counts towards VOC.'''
    wrist: Sequence[np.ndarray] | None = None
    video: str | None = None
    '''Source video path, to match ``sole-r1 score`` results to this episode.'''


@dataclass(frozen=True)
class EpisodeScore:
    """Predictions of one episode at its query steps, with the truth at the same steps."""

    episode: LabelledEpisode = field(repr=False)
    steps: tuple[int, ...]
    predicted: tuple[float, ...]
    truth: tuple[float, ...]
    latency_s: float = math.nan
    '''Mean backend latency per query [s] (NaN for precomputed predictions).'''


# ------------------------------------------------------------------ loading
def load_synthetic(root: str, tasks: Iterable[str] | None = None, split: str | None = None,
                   behaviours: Iterable[str] | None = None, goals: Mapping[str, str] | None = None,
                   limit: int | None = None) -> list[LabelledEpisode]:
    """Episodes of a synthetic dataset that pass the filters.

    Args:
        goals: replace a task's goal text (e.g. with an unseen paraphrase).
        limit: at most this many episodes per task (in index order).
    """
    from sole_r1_ros.synth import format as fmt

    manifest = fmt.read_manifest(root)
    entries = fmt.select_episodes(manifest, tasks, split, behaviours)
    counts: dict[str, int] = {}
    episodes = []
    for entry in entries:
        counts[entry['task']] = counts.get(entry['task'], 0) + 1
        if limit is not None and counts[entry['task']] > limit:
            continue
        arrays = fmt.load_episode(root, entry['episode_id']).arrays
        episodes.append(LabelledEpisode(
            episode_id=entry['episode_id'], task=entry['task'],
            goal=(goals or {}).get(entry['task'], entry['goal']),
            external=list(arrays['external']), wrist=list(arrays['wrist']),
            truth=arrays['progress'].astype(np.float64), success=bool(arrays['success'][-1]),
            behaviour=entry['behaviour']))
    return episodes


def load_external(folder: str) -> list[LabelledEpisode]:
    """Videos with per-frame ground truth: every ``NAME.json`` in ``folder`` beside its video.

    JSON keys: ``task description`` (the goal), ``ground-truth rewards`` (one value per video
    frame, in [0, 1] or [0, 100]); optional ``video`` (file name; default NAME.mp4 or another
    video extension), ``wrist video``, ``success`` (default: the last reward >= 95 %) and
    ``expert`` (default true: counts towards VOC).

    Raises:
        FileNotFoundError: no JSON files or a missing video.
        ValueError: malformed JSON or a frame count that does not match the rewards.
    """
    names = sorted(n for n in os.listdir(folder) if n.endswith('.json'))
    if not names:
        raise FileNotFoundError(f'no ground-truth JSON files in {folder}')
    return [_external_episode(folder, name) for name in names]


def _external_episode(folder: str, name: str) -> LabelledEpisode:
    path = os.path.join(folder, name)
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
    if np.abs(rewards).max() <= _FRACTION_MAX:
        rewards = rewards * 100.0
    stem = name[:-len('.json')]
    video = _find_video(folder, stem, data.get('video'))
    external = read_video(video)
    wrist = read_video(os.path.join(folder, data['wrist video'])) if data.get(
        'wrist video') else None
    for label, frames in (('video', external), ('wrist video', wrist)):
        if frames is not None and len(frames) != len(rewards):
            raise ValueError(f'{path}: {label} has {len(frames)} frames but there are '
                             f'{len(rewards)} ground-truth rewards')
    success = bool(data.get('success', rewards[-1] >= _SUCCESS_PCT))
    return LabelledEpisode(
        episode_id=stem, task=goal, goal=goal, external=external, wrist=wrist, truth=rewards,
        success=success, behaviour='expert' if data.get('expert', True) else 'other',
        video=video)


def _find_video(folder: str, stem: str, named: str | None) -> str:
    candidates = [named] if named else [stem + ext for ext in _VIDEO_EXTENSIONS]
    for candidate in candidates:
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f'no video for {stem}.json in {folder} (tried {candidates})')


def read_video(path: str) -> list[np.ndarray]:
    """All frames of a video as HxWx3 uint8 RGB."""
    import cv2

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f'cannot read video {path}')
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return frames


# ------------------------------------------------------------------ scoring
def query_steps(episode: LabelledEpisode, num_queries: int | None, stride: int | None
                ) -> list[int]:
    return offline_query_steps(len(episode.external), num_queries=num_queries, stride=stride)


def score_with_engine(engine: Any, episodes: Sequence[LabelledEpisode],
                      num_queries: int | None = 10, stride: int | None = None,
                      on_batch: Any = None) -> list[EpisodeScore]:
    """Score every episode through ``score_episodes`` (batched across episodes)."""
    frames = [EpisodeFrames(
        episode_id=e.episode_id, goal=e.goal, external=e.external, wrist=e.wrist,
        query_steps=query_steps(e, num_queries, stride),
        privileged_progress=[float(v) for v in e.truth]) for e in episodes]
    results = score_episodes(engine, frames, on_batch=on_batch)
    scores = []
    for episode, spec, result in zip(episodes, frames, results):
        scores.append(EpisodeScore(
            episode, tuple(spec.query_steps), tuple(float(r.progress) for r in result),
            tuple(float(episode.truth[s]) for s in spec.query_steps),
            float(np.mean([r.latency_s for r in result])) if result else math.nan))
    return scores


def scores_from_results(paths: Sequence[str], episodes: Sequence[LabelledEpisode]
                        ) -> list[EpisodeScore]:
    """Pair ``sole-r1 score`` result files with labelled episodes by video file name.

    Raises:
        ValueError: a result names a video no episode has, or a step beyond the ground truth.
    """
    by_stem = {_stem(e.video or e.episode_id): e for e in episodes}
    scores = []
    for path in paths:
        with open(path, encoding='utf-8') as stream:
            report = json.load(stream)
        stem = _stem(str(report.get('video', '')))
        if stem not in by_stem:
            raise ValueError(f'{path}: video {report.get("video")!r} matches no labelled '
                             f'episode (have {sorted(by_stem)})')
        episode = by_stem[stem]
        steps = tuple(int(q['step']) for q in report['queries'])
        if any(not 0 <= s < len(episode.truth) for s in steps):
            raise ValueError(f'{path}: query steps {steps} outside the {len(episode.truth)} '
                             'ground-truth frames')
        scores.append(EpisodeScore(
            episode, steps, tuple(float(q['progress']) for q in report['queries']),
            tuple(float(episode.truth[s]) for s in steps),
            float(np.mean([q.get('latency_s', math.nan) for q in report['queries']]))))
    return scores


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


# ------------------------------------------------------------------ summary
def summarise(scores: Sequence[EpisodeScore]) -> dict[str, Any]:
    """Aggregate metrics: ``voc``, ``pearson``, ``auroc``, ``per_task``, ``per_behaviour``,
    ``per_task_behaviour`` and the per-episode curves (``episodes``).

    VOC is the mean over expert episodes of Spearman(predicted, time); Pearson is pooled over
    every query of every episode; AUROC separates episodes ending in success from the rest by
    their final predicted progress. Perceived (true) success of a group is the mean over its
    episodes of the highest predicted (ground-truth) progress at the query steps, 0 % start
    included: points far above the diagonal are reward hacking.
    """
    if not scores:
        raise ValueError('nothing to summarise: no episodes were scored')
    summary = _group(scores)
    summary['auroc'] = metrics.auroc([s.predicted[-1] for s in scores],
                                     [s.episode.success for s in scores])
    summary['n_queries'] = int(sum(len(s.steps) for s in scores))
    summary['latency_s'] = metrics.nanmean([s.latency_s for s in scores])
    summary['per_task'] = {task: _group(group) for task, group in _by(scores, 'task').items()}
    summary['per_behaviour'] = {b: _group(g) for b, g in _by(scores, 'behaviour').items()}
    summary['per_task_behaviour'] = {
        task: {b: _group(g) for b, g in _by(group, 'behaviour').items()}
        for task, group in _by(scores, 'task').items()}
    summary['episodes'] = [
        {'episode_id': s.episode.episode_id, 'task': s.episode.task,
         'behaviour': s.episode.behaviour, 'success': s.episode.success, 'steps': list(s.steps),
         'predicted': list(s.predicted), 'truth': [round(v, 2) for v in s.truth]}
        for s in scores]
    return summary


def _by(scores: Sequence[EpisodeScore], key: str) -> dict[str, list[EpisodeScore]]:
    groups: dict[str, list[EpisodeScore]] = {}
    for score in scores:
        groups.setdefault(getattr(score.episode, key), []).append(score)
    return dict(sorted(groups.items()))


def _group(scores: Sequence[EpisodeScore]) -> dict[str, Any]:
    experts = [s for s in scores if s.episode.behaviour == 'expert' and len(s.steps) >= 3]
    predicted = np.concatenate([s.predicted for s in scores])
    truth = np.concatenate([s.truth for s in scores])
    return {
        'n_episodes': len(scores),
        'voc': metrics.nanmean([metrics.value_order_correlation(s.predicted) for s in experts]),
        'voc_truth': metrics.nanmean([metrics.value_order_correlation(s.truth)
                                      for s in experts]),
        'pearson': metrics.pearson(predicted, truth),
        'mae': float(np.abs(predicted - truth).mean()),
        'perceived': float(np.mean([max([0.0, *s.predicted]) for s in scores])),
        'true': float(np.mean([max([0.0, *s.truth]) for s in scores])),
        'success_rate': float(np.mean([s.episode.success for s in scores])),
    }


def to_json(value: Any) -> Any:
    """Make a summary JSON-safe: NaN becomes None."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
