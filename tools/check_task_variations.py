"""Check that sim.variations draws every Meta-World task's variations as MT1 does, byte for byte.

    python tools/check_task_variations.py                # all 50 tasks, seeds 0, 1 and 7 (~3 min)
    python tools/check_task_variations.py --seeds 0 --tasks reach-v3

Exits 1 and names the task and seed of any difference.
"""
import argparse
import sys
import time

import metaworld
from metaworld import _env_dict

from sole_r1_ros.sim.variations import task_variations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tasks', nargs='+', default=sorted(_env_dict.ALL_V3_ENVIRONMENTS))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 7])
    args = parser.parse_args()
    different, fast_s, mt1_s = [], 0.0, 0.0
    for task in args.tasks:
        for seed in args.seeds:
            start = time.process_time()
            fast = task_variations(task, seed)
            middle = time.process_time()
            reference = metaworld.MT1(task, seed=seed).train_tasks
            fast_s, mt1_s = fast_s + middle - start, mt1_s + time.process_time() - middle
            if [t.data for t in fast] != [t.data for t in reference]:
                different.append(f'{task} seed {seed}')
    runs = len(args.tasks) * len(args.seeds)
    print(f'{runs - len(different)} of {runs} task/seed pairs identical; CPU per pair: '
          f'{fast_s / runs:.2f} s against MT1 {mt1_s / runs:.2f} s')
    for item in different:
        print(f'different: {item}')
    return 1 if different else 0


if __name__ == '__main__':
    sys.exit(main())
