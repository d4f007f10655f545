"""``sole-r1 train MODEL``: train a model offline; ``train compact`` is the compact progress model.

``sole-r1 train compact --data DIR --out FILE`` fits the compact network on a synthetic dataset
(``sole-r1 synth``) within a wall-clock budget, validating on the dataset's split='val'
episodes and keeping the best weights. The shipped checkpoint is made by the command in
``sole_r1_ros/data/README.md``.
"""
import argparse
import json
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_subparsers(dest='model', metavar='MODEL')
    models.required = True
    compact = models.add_parser('compact', help='the compact CNN progress model (reward backend '
                                '"compact")')
    compact.add_argument('--data', required=True, help='synthetic dataset folder')
    compact.add_argument('--out', required=True, help='checkpoint file to write (.pt)')
    compact.add_argument('--tasks', default='',
                         help='comma-separated tasks to train on (default: all in the data)')
    compact.add_argument('--minutes', type=float, default=15.0,
                         help='wall-clock training budget (default 15)')
    compact.add_argument('--epochs', type=float, default=None,
                         help='stop after this many passes over the training frames')
    compact.add_argument('--batch-size', type=int, default=64)
    compact.add_argument('--lr', type=float, default=1e-3, help='peak learning rate')
    compact.add_argument('--approach-credit', type=float, default=10.0,
                         help='progress [%%] credited for reaching the object before it moves '
                              '(0: simulator progress only)')
    compact.add_argument('--eval-every', type=float, default=90.0, metavar='S',
                         help='validate every S seconds')
    compact.add_argument('--threads', type=int, default=1,
                         help='torch CPU threads (default 1: best on shared cores)')
    compact.add_argument('--seed', type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    from sole_r1_ros.compact.train import train, TrainConfig

    logging.getLogger('sole_r1_ros').setLevel(logging.WARNING)
    tasks = tuple(t.strip() for t in args.tasks.split(',') if t.strip()) or None
    config = TrainConfig(
        tasks=tasks, minutes=args.minutes, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr, approach_credit=args.approach_credit,
        eval_every_s=args.eval_every, threads=args.threads, seed=args.seed)
    with tqdm(total=round(args.minutes * 60), desc='train compact', unit='s',
              bar_format='{l_bar}{bar}| {n_fmt}/{total_fmt} s {postfix}') as bar:
        start = [None]

        def on_step(step: int, loss: float, metrics: dict | None) -> None:
            import time

            now = time.perf_counter()
            start[0] = start[0] or now
            bar.n = min(bar.total, round(now - start[0]))
            postfix = {'step': step, 'loss': f'{loss:.4f}'}
            if metrics and 'val_mae' in metrics:
                bar.write(f"step {step}: val MAE {metrics['val_mae']:.2f}%, Pearson "
                          f"{metrics['val_pearson']:.3f}")
            bar.set_postfix(postfix, refresh=step % 10 == 0)

        info = train(args.data, args.out, config, on_step=on_step,
                     extra_info={'arguments': {k: v for k, v in vars(args).items()
                                               if isinstance(v, (str, int, float, type(None)))}})
    best = info.get('best_val') or {}
    print(json.dumps({'out': os.path.abspath(args.out), 'steps': info['steps'],
                      'samples': info['samples'], 'train_frames': info['train_frames'],
                      'samples_per_s': round(info['samples_per_s'], 1),
                      'best_step': info['best_step'],
                      'best_val_mae': best.get('val_mae'),
                      'best_val_pearson': best.get('val_pearson')}, indent=1))
    return 0
