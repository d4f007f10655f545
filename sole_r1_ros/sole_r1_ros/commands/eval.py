"""``sole-r1 eval reward``: how good is a reward model? VOC, Pearson, AUROC, reward hacking.

Scores labelled episodes (any source in the labelled-episode layout, ``labelled/FORMAT.md``:
a ``sole-r1 synth`` dataset, hand-labelled videos) through the same engine as the reward node,
with any backend, or reads predictions ``sole-r1 score`` already wrote (``--predictions``).
Writes the metrics as JSON and the perceived-vs-true success plot as PNG.
"""
import argparse
import json
import sys

from sole_r1_ros.commands.reward_flags import (
    add_reward_arguments, check_writable, exit_code, make_engine, positive_int, reward_config,
    warn_unknown_tasks)
from sole_r1_ros.reward import available_backends


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_subparsers(dest='what', metavar='WHAT')
    what.required = True
    reward = what.add_parser('reward', help='reward-model quality against ground-truth progress')
    reward.add_argument('--data', required=True,
                        help='folder of labelled episodes (episodes/<id>/labels.json + frames; '
                             'the older NAME.mp4 + NAME.json layout is still read)')
    source = reward.add_mutually_exclusive_group(required=True)
    source.add_argument('--backend', choices=available_backends(),
                        help='reward backend to score with (oracle: the labels themselves)')
    source.add_argument('--predictions', nargs='+', metavar='JSON',
                        help='results.json files of `sole-r1 score`, matched by video name')
    add_reward_arguments(reward, backend=False)
    reward.add_argument('--erased-data', metavar='DIR',
                        help='the same episodes with the robot erased (sole-r1 synth '
                             '--erase-robot-of), read beside --data by a compact pair '
                             '(--erased-model)')
    reward.add_argument('--tasks', default='', help='comma-separated task ids (default all)')
    reward.add_argument('--split', default='val', choices=('train', 'val', 'all', 'heldout'),
                        help="which episodes (default 'val'; episodes without a split, as "
                             "a recording's scores, are in every split; 'heldout': those the "
                             'compact file (--model) validated on and never trained on, its '
                             "info's 'val_episode_ids': a distilled file on recordings it did "
                             'not see)')
    reward.add_argument('--behaviours', default='', help='comma-separated behaviours '
                        '(default all)')
    reward.add_argument('--max-episodes', type=int, default=None,
                        help='at most N episodes per task')
    reward.add_argument('--paraphrase', action='store_true',
                        help="ask with each episode's first eval paraphrase (a phrasing never "
                             'trained on), where it has one')
    schedule = reward.add_mutually_exclusive_group()
    schedule.add_argument('--num-queries', type=positive_int, default=None,
                          help='evenly spaced queries per episode (default 10)')
    schedule.add_argument('--stride', type=positive_int, default=None,
                          help='query every K-th frame')
    reward.add_argument('--out', metavar='JSON', help='write the metrics')
    reward.add_argument('--plot', metavar='PNG', help='write the perceived-vs-true plot')


def run(args: argparse.Namespace) -> int:
    from sole_r1_ros.evaluation import plots, reward_eval

    config = reward_config(args) if args.backend else None
    check_writable(args.out, args.plot)
    args.task_names = _tasks(args)   # read from the data's labels once
    episodes = _load(args)
    if not episodes:
        raise ValueError(f'no episodes selected in {args.data}')
    warn_unknown_tasks([args.data], args.task_names)
    _warn_trained_on(args, episodes)
    if args.predictions:
        scores = reward_eval.scores_from_results(args.predictions, episodes)
        label = 'predictions'
    else:
        scores, label = _score(args, config, episodes)
    summary = reward_eval.summarise(scores)
    summary['source'] = label
    summary['data'] = args.data
    # A recording's labels are a teacher's scores, not the truth: said as such.
    summary['labels_from'] = sorted({str(e.meta.get('source') or 'not said')
                                     for e in episodes})
    result = reward_eval.to_json(summary)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as stream:
            json.dump(result, stream, indent=1)
    if args.plot:
        plots.plot_perceived(summary, args.plot, title=f'{label} on {args.data}')
    _print(result)
    errors = [error for score in scores for error in score.errors]
    return exit_code('eval reward', errors, result['n_queries'], args)


def _warn_trained_on(args: argparse.Namespace, episodes: list) -> None:
    """Say when a compact file is scored on episodes it was trained on.

    A distillation folder (``score-bag --labelled-out``) carries no split, so ``--split val``
    selects every episode, and a file distilled from it scores its own training data.
    """
    if args.predictions or args.backend != 'compact':
        return
    from sole_r1_ros.compact.model import load_checkpoint
    from sole_r1_ros.compact.predictor import default_checkpoint_path
    try:
        info = load_checkpoint(args.model or default_checkpoint_path())[2]
    except (OSError, ValueError):
        return   # the scoring says what is wrong with the file
    if info.get('interrupted'):
        print(f'sole-r1 eval reward: warning: {args.model} is a training cut short at step '
              f"{info.get('steps')}, not a finished one", file=sys.stderr)
    trained = {*(info.get('train_episode_ids') or ()),
               *(info.get('init_train_episode_ids') or ())}
    seen = [e.episode_id for e in episodes if e.episode_id in trained]
    if seen:
        print(f'sole-r1 eval reward: warning: {len(seen)} of the {len(episodes)} episodes were '
              f'in the training data of {args.model or "the shipped file"} (e.g. {seen[0]}): '
              'its numbers on them flatter it; evaluate on other recordings, or on its '
              'val_episode_ids', file=sys.stderr)


def _load(args: argparse.Namespace) -> list:
    from sole_r1_ros.evaluation import reward_eval

    return _held_out(args, reward_eval.load_episodes(
        args.data, tasks=args.task_names, split=_split(args),
        behaviours=_list(args.behaviours), limit=args.max_episodes,
        paraphrase=args.paraphrase, **_schedule(args)))


def _load_erased(args: argparse.Namespace) -> list | None:
    from sole_r1_ros.evaluation import reward_eval

    if not args.erased_data:
        return None
    return _held_out(args, reward_eval.load_episodes(
        args.erased_data, tasks=args.task_names, split=_split(args),
        behaviours=_list(args.behaviours), **_schedule(args)))


def _schedule(args: argparse.Namespace) -> dict:
    """The frames the queries show, the only ones decoded (``reward_eval.load_episodes``)."""
    return {'num_queries': None if args.stride else (args.num_queries or 10),
            'stride': args.stride}


def _split(args: argparse.Namespace) -> str:
    return 'all' if args.split == 'heldout' else args.split


def _held_out(args: argparse.Namespace, episodes: list) -> list:
    """With ``--split heldout``, the episodes the compact file validated on, else all.

    Raises:
        ValueError: not the compact backend, or a file that names no validation episodes.
    """
    if args.split != 'heldout':
        return episodes
    if args.backend != 'compact':
        raise ValueError("--split heldout reads the compact file's val_episode_ids: it needs "
                         '--backend compact')
    from sole_r1_ros.compact.model import load_checkpoint
    from sole_r1_ros.compact.predictor import default_checkpoint_path
    path = args.model or default_checkpoint_path()
    ids = set(load_checkpoint(path)[2].get('val_episode_ids') or ())
    if not ids:
        raise ValueError(f'--split heldout: {path} names no validation episodes '
                         '(val_episode_ids; trained with --val-fraction 0?)')
    return [e for e in episodes if e.episode_id in ids]


def _tasks(args: argparse.Namespace) -> list[str] | None:
    """``--tasks`` as names; a goal of the data with a comma in it stays whole."""
    from sole_r1_ros.labelled.folder import split_task_names

    return split_task_names(args.tasks, [args.data]) or None


def _list(text: str) -> list[str] | None:
    items = [t.strip() for t in text.split(',') if t.strip()]
    return items or None


def _score(args: argparse.Namespace, config, episodes: list) -> tuple[list, str]:
    from tqdm import tqdm

    from sole_r1_ros.evaluation import reward_eval

    num_queries = _schedule(args)['num_queries']
    total = sum(len(reward_eval.query_steps(e, num_queries, args.stride)) for e in episodes)
    with make_engine(config) as engine, \
            tqdm(total=total, desc=f'scoring ({engine.model_id})', unit='query') as bar:
        scores = reward_eval.score_with_engine(
            engine, episodes, num_queries, args.stride, on_batch=lambda b: bar.update(len(b)),
            erased_copies=_load_erased(args))
        return scores, engine.model_id


def _print(result: dict) -> None:
    def fmt(value: object) -> str:
        return 'n/a' if value is None else f'{value:.3f}'

    failed = result.get('failed_queries') or 0
    print(f"{result['source']}: {result['n_episodes']} episodes, {result['n_queries']} queries"
          + (f', {failed} of them failed (in the metrics as the answer carried forward, as a '
             'reward node publishes it)' if failed else ''))
    tasks = result['per_task'].values()
    scored_tasks = sum(group['auroc'] is not None for group in tasks)
    print(f"  VOC {fmt(result['voc'])} over {result['n_voc_episodes']} experts that succeeded "
          f"(ground truth itself: {fmt(result['voc_truth'])}; every expert: "
          f"{fmt(result['voc_all_experts'])})  Pearson {fmt(result['pearson'])}  AUROC "
          f"{fmt(result['auroc'])} (per-task mean {fmt(result['auroc_task_mean'])} over "
          f"{scored_tasks} of {len(tasks)} tasks)  MAE {fmt(result['mae'])}%")
    print('  a reward blind to the video, answering the time elapsed: VOC 1.000, Pearson '
          f"{fmt(result['pearson_time_only'])}, AUROC 0.500 (to beat)")
    sources = result.get('labels_from') or []
    truth = bool(sources) and all('ground truth' in source for source in sources)
    if not truth:
        named = ', '.join(sources) or 'the data'
        print(f"  against the labels of {named} ('labelled' below: not the truth unless they "
              "are); AUROC's successes are the episodes whose last label is 95 % or more, "
              "where the data carry no success of their own: with a teacher model's labels, "
              "the teacher's judgement")
    for task, group in result['per_task'].items():
        print(f"  {task:<32} perceived {group['perceived']:5.1f}  "
              f"{'true' if truth else 'labelled'} {group['true']:5.1f}  "
              f"VOC {fmt(group['voc'])}  Pearson {fmt(group['pearson'])}  "
              f"AUROC {fmt(group['auroc'])}")
