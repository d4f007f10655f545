"""Several reward files as one: their answers joined query by query, scored as one reward.

The data README's "The smallest answer of several files" comes from this diagnostic. Each
input is the JSON of ``sole-r1 eval reward --out`` for one file on the same episodes (each file
on its own chain of previous answers, as a compact pair asks its halves); the smallest or the
mean answer of every query is scored as ``eval reward`` scores one file: VOC over the expert
episodes, Pearson over every query, AUROC of the final answers.

    sole-r1 eval reward --backend compact --model A.pt --data D --split all --out a.json
    sole-r1 eval reward --backend compact --model B.pt --data D --split all --out b.json
    python tools/join_answers.py a.json b.json --join min
"""
import argparse
import json

import numpy as np

from sole_r1_ros.evaluation.metrics import auroc, pearson, value_order_correlation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('summaries', nargs='+', help="JSONs of 'sole-r1 eval reward --out'")
    parser.add_argument('--join', choices=('min', 'mean'), default='min')
    args = parser.parse_args()
    runs = []
    for path in args.summaries:
        with open(path, encoding='utf-8') as f:
            runs.append({e['episode_id']: e for e in json.load(f)['episodes']})
    if any(set(run) != set(runs[0]) for run in runs):
        raise SystemExit('the JSONs score different episodes: evaluate every file on the same '
                         '--data, --tasks and --split')
    join = np.min if args.join == 'min' else np.mean
    episodes = list(runs[0].values())
    answers = [join(np.stack([run[e['episode_id']]['predicted'] for run in runs]), axis=0)
               for e in episodes]
    voc = np.nanmean([value_order_correlation(a) for a, e in zip(answers, episodes)
                      if e['behaviour'] == 'expert'])
    linear = pearson(np.concatenate(answers), np.concatenate([e['truth'] for e in episodes]))
    separation = auroc([a[-1] for a in answers], [bool(e['success']) for e in episodes])
    print(f'{len(runs)} files, {args.join}, {len(episodes)} episodes: VOC {voc:.3f}  '
          f'Pearson {linear:.3f}  AUROC {separation:.3f}')


if __name__ == '__main__':
    main()
