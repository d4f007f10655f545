"""``sole-r1 score-bag BAG --goal TEXT``: score every episode of a recorded bag offline.

Episodes are split at the bag's ``episode`` messages and scored together, one backend batch per
query index across episodes (the batching the reward node does live).
"""
import argparse
import json
import re
import sys
from typing import Any

import numpy as np

from sole_r1_ros.commands.reward_flags import (
    add_labelled_out, add_reward_arguments, check_writable, check_writable_folder, exit_code,
    make_engine, reward_config)
from sole_r1_ros.labelled import LabelledEpisode, write_episode
from sole_r1_ros.reward import EpisodeFrames, offline_query_steps, score_episodes
from sole_r1_ros.reward.protocol import normalize_goal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 folder (MCAP or sqlite3), e.g. from sole-r1 record')
    parser.add_argument('--goal', required=True, help='task in words, e.g. "close the drawer"')
    parser.add_argument('--external-topic', default='camera/external/image_raw')
    parser.add_argument('--wrist-topic', default='camera/wrist/image_raw',
                        help="wrist camera topic; '' for the external-only prompt")
    parser.add_argument('--episode-topic', default='episode')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--num-queries', type=int, help='evenly spaced queries per episode '
                       '(default 10)')
    group.add_argument('--stride', type=int, help='query every K-th frame (and the last)')
    add_reward_arguments(parser, oracle="a simulator's ground truth recorded on --truth-topic "
                         '(simulated runs only: to measure a reward model against the truth '
                         "on a learner's own episodes, or as a stand-in teacher in experiments)")
    parser.add_argument('--truth-topic', default='ground_truth',
                        help="the simulator's TaskState topic (--backend oracle)")
    parser.add_argument('--out', default='bag_scores.json', help='results JSON')
    parser.add_argument('--plot', help='PNG with one progress curve per episode')
    add_labelled_out(parser, 'every episode')


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sole_r1_ros.recording import read_camera_episodes
    config = reward_config(args)
    check_writable(args.out, args.plot)
    check_writable_folder(args.labelled_out)
    goal = normalize_goal(args.goal)
    notes: list[str] = []
    oracle = args.backend == 'oracle'
    recorded = read_camera_episodes(args.bag, args.external_topic, args.wrist_topic or None,
                                    args.episode_topic or None, notes=notes,
                                    truth_topic=args.truth_topic if oracle else None)
    for note in notes:
        print(f'sole-r1 score-bag: {note}', file=sys.stderr)
    recorded = [r for r in recorded if len(r.external) >= 2]
    if not recorded:
        raise ValueError(f'{args.bag}: no episode with at least 2 frames')
    if oracle:
        missing = [r.episode_id for r in recorded if not np.all(np.isfinite(r.truth))]
        if missing:
            raise ValueError(f'{args.bag}: frames without a {args.truth_topic!r} message of '
                             f'their moment in episodes {missing[:5]} ({len(missing)} in all)')
    num_queries = None if args.stride else (args.num_queries or 10)
    episodes = [EpisodeFrames(
        episode_id=r.episode_id, goal=goal, external=r.external,
        wrist=r.wrist if args.wrist_topic else None,
        query_steps=offline_query_steps(len(r.external), num_queries, args.stride),
        privileged_progress=r.truth if oracle else None)
        for r in recorded]
    total = sum(len(e.query_steps) for e in episodes)
    with make_engine(config) as engine, tqdm(total=total, desc='scoring', unit='query') as bar:
        results = score_episodes(engine, episodes, on_batch=lambda batch: bar.update(len(batch)))
        model_id = engine.model_id
    report = _report(args, goal, model_id, recorded, episodes, results)
    report['recovery'] = notes
    with open(args.out, 'w', encoding='utf-8') as stream:
        json.dump(report, stream, indent=2)
    if args.plot:
        _plot(args.plot, report)
    if args.labelled_out:
        _write_labelled(args.labelled_out, report, recorded, episodes)
    for episode in report['episodes']:
        print(f"{episode['episode_id']}: {episode['num_frames']} frames, "
              f"{len(episode['queries'])} queries, final progress "
              f"{episode['queries'][-1]['progress']}%")
    answers = [r for episode in results for r in episode]
    return exit_code('score-bag', [r.error for r in answers if r.error is not None],
                     len(answers), args)


def _write_labelled(folder: str, report: dict[str, Any], recorded, episodes) -> None:
    """Every episode with the model's per-frame progress: distillation data."""
    for scored, rec, episode in zip(report['episodes'], recorded, episodes):
        seconds = (rec.stamps_ns[-1] - rec.stamps_ns[0]) / 1e9
        fps = (len(rec.stamps_ns) - 1) / seconds if seconds > 0 else 10.0
        write_episode(folder, LabelledEpisode(
            episode_id=re.sub(r'[^A-Za-z0-9_.-]', '_', episode.episode_id),
            goal=report['goal'], progress=scored['progress'], external=rec.external,
            wrist=episode.wrist,
            meta={'source': f"sole-r1 score-bag ({report['model_id']})", 'bag': report['bag'],
                  'stamps_ns': rec.stamps_ns, 'query_steps': scored['query_steps']}),
            videos=None, fps=fps)


def _report(args, goal: str, model_id: str, recorded, episodes, results) -> dict[str, Any]:
    out = []
    for rec, episode, answers in zip(recorded, episodes, results):
        steps = [r.step for r in answers]
        curve = np.interp(np.arange(len(rec.external)), [0] + steps,
                          [0] + [r.progress for r in answers])
        out.append({
            'episode_id': episode.episode_id, 'num_frames': len(rec.external),
            'stamps_ns': rec.stamps_ns, 'query_steps': steps,
            'progress': [round(float(v), 3) for v in curve],
            'queries': [{'step': r.step, 'progress': r.progress, 'valid': r.valid,
                         'reasoning': r.reasoning, 'latency_s': round(r.latency_s, 4),
                         'error': r.error} for r in answers]})
    return {'bag': str(args.bag), 'goal': goal, 'backend': args.backend, 'model_id': model_id,
            'temperature': args.temperature, 'episodes': out}


def _plot(path: str, report: dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(8, 4))
    for episode in report['episodes']:
        axes.plot(episode['progress'], label=episode['episode_id'])
    axes.set(xlabel='frame', ylabel='predicted progress [%]', ylim=(-5, 105),
             title=f"{report['goal']} ({report['model_id']})")
    axes.legend(fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
