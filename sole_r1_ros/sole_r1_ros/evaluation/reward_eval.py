"""Reward-quality evaluation: compare predicted with ground-truth progress.

Labelled episodes are scored with any backend (or predictions ``sole-r1 score`` wrote are
read) and compared with ground-truth progress.

Episodes come from ``sole_r1_ros.labelled`` (synthetic datasets, hand-labelled videos, any
source in the labelled-episode layout). Scoring goes through ``RewardEngine`` +
``score_episodes``, exactly as the reward node scores a live robot, so a backend is evaluated on
the queries it would get.
"""
from dataclasses import dataclass, field, replace
import json
import math
import os
from typing import Any, Iterable, Sequence

import numpy as np

from sole_r1_ros import labelled
from sole_r1_ros.evaluation import metrics
from sole_r1_ros.labelled import LabelledEpisode
from sole_r1_ros.reward import EpisodeFrames, offline_query_steps, score_episodes


@dataclass(frozen=True)
class EpisodeScore:
    """Predictions of one episode at its query steps, with the truth at the same steps."""

    episode: LabelledEpisode = field(repr=False)
    steps: tuple[int, ...]
    predicted: tuple[float, ...]
    truth: tuple[float, ...]
    latency_s: float = math.nan
    '''Mean backend latency per query [s] (NaN for precomputed predictions).'''
    errors: tuple[str, ...] = ()
    '''The backend's error of each query that failed (timeout, HTTP, ...): its prediction is
    the carried-forward answer, as a reward node publishes it.'''


# ------------------------------------------------------------------ loading
def load_episodes(root: str, tasks: Iterable[str] | None = None, split: str | None = None,
                  behaviours: Iterable[str] | None = None, limit: int | None = None,
                  paraphrase: bool = False, num_queries: int | None = None,
                  stride: int | None = None) -> list[LabelledEpisode]:
    """Load the labelled episodes of ``root`` that pass the filters.

    With ``num_queries`` or ``stride`` (the schedule ``score_with_engine`` will ask), only
    the frames those queries show are decoded from an episode's videos: a 10-minute real
    recording at 640x480 had held every frame, about 0.9 MB each, to ask 10 of them.

    Args:
        root: folder of labelled episodes (any layout ``labelled.folder`` reads).
        tasks: only these tasks (None: all).
        split: only this split ('train', 'val'; None or 'all': every episode).
        behaviours: only these behaviours (None: all).
        limit: at most this many episodes per task (in order).
        paraphrase: ask with the first of an episode's ``eval_paraphrases`` (phrasings never
            trained on) where it has one.
        num_queries: the query schedule's number of queries (``query_steps``); with
            neither it nor ``stride``, every frame is decoded.
        stride: the query schedule's stride, instead.
    """
    def query_frames(count: int) -> list[int]:
        return offline_query_steps(count, num_queries=num_queries, stride=stride)
    wanted = None if num_queries is None and stride is None else query_frames
    episodes = [_in_place(e) for e in labelled.load_episodes(
        root, tasks=tasks, split=split, behaviours=behaviours, limit=limit, wanted=wanted)]
    if paraphrase:
        episodes = [replace(e, goal=e.meta['eval_paraphrases'][0])
                    if e.meta.get('eval_paraphrases') else e for e in episodes]
    return episodes


def _in_place(episode: LabelledEpisode) -> LabelledEpisode:
    """Frames decoded by index (a dict) as a list of every frame, None where not decoded."""
    def listed(frames):
        if not isinstance(frames, dict):
            return frames
        return [frames.get(i) for i in range(episode.num_frames)]
    return replace(episode, external=listed(episode.external), wrist=listed(episode.wrist))


# ------------------------------------------------------------------ scoring
def query_steps(episode: LabelledEpisode, num_queries: int | None, stride: int | None
                ) -> list[int]:
    return offline_query_steps(episode.num_frames, num_queries=num_queries, stride=stride)


def score_with_engine(engine: Any, episodes: Sequence[LabelledEpisode],
                      num_queries: int | None = 10, stride: int | None = None,
                      on_batch: Any = None,
                      erased_copies: Sequence[LabelledEpisode] | None = None
                      ) -> list[EpisodeScore]:
    """Score every episode through ``score_episodes`` (batched across episodes).

    ``erased_copies``: the same episodes with the robot erased (``sole-r1 synth
    --erase-robot-of``), matched by id, whose external view a compact pair reads beside the
    pictures.

    Raises:
        ValueError: the model reads frames with the robot erased and an episode has it in
            view, or the other way round (``sole-r1 synth --erase-robot-of`` makes the one
            from the other); a pair without the erased copies of every episode.
    """
    erased = bool(getattr(engine, 'robot_erased', False))
    other = [e.episode_id for e in episodes if bool(e.meta.get('robot_erased', False)) != erased]
    if other:
        raise ValueError(
            f'{engine.model_id} reads ' + ('frames with the robot erased' if erased else
                                           'pictures with the robot in view')
            + f', but {len(other)} of the {len(episodes)} episodes (e.g. {other[0]}) '
            + ('have it in view: score their --erase-robot-of copies' if erased
               else 'have it erased: score the pictures they were made from'))
    beside = _erased_beside(engine, episodes, erased_copies)
    frames = [EpisodeFrames(
        episode_id=e.episode_id, goal=e.goal, external=e.external, wrist=e.wrist,
        query_steps=query_steps(e, num_queries, stride),
        privileged_progress=[float(v) for v in e.progress],
        erased_external=beside[e.episode_id].external if beside else None) for e in episodes]
    results = score_episodes(engine, frames, on_batch=on_batch)
    scores = []
    for episode, spec, result in zip(episodes, frames, results):
        scores.append(EpisodeScore(
            episode, tuple(spec.query_steps), tuple(float(r.progress) for r in result),
            tuple(float(episode.progress[s]) for s in spec.query_steps),
            float(np.mean([r.latency_s for r in result])) if result else math.nan,
            tuple(r.error for r in result if r.error)))
    return scores


def _erased_beside(engine: Any, episodes: Sequence[LabelledEpisode],
                   copies: Sequence[LabelledEpisode] | None) -> dict[str, LabelledEpisode]:
    """The erased copy of every episode, by id, for a compact pair ({} for any other model)."""
    if not getattr(engine, 'erased_beside', False):
        return {}
    if copies is None:
        raise ValueError(f'{engine.model_id} is a compact pair and also reads the external view '
                         'with the robot erased: give the erased copies of the episodes '
                         '(--erased-data, made by sole-r1 synth --erase-robot-of)')
    by_id = {e.episode_id: e for e in copies}
    for episode in episodes:
        copy = by_id.get(episode.episode_id)
        if copy is None or not copy.meta.get('robot_erased', False):
            raise ValueError(f'episode {episode.episode_id} has no copy with the robot erased '
                             'among the erased episodes given')
        if copy.num_frames != episode.num_frames:
            raise ValueError(f'episode {episode.episode_id}: {episode.num_frames} frames but its '
                             f'erased copy has {copy.num_frames}')
    return by_id


def scores_from_results(paths: Sequence[str], episodes: Sequence[LabelledEpisode]
                        ) -> list[EpisodeScore]:
    """Pair ``sole-r1 score`` result files with labelled episodes by video file name.

    Raises:
        ValueError: a result names a video no episode has, or a step beyond the ground truth.
    """
    by_stem = {_stem(e.meta.get('video') or e.episode_id): e for e in episodes}
    scores = []
    for path in paths:
        try:
            with open(path, encoding='utf-8') as stream:
                report = json.load(stream)
            video = str(report.get('video', ''))
            queries = [(int(q['step']), float(q['progress']), q.get('latency_s', math.nan),
                        q.get('error')) for q in report['queries']]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f'{path} is not a sole-r1 score result ({type(exc).__name__}: '
                             f'{exc})') from exc
        stem = _stem(video)
        if stem not in by_stem:
            raise ValueError(f'{path}: video {video!r} matches no labelled episode (have '
                             f'{sorted(by_stem)})')
        episode = by_stem[stem]
        steps = tuple(step for step, *_ in queries)
        if any(not 0 <= s < episode.num_frames for s in steps):
            raise ValueError(f'{path}: query steps {steps} outside the {episode.num_frames} '
                             'ground-truth frames')
        scores.append(EpisodeScore(
            episode, steps, tuple(progress for _, progress, *_ in queries),
            tuple(float(episode.progress[s]) for s in steps),
            float(np.mean([latency for *_, latency, _ in queries])),
            tuple(error for *_, error in queries if error)))
    return scores


def _stem(path: str) -> str:
    """Return the episode a video belongs to.

    Its file stem, or its folder for the labelled layout's ``episodes/<id>/external.mp4``.
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem == 'external':
        return os.path.basename(os.path.dirname(os.path.abspath(path)))
    return stem


# ------------------------------------------------------------------ summary
def summarise(scores: Sequence[EpisodeScore]) -> dict[str, Any]:
    """Aggregate the metrics of scored episodes.

    Returns ``voc``, ``pearson``, ``auroc``, ``auroc_task_mean``, ``per_task``,
    ``per_behaviour``, ``per_task_behaviour`` and the per-episode curves (``episodes``).

    VOC is the mean over the expert episodes that succeeded of Spearman(predicted, time)
    (``voc_all_experts``: over every expert, as before 2026-12-07); Pearson is pooled over
    every query of every episode, and ``pearson_time_only`` is that of a reward blind to the
    video answering the time elapsed (its VOC is 1, its AUROC 0.5): what a model's Pearson
    and VOC, asked in time order with its previous answer quoted, must beat to show it reads
    the video; AUROC separates episodes ending in success from the rest by
    their final predicted progress, pooled over every episode (one threshold for all tasks:
    the levels must agree across tasks) and per group (NaN where every episode succeeded or
    none did); ``auroc_task_mean`` is the mean of the tasks' own AUROCs, the separation a
    learner of one task relies on. Perceived (true) success of a group is the mean over its
    episodes of the highest predicted (ground-truth) progress at the query steps, 0 % start
    included: points far above the diagonal are reward hacking.
    """
    if not scores:
        raise ValueError('nothing to summarise: no episodes were scored')
    summary = _group(scores)
    summary['n_queries'] = int(sum(len(s.steps) for s in scores))
    summary['failed_queries'] = int(sum(len(s.errors) for s in scores))
    summary['latency_s'] = metrics.nanmean([s.latency_s for s in scores])
    summary['per_task'] = {task: _group(group)
                           for task, group in _by(scores, 'task_id').items()}
    summary['auroc_task_mean'] = metrics.nanmean(
        [group['auroc'] for group in summary['per_task'].values()])
    summary['per_behaviour'] = {b: _group(g) for b, g in _by(scores, 'behaviour').items()}
    summary['per_task_behaviour'] = {
        task: {b: _group(g) for b, g in _by(group, 'behaviour').items()}
        for task, group in _by(scores, 'task_id').items()}
    summary['episodes'] = [
        {'episode_id': s.episode.episode_id, 'task': s.episode.task_id,
         'behaviour': s.episode.behaviour, 'success': s.episode.succeeded,
         'steps': list(s.steps),
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
    # VOC's premise is progress that rises with time: an expert that failed (three push-back
    # experts' truth stays 0) is not such a video, and counted it moved VOC by up to 0.07.
    succeeded = [s for s in experts if s.episode.succeeded]
    predicted = np.concatenate([s.predicted for s in scores])
    truth = np.concatenate([s.truth for s in scores])
    # A reward blind to the video that answers the time elapsed, 0 to 100 % over the queries:
    # chained queries asked in time order give it VOC 1 and a Pearson the model must beat.
    clock = np.concatenate([np.linspace(0.0, 100.0, len(s.steps)) for s in scores])
    return {
        'n_episodes': len(scores),
        'voc': metrics.nanmean([metrics.value_order_correlation(s.predicted)
                                for s in succeeded]),
        'voc_truth': metrics.nanmean([metrics.value_order_correlation(s.truth)
                                      for s in succeeded]),
        'voc_all_experts': metrics.nanmean([metrics.value_order_correlation(s.predicted)
                                            for s in experts]),
        'n_voc_episodes': len(succeeded),
        'pearson': metrics.pearson(predicted, truth),
        'pearson_time_only': metrics.pearson(clock, truth),
        'mae': float(np.abs(predicted - truth).mean()),
        'perceived': float(np.mean([max([0.0, *s.predicted]) for s in scores])),
        'true': float(np.mean([max([0.0, *s.truth]) for s in scores])),
        'success_rate': float(np.mean([s.episode.succeeded for s in scores])),
        'auroc': metrics.auroc([s.predicted[-1] for s in scores],
                               [s.episode.succeeded for s in scores]),
    }


def to_json(value: Any) -> Any:
    """Make a summary JSON-safe: NaN becomes None, a numpy number a Python one.

    A numpy float32 (a Pearson of float32 scores) was not JSON at all, and its NaN not None.
    """
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
