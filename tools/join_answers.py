"""Several reward files as one: their answers joined query by query, scored as one reward.

The data README's "The smallest answer of several files" comes from this diagnostic. Each
input is the JSON of ``sole-r1 eval reward --out`` for one file on the same episodes of
``--data`` (each file on its own chain of previous answers, as a compact pair asks its halves);
the smallest or the mean answer of every query is scored by ``eval reward``'s own summary
(``evaluation.reward_eval.summarise``): VOC over the expert episodes, Pearson over every query,
AUROC of the final answers.

    sole-r1 eval reward --backend compact --model A.pt --data D --split all --out a.json
    sole-r1 eval reward --backend compact --model B.pt --data D --split all --out b.json
    python tools/join_answers.py --data D a.json b.json --join min
"""
import argparse
import json

import numpy as np

from sole_r1_ros.evaluation import reward_eval


# How the files' answers to one query make one: each takes (files x queries, axis=0).
JOINS = {'min': np.min, 'mean': np.mean, 'median': np.median,
         'low2': lambda a, axis: np.sort(a, axis=axis)[:2].mean(axis=axis)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('summaries', nargs='+', help="JSONs of 'sole-r1 eval reward --out'")
    parser.add_argument('--data', required=True, help='the labelled episodes they scored')
    parser.add_argument('--join', choices=sorted(JOINS), default='min',
                        help='the smallest, the mean, the median, or the mean of the two '
                             'smallest answers (low2)')
    args = parser.parse_args()
    runs = []
    for path in args.summaries:
        with open(path, encoding='utf-8') as f:
            runs.append({e['episode_id']: e for e in json.load(f)['episodes']})
    if any(set(run) != set(runs[0]) for run in runs):
        raise SystemExit('the JSONs score different episodes: evaluate every file on the same '
                         '--data, --tasks and --split')
    episodes = {e.episode_id: e for e in reward_eval.load_episodes(args.data)}
    missing = sorted(set(runs[0]) - set(episodes))
    if missing:
        raise SystemExit(f'{len(missing)} scored episodes are not in {args.data}, e.g. '
                         f'{missing[0]}')
    join = JOINS[args.join]
    scores = [reward_eval.EpisodeScore(
        episodes[key], tuple(first['steps']),
        tuple(join(np.stack([run[key]['predicted'] for run in runs]), axis=0).tolist()),
        tuple(first['truth'])) for key, first in runs[0].items()]
    summary = reward_eval.summarise(scores)
    print(f"{len(runs)} files, {args.join}, {len(scores)} episodes: VOC {summary['voc']:.3f} "
          f"(every expert: {summary['voc_all_experts']:.3f})  Pearson {summary['pearson']:.3f}"
          f"  AUROC {summary['auroc']:.3f}")


if __name__ == '__main__':
    main()
