"""``sole-r1 finetune``: fine-tune SOLE-R1 on your own robot (prepare -> sft -> grpo).

``prepare`` turns labelled episodes (an episode folder or a recorded bag plus labels) into the
SOLE-R1 training format; ``sft`` and ``grpo`` train a Qwen3-VL checkpoint on it with TRL and
export a merged checkpoint that ``sole-r1 score --model DIR`` and the reward node load. The
algorithms live in ``sole_r1_ros.finetune``; this module only maps flags to its configs.
"""
import argparse
import logging
import os
import sys

from sole_r1_ros.commands.reward_flags import positive_int
from sole_r1_ros.configuration import from_mapping
from sole_r1_ros.finetune.config import GrpoConfig, SCHEDULERS, SftConfig
from sole_r1_ros.finetune.episodes import QuerySchedule
from sole_r1_ros.finetune.rewards import KERNELS, ProgressRewardConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stages = parser.add_subparsers(dest='stage', metavar='STAGE')
    stages.required = True
    _add_prepare(stages.add_parser(
        'prepare', help='labelled episodes (folder or bag) -> SOLE-R1 training examples'))
    sft = stages.add_parser('sft', help='supervised fine-tuning on <think>/<answer> targets')
    _add_training(sft, default_lr=1e-4)
    sft.add_argument('--max-length', type=int, default=None,
                     help='truncate longer sequences [tokens] (default: keep all)')
    grpo = stages.add_parser('grpo', help='GRPO with the format + accuracy progress reward')
    _add_training(grpo, default_lr=1e-5)
    _add_grpo(grpo)


def _add_prepare(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--episodes', metavar='DIR',
                        help='folder of labelled episodes: episodes/<id>/labels.json + '
                             'external.mp4 [+ wrist.mp4] or frames.npz (labelled/FORMAT.md)')
    source.add_argument('--bag', metavar='BAG', help='rosbag2 folder recorded by sole-r1 record')
    parser.add_argument('--labels', metavar='JSON', help='--bag: progress labels per episode')
    parser.add_argument('--external-topic', default='camera/external/image_raw')
    parser.add_argument('--wrist-topic', default='camera/wrist/image_raw',
                        help="--bag: wrist image topic ('' for external-only)")
    parser.add_argument('--out', required=True, metavar='DIR', help='new dataset folder')
    parser.add_argument('--split', default='train', choices=('train', 'val', 'all'),
                        help="--episodes: which episodes (default 'train': those marked 'val' "
                        "are kept for evaluation; a recording's, unmarked, are in every split)")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument('--num-queries', type=positive_int, default=None,
                          help='evenly spaced queries per episode (default 10)')
    schedule.add_argument('--stride', type=positive_int, default=None,
                          help='query every K-th frame')
    parser.add_argument('--from-zero', action='store_true',
                        help='build first | current examples (no previous progress)')
    parser.add_argument('--no-wrist', action='store_true', help='external-only examples')


def _add_training(parser: argparse.ArgumentParser, default_lr: float) -> None:
    parser.add_argument('--data', required=True, metavar='DIR',
                        help='`finetune prepare` output or a `synth --export-sole-r1` folder')
    parser.add_argument('--model', required=True,
                        help='Qwen3-VL checkpoint folder (SOLE-R1-8B, Qwen3-VL-8B-Instruct, an '
                             "SFT output), or 'tiny-random' for a dry run")
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='checkpoint folder to write (loadable by sole-r1 score --model)')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into an --out that already holds files (refused otherwise)')
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in --out from its newest TRL checkpoint (kept '
                             'with --save-steps)')
    method = parser.add_mutually_exclusive_group()
    method.add_argument('--lora', dest='method', action='store_const', const='lora',
                        help='LoRA adapters on the language model, merged at export (default)')
    method.add_argument('--full', dest='method', action='store_const', const='full',
                        help='train all language-model weights')
    parser.set_defaults(method='lora')
    parser.add_argument('--lora-rank', type=int, default=16)
    parser.add_argument('--lora-alpha', type=int, default=32)
    parser.add_argument('--train-vision', action='store_true',
                        help='--full: also train the vision tower')
    length = parser.add_mutually_exclusive_group()
    length.add_argument('--epochs', type=float, default=1.0)
    length.add_argument('--max-steps', type=int, default=None, help='optimizer steps')
    parser.add_argument('--lr', type=float, default=default_lr,
                        help=f'learning rate (default {default_lr:g})')
    parser.add_argument('--batch-size', type=int, default=1, help='per forward pass')
    parser.add_argument('--grad-accum', type=int, default=8, help='forward passes per step')
    parser.add_argument('--warmup-steps', type=int, default=0)
    parser.add_argument('--lr-scheduler', default='cosine', choices=SCHEDULERS)
    parser.add_argument('--bf16', default='auto', choices=('auto', 'on', 'off'),
                        help="'auto': bf16 on a capable CUDA GPU, fp32 on CPU")
    parser.add_argument('--gradient-checkpointing', action='store_true',
                        help='recompute activations: less memory, slower')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    parser.add_argument('--optim', default='adamw_torch', help='transformers optimizer name')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--logging-steps', type=int, default=10)
    parser.add_argument('--save-steps', type=int, default=0,
                        help='keep TRL checkpoints every N steps under OUT/trainer (0: none)')
    parser.add_argument('--max-examples', type=int, default=None,
                        help='use only the first N examples (smoke runs)')
    parser.add_argument('--from-zero-dropout', type=float, default=0.0, metavar='P',
                        help='probability of the from-zero prompt instead of the previous one')
    parser.add_argument('--jitter-dropout', type=float, default=0.0, metavar='P',
                        help='probability of a jittered previous progress in the prompt')
    parser.add_argument('--jitter-max', type=int, default=10,
                        help='largest previous-progress jitter [percentage points]')


def _add_grpo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--num-generations', type=int, default=8,
                        help='completions per prompt (one GRPO group)')
    parser.add_argument('--max-completion-length', type=int, default=200, help='[tokens]')
    parser.add_argument('--beta', type=float, default=0.0, help='KL coefficient (0: no ref)')
    parser.add_argument('--temperature', type=float, default=1.0)
    parser.add_argument('--format-weight', type=float, default=ProgressRewardConfig.format_weight)
    parser.add_argument('--accuracy-weight', type=float,
                        default=ProgressRewardConfig.accuracy_weight)
    parser.add_argument('--kernel', default=ProgressRewardConfig.kernel, choices=KERNELS,
                        help="accuracy vs distance d: 'exp' exp(-d/tau), 'linear' 1-d/max")
    parser.add_argument('--tau', type=float, default=ProgressRewardConfig.tau,
                        help="'exp' decay length [percentage points]")
    parser.add_argument('--max-distance', type=float, default=ProgressRewardConfig.max_distance,
                        help="'linear' zero point [percentage points]")


def _train_values(args: argparse.Namespace) -> dict:
    return {
        'model': args.model, 'output_dir': args.out, 'method': args.method,
        'lora_rank': args.lora_rank, 'lora_alpha': args.lora_alpha,
        'train_vision': args.train_vision, 'epochs': args.epochs, 'max_steps': args.max_steps,
        'learning_rate': args.lr, 'batch_size': args.batch_size, 'grad_accum': args.grad_accum,
        'warmup_steps': args.warmup_steps, 'lr_scheduler': args.lr_scheduler, 'bf16': args.bf16,
        'gradient_checkpointing': args.gradient_checkpointing, 'device': args.device,
        'optim': args.optim, 'seed': args.seed, 'logging_steps': args.logging_steps,
        'save_steps': args.save_steps, 'resume': args.resume, 'max_examples': args.max_examples,
        'dropout': {'from_zero_p': args.from_zero_dropout, 'jitter_p': args.jitter_dropout,
                    'jitter_max': args.jitter_max, 'seed': args.seed}}


def stage_config(args: argparse.Namespace) -> SftConfig | GrpoConfig:
    """Build the stage's config from the flags.

    Goes through ``configuration.from_mapping`` (one validator, the configs' own defaults).
    """
    if args.stage == 'sft':
        return from_mapping(SftConfig, {'train': _train_values(args),
                                        'max_length': args.max_length})
    return from_mapping(GrpoConfig, {
        'train': _train_values(args), 'num_generations': args.num_generations,
        'max_completion_length': args.max_completion_length, 'beta': args.beta,
        'temperature': args.temperature,
        'reward': {'format_weight': args.format_weight, 'accuracy_weight': args.accuracy_weight,
                   'kernel': args.kernel, 'tau': args.tau, 'max_distance': args.max_distance}})


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    if args.stage == 'prepare':
        return _prepare(args)
    from sole_r1_ros.finetune import trainers

    _check_out(args.out, args.model, args.overwrite or args.resume)
    if args.resume:   # before the model loads
        trainers.check_resumable(args.out)
    config = stage_config(args)
    if args.stage == 'sft':
        result = trainers.run_sft(config, args.data)
    else:
        result = trainers.run_grpo(config, args.data)
    losses = [h['loss'] for h in result.log_history if 'loss' in h]
    last = f', last logged loss {losses[-1]:.4g}' if losses else ''
    print(f'{args.stage}: {result.steps} steps in {result.train_s:.1f} s{last}')
    print(f'checkpoint: {result.checkpoint}')
    print(f'try it:   sole-r1 score VIDEO --goal TASK --model {result.checkpoint}')
    print(f'evaluate: sole-r1 eval reward --data DATA --backend transformers '
          f'--model {result.checkpoint}')
    return 0


def _check_out(out: str, model: str, overwrite: bool) -> None:
    """Refuse, before hours of training, an --out that would replace a model or other files."""
    if os.path.exists(model) and os.path.realpath(out) == os.path.realpath(model):
        raise ValueError(f'--out {out} is the --model being trained: give a new folder')
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise ValueError(f'--out {out} already holds files (a checkpoint?): give a new folder, '
                         'or --overwrite')


def _prepare(args: argparse.Namespace) -> int:
    from sole_r1_ros import labelled
    from sole_r1_ros.finetune import bag_source, episodes

    schedule = from_mapping(QuerySchedule, {
        'num_queries': args.num_queries, 'stride': args.stride, 'from_zero': args.from_zero,
        'use_wrist': not args.no_wrist})
    read = os.path.realpath(args.bag or args.episodes)
    out = os.path.realpath(args.out)
    if out == read or out.startswith(read + os.sep):   # the dataset written into its source
        raise ValueError(f'--out {args.out} is inside what it is made from '
                         f'({args.bag or args.episodes}): give a new folder')
    if args.bag:
        if not args.labels:
            raise ValueError('--bag needs --labels (progress labels per episode)')
        if args.split != 'train':
            raise ValueError('--split selects among --episodes; a bag has no split')
        source = {'bag': os.path.abspath(args.bag), 'labels': os.path.abspath(args.labels)}
        chosen = bag_source.iter_episodes(args.bag, args.labels, schedule,
                                          args.external_topic, args.wrist_topic or None)
    else:
        bag_flags = [flag for flag, given in (
            ('--labels', args.labels),
            ('--external-topic', args.external_topic != 'camera/external/image_raw'),
            ('--wrist-topic', args.wrist_topic != 'camera/wrist/image_raw')) if given]
        if bag_flags:
            raise ValueError(f'{", ".join(bag_flags)} read a --bag; --episodes has its labels '
                             'and views in its folder (--no-wrist for the external view only)')
        source = {'episodes': os.path.abspath(args.episodes), 'split': args.split}
        try:
            entries = labelled.list_episodes(args.episodes)
        except FileNotFoundError:   # another layout: iter_episodes reads it, or says why
            entries = []
        unmarked = entries and not any(e.get('split') == 'val' for e in entries)
        if args.split == 'train' and unmarked:
            # Unmarked episodes pass every split: eval reward's default --split val then
            # scores the very episodes trained on, and the tuned model looks better than it is.
            print(f'sole-r1 finetune prepare: warning: no episode of {args.episodes} is marked '
                  '"split": "val": all of them train, and eval reward on this folder scores '
                  'episodes the model was tuned on; mark some "val" in their labels.json',
                  file=sys.stderr)
        from sole_r1_ros.camera.tiles import shrink_to_tile
        # Frames shrunk to the composite's tile as decoded (the composite is pixel-identical):
        # a 30 s 640x480 episode at --stride 1 held 276 MB.
        chosen = labelled.iter_episodes(args.episodes, wanted=schedule.steps,
                                        use_wrist=schedule.use_wrist,
                                        split=None if args.split == 'all' else args.split,
                                        video_transform=shrink_to_tile)
    count = episodes.write_dataset(chosen, args.out, schedule, source)
    print(f'{count} training examples in {args.out}')
    return 0
