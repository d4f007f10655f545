"""Where a pooled AUROC is lost: the same episodes with some final answers replaced.

The data README's "What the pooled AUROC is made of" comes from this diagnostic. It reads the
JSON that ``sole-r1 eval reward --out`` writes and scores the episodes' final answers again
with every failure answered at its true final progress, and with one task's successes (then
the lowest-answered tasks' together) raised to at least ``--floor``: what a model that read
those would gain. Nothing is re-run; no model is needed.

    sole-r1 eval reward --backend compact --erased-model shipped --erased-data runs/erased \\
        --data runs/compact_data --tasks $HELD --split all --out pair.json
    python tools/auroc_breakdown.py pair.json
"""
import argparse
import json

import numpy as np

from sole_r1_ros.evaluation.metrics import auroc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('summary', help="the JSON of 'sole-r1 eval reward --out'")
    parser.add_argument('--floor', type=float, default=90.0,
                        help='raised successes are answered at least this [%%]')
    args = parser.parse_args()
    with open(args.summary, encoding='utf-8') as f:
        episodes = json.load(f)['episodes']
    final = np.array([e['predicted'][-1] for e in episodes], dtype=float)
    success = np.array([bool(e['success']) for e in episodes])
    task = np.array([e['task'] for e in episodes])

    def score(answers: np.ndarray) -> float:
        return auroc(answers.tolist(), success.tolist())

    truth = np.array([e['truth'][-1] for e in episodes], dtype=float)
    print(f'{len(episodes)} episodes, {int(success.sum())} successes: pooled AUROC '
          f'{score(final):.3f}')
    print(f'every failure answered at its true final progress: '
          f'{score(np.where(success, final, truth)):.3f}')
    medians = {t: float(np.median(final[success & (task == t)]))
               for t in sorted(set(task)) if (success & (task == t)).any()}
    raised = np.zeros(len(episodes), dtype=bool)
    print(f'successes raised to >= {args.floor:g} %, one task / with the tasks above it:')
    for name, median in sorted(medians.items(), key=lambda item: item[1]):
        alone = success & (task == name)
        raised |= alone
        print(f'  {name:28s} (median answer {median:5.1f} %): '
              f'{score(np.where(alone, np.maximum(final, args.floor), final)):.3f} / '
              f'{score(np.where(raised, np.maximum(final, args.floor), final)):.3f}')


if __name__ == '__main__':
    main()
