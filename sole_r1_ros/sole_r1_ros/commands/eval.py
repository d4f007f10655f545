"""``sole-r1 eval reward``: how good is a reward model? VOC, Pearson, AUROC, reward hacking.

Scores labelled episodes (a ``sole-r1 synth`` dataset, or videos with per-frame ground truth
in JSON) through the same engine as the reward node, with any backend, or reads predictions
``sole-r1 score`` already wrote (``--predictions``). Writes the metrics as JSON and the
perceived-vs-true success plot as PNG.
"""
import argparse
import json
import os

from sole_r1_ros.reward.config import OpenAIConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_subparsers(dest='what', metavar='WHAT')
    what.required = True
    reward = what.add_parser('reward', help='reward-model quality against ground-truth progress')
    reward.add_argument('--data', required=True,
                        help='synthetic dataset folder (manifest.json) or a folder of videos '
                             'with NAME.json ground truth')
    source = reward.add_mutually_exclusive_group(required=True)
    source.add_argument('--backend',
                        help='reward backend: compact, oracle, transformers, openai')
    source.add_argument('--predictions', nargs='+', metavar='JSON',
                        help='results.json files of `sole-r1 score`, matched by video name')
    reward.add_argument('--model', default='', help="checkpoint or served model ('' = the "
                        "backend's default; compact: the shipped checkpoint)")
    reward.add_argument('--base-url', default=OpenAIConfig.base_url, help='--backend openai')
    reward.add_argument('--device', default='auto', help='--backend transformers')
    reward.add_argument('--temperature', type=float, default=0.0,
                        help='sampling temperature (default 0: greedy, for evaluation)')
    reward.add_argument('--seed', type=int, default=0)
    reward.add_argument('--tasks', default='', help='synthetic data: comma-separated tasks')
    reward.add_argument('--split', default='val', choices=('train', 'val', 'all'),
                        help="synthetic data: which episodes (default 'val')")
    reward.add_argument('--behaviours', default='', help='synthetic data: comma-separated '
                        'behaviours (default all)')
    reward.add_argument('--max-episodes', type=int, default=None,
                        help='synthetic data: at most N episodes per task')
    reward.add_argument('--paraphrase', action='store_true',
                        help='synthetic data: ask with an unseen paraphrase of each goal')
    schedule = reward.add_mutually_exclusive_group()
    schedule.add_argument('--num-queries', type=int, default=None,
                          help='evenly spaced queries per episode (default 10)')
    schedule.add_argument('--stride', type=int, default=None, help='query every K-th frame')
    reward.add_argument('--batch-size', type=int, default=32, help='queries per backend call')
    reward.add_argument('--out', metavar='JSON', help='write the metrics')
    reward.add_argument('--plot', metavar='PNG', help='write the perceived-vs-true plot')


def run(args: argparse.Namespace) -> int:
    from sole_r1_ros.evaluation import plots, reward_eval

    episodes = _load(args)
    if not episodes:
        raise ValueError(f'no episodes selected in {args.data}')
    if args.predictions:
        scores = reward_eval.scores_from_results(args.predictions, episodes)
        label = 'predictions'
    else:
        scores, label = _score(args, episodes)
    summary = reward_eval.summarise(scores)
    summary['source'] = label
    summary['data'] = args.data
    result = reward_eval.to_json(summary)
    for path in (args.out, args.plot):
        if path and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as stream:
            json.dump(result, stream, indent=1)
    if args.plot:
        plots.plot_perceived(summary, args.plot, title=f'{label} on {args.data}')
    _print(result)
    return 0


def _load(args: argparse.Namespace) -> list:
    from sole_r1_ros.compact.goals import EVAL_PARAPHRASES
    from sole_r1_ros.evaluation import reward_eval

    if not os.path.isdir(args.data):
        raise FileNotFoundError(f'no such folder: {args.data}')
    if not os.path.isfile(os.path.join(args.data, 'manifest.json')):
        return reward_eval.load_external(args.data)
    goals = {t: p[0] for t, p in EVAL_PARAPHRASES.items()} if args.paraphrase else None
    return reward_eval.load_synthetic(
        args.data, tasks=_list(args.tasks), split=args.split, behaviours=_list(args.behaviours),
        goals=goals, limit=args.max_episodes)


def _list(text: str) -> list[str] | None:
    items = [t.strip() for t in text.split(',') if t.strip()]
    return items or None


def _score(args: argparse.Namespace, episodes: list) -> tuple[list, str]:
    from tqdm import tqdm

    from sole_r1_ros.evaluation import reward_eval
    from sole_r1_ros.reward import BackendError, make_backend, RewardConfig, RewardEngine
    from sole_r1_ros.reward.config import TransformersConfig

    config = RewardConfig(
        backend=args.backend, model=args.model, temperature=args.temperature, seed=args.seed,
        max_batch_size=args.batch_size, timeout_s=86400.0,
        transformers=TransformersConfig(device=args.device),
        openai=OpenAIConfig(base_url=args.base_url))
    try:
        backend = make_backend(config)
    except (BackendError, ImportError) as exc:
        raise ValueError(f'cannot start the {args.backend} backend: {exc}') from exc
    num_queries = None if args.stride else (args.num_queries or 10)
    total = sum(len(reward_eval.query_steps(e, num_queries, args.stride)) for e in episodes)
    with RewardEngine(backend, config) as engine, \
            tqdm(total=total, desc=f'scoring ({engine.model_id})', unit='query') as bar:
        scores = reward_eval.score_with_engine(
            engine, episodes, num_queries, args.stride, on_batch=lambda b: bar.update(len(b)))
        return scores, engine.model_id


def _print(result: dict) -> None:
    def fmt(value: object) -> str:
        return 'n/a' if value is None else f'{value:.3f}'

    print(f"{result['source']}: {result['n_episodes']} episodes, {result['n_queries']} queries")
    print(f"  VOC {fmt(result['voc'])} (ground truth itself: {fmt(result['voc_truth'])})  "
          f"Pearson {fmt(result['pearson'])}  AUROC {fmt(result['auroc'])}  "
          f"MAE {fmt(result['mae'])}%")
    for task, group in result['per_task'].items():
        print(f"  {task:<32} perceived {group['perceived']:5.1f}  true {group['true']:5.1f}  "
              f"VOC {fmt(group['voc'])}  Pearson {fmt(group['pearson'])}")
