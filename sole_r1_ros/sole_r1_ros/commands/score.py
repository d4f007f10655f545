"""``sole-r1 score``: SOLE-R1 progress curve and reasoning for a recorded robot video.

Uses the same engine as the reward node (``sole_r1_ros.reward``): frames are queried in order,
each query showing the first, previous queried and current frame and quoting the previous
answer; progress between queries is interpolated (and marked so) in the outputs.
"""
import argparse
from collections.abc import Sequence
import hashlib
import json
import os
import re
import sys
import textwrap
from typing import Any, Iterator

import numpy as np

from sole_r1_ros.commands.answer_journal import AnswerJournal, config_digest
from sole_r1_ros.commands.reward_flags import (
    add_labelled_out, add_reward_arguments, answered_curve, check_writable,
    check_writable_folder, exit_code, make_engine, positive_int, reward_config, say_left_out)
from sole_r1_ros.labelled import LabelledEpisode, video, write_episode
from sole_r1_ros.labelled.folder import check_not_taken
from sole_r1_ros.reward import (
    EpisodeFrames, EpisodeTracker, offline_query_steps, RewardConfig, RewardEngine,
    score_episodes)
from sole_r1_ros.reward import protocol

_EPISODE_ID = 'video'
_PANEL_HEIGHT_PX = 240


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('video', help='external-camera video (or both views with --side-by-side)')
    parser.add_argument('--goal', required=True, help="task in words, e.g. 'Close the drawer'")
    views = parser.add_mutually_exclusive_group()
    views.add_argument('--wrist', metavar='VIDEO', help='wrist-camera video, same frame count')
    views.add_argument('--side-by-side', action='store_true',
                       help='VIDEO holds external (left half) and wrist (right half) views')
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument('--num-queries', type=positive_int, metavar='N',
                          help='N evenly spaced queries ending at the last frame (default 10)')
    schedule.add_argument('--stride', type=positive_int, metavar='K',
                          help='query every K-th frame, plus the last')
    parser.add_argument('--from-zero', action='store_true',
                        help='ask for progress from the first frame alone at every query')
    add_reward_arguments(parser)
    parser.add_argument('--out', metavar='JSON', help='write per-frame progress and reasoning')
    parser.add_argument('--plot', metavar='PNG', help='write the progress curve')
    parser.add_argument('--video', dest='annotated', metavar='MP4',
                        help='write the video annotated with reasoning and a live curve')
    parser.add_argument('--dump-queries', metavar='DIR',
                        help='write each query as the model sees it (query_NNN.png/.json)')
    add_labelled_out(parser, 'the video')


def _check_inputs_kept(args: argparse.Namespace) -> None:
    """Refuse an output path that is an input video: the recording was replaced, exit 0.

    ``--video`` names the annotated output beside the positional input, so ``--video
    ext.mp4`` for the input itself was an easy slip.

    Raises:
        ValueError: an output resolves to the input video or the wrist video.
    """
    inputs = {os.path.realpath(p) for p in (args.video, args.wrist) if p}
    for flag, path in (('--out', args.out), ('--plot', args.plot), ('--video', args.annotated),
                       ('--labelled-out', args.labelled_out),
                       ('--dump-queries', args.dump_queries)):
        if path and os.path.realpath(path) in inputs:
            raise ValueError(f'{flag} {path} is an input video: it would be overwritten; give '
                             'another path')


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    config = reward_config(args)
    if config.erased_model:
        raise ValueError('a compact pair (--erased-model) also reads the external view with '
                         'the robot erased, which a video does not carry: score a bag with '
                         'its robot masks (sole-r1 score-bag --erase-robot)')
    _check_inputs_kept(args)
    check_writable(args.out, args.plot, args.annotated)
    check_writable_folder(args.labelled_out, args.dump_queries)
    check_not_taken(args.labelled_out, [_episode_name(args.video)], 'video', args.video)
    goal = protocol.normalize_goal(args.goal)
    num_frames = _check_videos(args)
    num_queries = None if args.stride is not None else (args.num_queries or 10)
    steps = offline_query_steps(num_frames, num_queries=num_queries, stride=args.stride)
    frames = _read_frames(args, {0, *steps})
    episode = EpisodeFrames(
        episode_id=_EPISODE_ID, goal=goal, query_steps=steps, from_zero=args.from_zero,
        external=_Sparse({i: v[0] for i, v in frames.items()}, num_frames),
        wrist=None if frames[0][1] is None else _Sparse(
            {i: v[1] for i, v in frames.items()}, num_frames))
    # Answers kept as they come (beside --out, else in the folder it runs from): a rerun after
    # Ctrl-C or a crash asks only the rest, where a long video's scoring was lost whole.
    journal = AnswerJournal(f'{args.out or os.path.basename(args.video)}.answers.jsonl', {
        'video': os.path.abspath(args.video), 'wrist': args.wrist and os.path.abspath(args.wrist),
        'side_by_side': args.side_by_side, 'goal': goal, 'steps': steps,
        'from_zero': args.from_zero, 'reward': config_digest(config)})
    answered = journal.resume('score', len(steps))
    with make_engine(config) as engine, tqdm(total=len(steps), desc='scoring',
                                             unit='query') as bar:
        [results] = score_episodes(engine, [episode], on_batch=journal.progress(bar),
                                   answered=answered)
        records = _replay(args, engine, episode, results)
        model_id = engine.model_id
    report = _report(args, goal, config, model_id, num_frames, records)
    _write_outputs(args, report)
    journal.finish('score', results)   # the outputs hold every answer now (kept if some failed)
    print(f'{len(steps)} queries on {num_frames} frames; final progress '
          f'{report["frames"][-1]["progress"]:.0f}%')
    return exit_code('score', [r.error for r in results if r.error is not None], len(results),
                     args)


class _Sparse(Sequence):
    """A video's frames at the queried indices only, indexable like the whole video."""

    def __init__(self, frames: dict[int, np.ndarray], length: int) -> None:
        self._frames, self._length = frames, length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> np.ndarray:
        return self._frames[index]


def _replay(args: argparse.Namespace, engine: RewardEngine, episode: EpisodeFrames,
            results: list) -> list:
    """Rebuild (previous step, previous progress) of every result.

    Query by query, as the engine asked them; ``--dump-queries`` writes each query as the model
    saw it.
    """
    tracker = EpisodeTracker(_EPISODE_ID, episode.goal, from_zero=episode.from_zero)
    wrist = episode.wrist
    tracker.add_frame(episode.external[0], None if wrist is None else wrist[0])
    records = []
    for index, result in enumerate(results):
        previous = (tracker.last_query_step, tracker.progress)
        tracker.add_frame(episode.external[result.step],
                          None if wrist is None else wrist[result.step], step=result.step)
        query = tracker.make_query()
        if args.dump_queries:
            _dump_query(args.dump_queries, index, engine, query, previous[0])
        tracker.record(result)
        records.append((previous, result))
    return records


# ---------------------------------------------------------------- video input
def _check_videos(args: argparse.Namespace) -> int:
    count = video.count_frames(args.video)
    if args.wrist:
        wrist_count = video.count_frames(args.wrist)
        if wrist_count != count:
            raise ValueError(f'external video has {count} frames but wrist video has '
                             f'{wrist_count}; they must match frame for frame')
    if count < 2:
        raise ValueError(f'video {args.video} has {count} frame; need at least 2')
    return count


def _split(args: argparse.Namespace, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if not args.side_by_side:
        return frame, None
    half = frame.shape[1] // 2
    return frame[:, :half], frame[:, half:2 * half]


def _iter_views(args: argparse.Namespace) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    wrist = video.iter_frames(args.wrist) if args.wrist else None
    for frame in video.iter_frames(args.video):
        if wrist is not None:
            yield frame, next(wrist)
        else:
            yield _split(args, frame)


def _read_frames(args: argparse.Namespace, wanted: set[int]
                 ) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    # Only the queried frames are kept: a long video never sits in memory.
    return {i: views for i, views in enumerate(_iter_views(args)) if i in wanted}


# ---------------------------------------------------------------- outputs
def _dump_query(folder: str, index: int, engine: RewardEngine, query: Any,
                previous_step: int) -> None:
    os.makedirs(folder, exist_ok=True)
    [request] = engine.prepare([query])
    system, user = protocol.message_texts(request.messages)
    stem = os.path.join(folder, f'query_{index:03d}')
    request.image.save(stem + '.png')
    with open(stem + '.json', 'w', encoding='utf-8') as stream:
        json.dump({'frame_index': query.step, 'previous_index': previous_step,
                   'previous_progress': query.previous_progress, 'system': system,
                   'user': user}, stream, indent=2)


def _report(args: argparse.Namespace, goal: str, config: RewardConfig, model_id: str,
            num_frames: int, records: list) -> dict[str, Any]:
    steps = [result.step for _, result in records]
    curve, invalid = answered_curve(num_frames, [result for _, result in records])
    # an unreadable answer's frame is interpolated, as frames between queries are
    sources = {result.step: 'query' if result.valid else 'unreadable query'
               for _, result in records}
    sources[0] = 'reference'
    frames = [{'index': i, 'progress': round(float(curve[i]), 3),
               'source': sources.get(i, 'interpolated')} for i in range(num_frames)]
    queries = [{'step': r.step, 'previous_step': prev_step, 'previous_progress': prev_progress,
                'progress': r.progress, 'valid': r.valid, 'reasoning': r.reasoning,
                'raw_text': r.raw_text, 'latency_s': round(r.latency_s, 4), 'error': r.error,
                'prompt_hash': r.prompt_hash}
               for (prev_step, prev_progress), r in records]
    return {'video': args.video, 'wrist_video': args.wrist, 'side_by_side': args.side_by_side,
            'goal': goal, 'from_zero': args.from_zero, 'backend': config.backend,
            'model_id': model_id, 'temperature': config.temperature, 'seed': config.seed,
            'num_frames': num_frames, 'fps': video.video_fps(args.video),
            'query_steps': steps, 'invalid_queries': invalid,
            'queries': queries, 'frames': frames}


def _write_outputs(args: argparse.Namespace, report: dict[str, Any]) -> None:
    failed = sum(bool(q['error']) for q in report['queries'])
    if args.labelled_out and failed:   # its labels would be carried-forward answers
        print(f'sole-r1 score: {failed} of {len(report["queries"])} queries failed: nothing '
              f'written to {args.labelled_out}', file=sys.stderr)
    elif args.labelled_out and say_left_out('score', args.video, report['invalid_queries'],
                                            len(report['queries']), args.labelled_out):
        _write_labelled(args, report)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as stream:
            json.dump(report, stream, indent=2)
    if args.plot:
        _plot(args.plot, report)
    if args.annotated:
        _annotate(args, report)


def _write_labelled(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Write the video with the model's per-frame progress as a labelled episode.

    Progress at the queries, interpolated between: the distillation data of ``sole-r1 train
    compact``.
    """
    views = list(_iter_views(args))
    write_episode(args.labelled_out, LabelledEpisode(
        episode_id=_episode_name(args.video), goal=report['goal'],
        behaviour='recorded',   # whatever the robot did: not an expert's, so no VOC of it
        progress=[f['progress'] for f in report['frames']],
        external=[v[0] for v in views],
        wrist=None if views[0][1] is None else [v[1] for v in views],
        meta={'source': f"sole-r1 score ({report['model_id']})",
              'video': os.path.abspath(args.video),   # compared from any folder later
              'query_steps': report['query_steps'], 'temperature': report['temperature']}),
        videos=None, fps=report['fps'])


def _episode_name(video_path: str) -> str:
    """The labelled episode of a video: its file name without the extension.

    Characters an id may not hold become '_', and then a short hash of the name is added:
    '打开抽屉1' and '关闭抽屉1' were one episode, '____1', and the second was refused.
    """
    stem = os.path.splitext(os.path.basename(video_path))[0]
    name = re.sub(r'[^A-Za-z0-9_.-]', '_', stem)
    if name != stem:
        name += '-' + hashlib.sha1(stem.encode('utf-8')).hexdigest()[:8]
    return name


def _plot(path: str, report: dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    progress = [f['progress'] for f in report['frames']]
    figure, axes = plt.subplots(figsize=(8, 4), dpi=100)
    axes.plot(range(len(progress)), progress, color='tab:blue', label='interpolated')
    queries = report['queries']
    axes.scatter([0] + [q['step'] for q in queries], [0] + [q['progress'] for q in queries],
                 c=['tab:green'] + ['tab:blue' if q['valid'] else 'tab:red' for q in queries],
                 zorder=3, label='queried (red: unparsed / failed)')
    axes.set(xlabel='frame', ylabel='progress [%]', ylim=(-105, 105),
             title=textwrap.shorten(f"{report['goal']} ({report['model_id']})", 80))
    axes.axhline(0, color='grey', linewidth=0.5)
    axes.legend(loc='lower right', fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _annotate(args: argparse.Namespace, report: dict[str, Any]) -> None:
    import cv2

    writer = None
    try:
        for index, (external, wrist) in enumerate(_iter_views(args)):
            canvas = _annotated_frame(external, wrist, index, report)
            canvas = canvas[:canvas.shape[0] // 2 * 2, :canvas.shape[1] // 2 * 2]  # even size
            if writer is None:
                height, width = canvas.shape[:2]
                writer = cv2.VideoWriter(args.annotated, cv2.VideoWriter_fourcc(*'mp4v'),
                                         report['fps'], (width, height))
                if not writer.isOpened():
                    raise ValueError(f'cannot write video {args.annotated}')
            writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()


def _annotated_frame(external: np.ndarray, wrist: np.ndarray | None, index: int,
                     report: dict[str, Any]) -> np.ndarray:
    """Frame ``index`` with the goal, the curve so far and the latest query's reasoning."""
    from sole_r1_ros.viz.overlay import draw_overlay

    frames = report['frames']
    latest = [q for q in report['queries'] if q['step'] <= index]
    query = latest[-1] if latest else None
    title = f'frame {index}' + (f"  query @ {query['step']}: {query['progress']}%"
                                if query else '')
    return draw_overlay(
        external, wrist, report['goal'],
        [(f['index'], f['progress']) for f in frames[:index + 1]],
        (query['reasoning'] or query['raw_text']) if query else '', title=title,
        frame_height=_PANEL_HEIGHT_PX, valid=query['valid'] if query else True,
        last_step=len(frames) - 1)
