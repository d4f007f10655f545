"""``sole-r1 train MODEL``: train a model offline; ``train compact`` is the compact progress model.

``sole-r1 train compact --data DIR [DIR ...] --out FILE`` fits the compact network on labelled
episodes of any source (``labelled/FORMAT.md``): a ``sole-r1 synth`` dataset, SOLE-R1's scores of
your own recordings (``sole-r1 score``/``score-bag --labelled-out``), hand labels. ``--init
shipped`` fine-tunes the shipped model of the data's kind (pictures, or the erased file for
frames with the robot erased) instead of starting from random weights (distillation).
The shipped checkpoint is made by ``make compact-model`` (``sole_r1_ros/data/README.md``).
"""
import argparse
import dataclasses
import json
import os
import sys
import time

from sole_r1_ros.compact.train import TrainConfig
from sole_r1_ros.configuration import from_mapping, specs

_SPECS = {spec.name: spec for spec in specs(TrainConfig)}


def _help(name: str) -> str:
    spec = _SPECS[name]
    return f'{spec.describe()} (default: {spec.default!r})'.replace('%', '%%')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_subparsers(dest='model', metavar='MODEL')
    models.required = True
    compact = models.add_parser('compact', help='the compact CNN progress model (reward backend '
                                '"compact")')
    compact.add_argument('--data', required=True, nargs='+', metavar='DIR',
                         help='folders of labelled episodes (synthetic, sole-r1 score '
                              '--labelled-out, hand labels)')
    compact.add_argument('--out', required=True, help='checkpoint file to write (.pt); a file '
                         'already there is moved aside to FILE.previous-<time>.pt, not replaced')
    compact.add_argument('--tasks', default='', help=_help('tasks') + ', comma-separated')
    compact.add_argument('--exclude-tasks', default='',
                         help=_help('exclude_tasks') + ', comma-separated')
    compact.add_argument('--init', default='', metavar='CHECKPOINT',
                         help=_help('init'))
    compact.add_argument('--minutes', type=float, default=TrainConfig.minutes,
                         help=_help('minutes'))
    compact.add_argument('--epochs', type=float, default=None, help=_help('epochs'))
    compact.add_argument('--batch-size', type=int, default=TrainConfig.batch_size,
                         help=_help('batch_size'))
    compact.add_argument('--lr', type=float, default=TrainConfig.learning_rate,
                         help=_help('learning_rate'))
    compact.add_argument('--approach-credit', type=float, default=TrainConfig.approach_credit,
                         help=_help('approach_credit'))
    compact.add_argument('--own-previous-fraction', type=float,
                         default=TrainConfig.own_previous_fraction,
                         help=_help('own_previous_fraction'))
    compact.add_argument('--previous-noise', type=float, metavar='STD',
                         default=TrainConfig.previous_noise, help=_help('previous_noise'))
    compact.add_argument('--data-shares', type=float, nargs='+', default=[], metavar='SHARE',
                         help=_help('data_shares') + '; one per --data folder')
    compact.add_argument('--scene-adversarial', type=float, metavar='WEIGHT',
                         default=TrainConfig.scene_adversarial,
                         help=_help('scene_adversarial'))
    compact.add_argument('--val-fraction', type=float, default=TrainConfig.val_fraction,
                         help=_help('val_fraction'))
    compact.add_argument('--keep-by', choices=('chained', 'labels'),
                         default=TrainConfig.keep_by, help=_help('keep_by'))
    compact.add_argument('--eval-every', type=float, default=90.0, metavar='S',
                         help=_help('eval_every_s').replace('60.0', '90.0'))
    compact.add_argument('--eval-every-steps', type=int, default=TrainConfig.eval_every_steps,
                         metavar='N', help=_help('eval_every_steps'))
    compact.add_argument('--threads', type=int, default=TrainConfig.threads,
                         help=_help('threads'))
    compact.add_argument('--seed', type=int, default=TrainConfig.seed, help=_help('seed'))


def run(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    from sole_r1_ros.commands.reward_flags import check_writable, warn_unknown_tasks
    from sole_r1_ros.compact.train import train
    from sole_r1_ros.evaluation.reward_eval import to_json
    from sole_r1_ros.labelled.folder import split_task_names

    logging.getLogger('sole_r1_ros').setLevel(logging.WARNING)
    check_writable(args.out)   # before the training, not after it
    if args.init and args.init != 'shipped':   # a file that is not one: said before any work
        from sole_r1_ros.compact.model import load_checkpoint
        load_checkpoint(args.init)
    tasks = split_task_names(args.tasks, args.data)
    excluded = split_task_names(args.exclude_tasks, args.data)
    warn_unknown_tasks(args.data, tasks + excluded)
    if args.data_shares and len(args.data_shares) != len(args.data):
        raise ValueError(f'{len(args.data_shares)} --data-shares for {len(args.data)} --data '
                         'folders: give one share per folder, in order')
    config = from_mapping(TrainConfig, {
        'tasks': tasks, 'exclude_tasks': excluded,
        'init': args.init, 'minutes': args.minutes, 'epochs': args.epochs,
        'batch_size': args.batch_size, 'learning_rate': args.lr,
        'approach_credit': args.approach_credit,
        'own_previous_fraction': args.own_previous_fraction,
        'previous_noise': args.previous_noise,
        'scene_adversarial': args.scene_adversarial,
        'val_fraction': args.val_fraction, 'data_shares': args.data_shares,
        'keep_by': args.keep_by, 'eval_every_s': args.eval_every,
        'eval_every_steps': args.eval_every_steps,
        'threads': args.threads, 'seed': args.seed})
    previous = _move_previous(args.out)
    if previous and config.init and config.init != 'shipped' and (
            os.path.abspath(config.init) == os.path.abspath(args.out)):
        config = dataclasses.replace(config, init=previous)   # tuned in place: from the old
    # In per cent of the run: --epochs ends it by steps, --minutes by time, whichever comes first,
    # so the time left is the bar's own estimate, not the --minutes cap.
    with tqdm(total=100, desc='train compact',
              bar_format='{l_bar}{bar}| {elapsed}<{remaining}{postfix}') as bar:

        def on_step(step: int, loss: float, metrics: dict | None, behind: float) -> None:
            bar.update(100 * behind - bar.n)
            postfix = {'step': step, 'loss': f'{loss:.4f}'}
            if metrics and 'val_mae' in metrics:
                bar.write(f"step {step}: val MAE {metrics['val_mae']:.2f}%, Pearson "
                          f"{metrics['val_pearson']:.3f}" + ''.join(
                              f"; {folder}: MAE {metrics[f'val_mae_folder{i}']:.2f}%, Pearson "
                              f"{metrics[f'val_pearson_folder{i}']:.3f}"
                              for i, folder in enumerate(args.data, 1)
                              if f'val_mae_folder{i}' in metrics) + (
                              f"; its own chains: MAE {metrics['val_chained_mae']:.2f}%, "
                              f"Pearson {metrics['val_chained_pearson']:.3f}"
                              if 'val_chained_mae' in metrics else ''))
            bar.set_postfix(postfix, refresh=step % 10 == 0)

        info = train(args.data, args.out, config, on_step=on_step,
                     extra_info={'arguments': {k: v for k, v in vars(args).items()
                                               if isinstance(v, (str, int, float, list,
                                                                 type(None)))}})
    best = info.get('best_val') or {}
    if info.get('interrupted'):
        print(f"sole-r1 train compact: interrupted at step {info['steps']}; the best weights "
              f'so far (step {info["best_step"]}) are in {info["out"]}', file=sys.stderr)
    elif info.get('epochs_cut_short'):
        print(f'sole-r1 train compact: --minutes {args.minutes} ended training at step '
              f"{info['steps']}, before the --epochs {args.epochs} it would take: raise "
              '--minutes for the whole schedule (the learning rate decays over it)',
              file=sys.stderr)
    summary = {'out': os.path.abspath(info['out']), 'steps': info['steps'],
               'samples': info['samples'], 'train_frames': info['train_frames'],
               'tasks': len(info['tasks']), 'val_episodes': info['val_episodes'],
               'samples_per_s': round(info['samples_per_s'], 1),
               'train_seconds': round(info['train_seconds'], 1),
               'best_step': info['best_step'],
               'best_val_mae': best.get('val_mae'),
               'best_val_pearson': best.get('val_pearson'),
               # the same episodes asked as the reward node asks (its own previous answers)
               'val_chained_mae': info.get('val_chained_mae'),
               'val_chained_pearson': info.get('val_chained_pearson'),
               'best_val_by_folder': {
                   folder: {'mae': best[f'val_mae_folder{i}'],
                            'pearson': best[f'val_pearson_folder{i}']}
                   for i, folder in enumerate(args.data, 1)
                   if f'val_mae_folder{i}' in best}}
    # NaN as null: the printed JSON had a bare NaN, which parsers refuse
    print(json.dumps(to_json(summary), indent=1))
    return 130 if info.get('interrupted') else 0   # saved, but not the run asked for


def _move_previous(out: str) -> str | None:
    """Move a checkpoint already at ``out`` aside: a training run never writes over a model.

    A second ``train compact`` with the same ``--out`` (``make compact-model`` again, a
    distillation run again) replaced the first's file from its first validation on.

    Returns:
        Where the file went, or None when there was none.
    """
    if not os.path.lexists(out):
        return None
    root, ext = os.path.splitext(out)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    aside, number = f'{root}.previous-{stamp}{ext}', 1
    while os.path.lexists(aside):
        number += 1
        aside = f'{root}.previous-{stamp}-{number}{ext}'
    os.replace(out, aside)
    print(f'sole-r1 train compact: {out} was there: moved to {aside}', file=sys.stderr,
          flush=True)
    return aside
