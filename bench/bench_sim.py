"""Simulated robot throughput: MetaWorldRobot steps per second, state-only and with two cameras.

For each task, one robot per image size renders the external and the wrist camera every step
(fast CPU rendering settings); state-only steps (``step(render=False)``) run on the same robot.
Actions are seeded random commands; the robot resets when an episode is truncated. Start-up
(robot construction, first GL context) is reported apart from the timed steps. Writes
bench/results/sim.json and prints a markdown table.

``--progress-check`` instead runs every task's scripted expert without rendering (3 seeds, up
to 500 steps, about 2 minutes) and writes bench/results/sim_progress.json: steps to success and
the ground-truth progress along the way, to review the per-task progress measures.
"""
import argparse
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

from sole_r1_ros.sim import MetaWorldRobot, SimConfig, TASK_GOALS

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')
_TASKS = ('drawer-close-v3', 'push-v3', 'door-open-v3')
_SIZES = (128, 224)


def _timed_steps(robot: MetaWorldRobot, steps: int, render: bool, seed: int) -> dict:
    """Steps/s (wall clock) and CPU ms per step (all threads, llvmpipe's included).

    CPU time is the figure to compare across runs on a shared machine: wall-clock rates fall
    with the load average, CPU time per step much less.
    """
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(steps, 4))
    robot.reset(seed=seed, render=render)
    wall, cpu = time.perf_counter(), time.process_time()
    for action in actions:
        observation, info = robot.step(action, render=render)
        if info.truncated:
            robot.reset(render=render)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if render and observation.external.mean() <= 5:
        raise RuntimeError('black frames: the timing would be meaningless')
    return {'steps': steps, 'steps_per_s': round(steps / wall, 1),
            'cpu_ms_per_step': round(1e3 * cpu / steps, 2)}


def _bench_task(task: str, render_steps: int, state_steps: int, seed: int) -> list[dict]:
    rows = []
    for size in _SIZES:
        start = time.perf_counter()
        robot = MetaWorldRobot(SimConfig(task=task, image_width=size, image_height=size))
        built_s = time.perf_counter() - start
        try:
            start = time.perf_counter()
            robot.reset(seed=seed)  # creates the GL context
            first_render_s = time.perf_counter() - start
            rows.append({'task': task, 'mode': f'2 cameras {size}x{size}',
                         **_timed_steps(robot, render_steps, True, seed),
                         'construct_s': round(built_s, 2),
                         'first_render_s': round(first_render_s, 2)})
            if size == _SIZES[0]:
                rows.append({'task': task, 'mode': 'state only',
                             **_timed_steps(robot, state_steps, False, seed)})
        finally:
            robot.close()
    return rows


def _expert_progress(task: str, seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict]:
    robot = MetaWorldRobot(SimConfig(task=task, render=False, max_episode_steps=500))
    rows = []
    try:
        for seed in seeds:
            robot.reset(seed=seed)
            progress, info = [], None
            while info is None or not (info.success or info.truncated):
                _, info = robot.step(robot.expert_action())
                progress.append(info.progress)
            n = len(progress)
            rows.append({'task': task, 'seed': seed, 'variation': robot.variation,
                         'success_step': n if info.success else None,
                         'progress_at_25_50_75_pct_of_steps': [
                             round(progress[int(n * f)]) for f in (0.25, 0.5, 0.75)],
                         'max_progress_before_end': round(max(progress[:-1], default=0.0), 1),
                         'final_progress': round(progress[-1], 1)})
    finally:
        robot.close()
    return rows


def _progress_check(out: str) -> int:
    rows = [row for task in TASK_GOALS for row in _expert_progress(task)]
    with open(out, 'w') as stream:
        json.dump(rows, stream, indent=2)
    print('| task | seed | success step | progress at 25/50/75 % of steps | max before end |')
    print('|---|---:|---:|---|---:|')
    for row in rows:
        print(f"| {row['task']} | {row['seed']} | {row['success_step']} | "
              f"{row['progress_at_25_50_75_pct_of_steps']} | {row['max_progress_before_end']} |")
    failures = sum(row['success_step'] is None for row in rows)
    print(f'{len(rows) - failures}/{len(rows)} expert episodes succeeded; wrote {out}')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', nargs='+', default=list(_TASKS))
    parser.add_argument('--render-steps', type=int, default=150)
    parser.add_argument('--state-steps', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=None, help='default: bench/results/sim.json, or '
                        'sim_progress.json with --progress-check')
    parser.add_argument('--progress-check', action='store_true',
                        help='run the experts on all 50 tasks instead of timing')
    args = parser.parse_args(argv)
    # Meta-World's scripted policies warn about their own gains, which the env clips.
    warnings.filterwarnings('ignore')
    os.makedirs(_RESULTS, exist_ok=True)
    if args.progress_check:
        return _progress_check(args.out or os.path.join(_RESULTS, 'sim_progress.json'))
    args.out = args.out or os.path.join(_RESULTS, 'sim.json')

    rows = []
    for task in args.tasks:
        rows.extend(_bench_task(task, args.render_steps, args.state_steps, args.seed))
    result = {
        'machine': {'python': platform.python_version(), 'cpus': os.cpu_count(),
                    'platform': platform.platform(),
                    'mujoco_gl': os.environ.get('MUJOCO_GL', ''),
                    'load_avg_1min': round(os.getloadavg()[0], 2)},
        'rows': rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as stream:
        json.dump(result, stream, indent=2)

    print(f"MUJOCO_GL={result['machine']['mujoco_gl']}, {result['machine']['cpus']} CPUs, "
          f"load {result['machine']['load_avg_1min']}")
    print('| task | mode | steps | steps/s (wall) | CPU ms/step | build s | first render s |')
    print('|---|---|---:|---:|---:|---:|---:|')
    for row in rows:
        print(f"| {row['task']} | {row['mode']} | {row['steps']} | {row['steps_per_s']} | "
              f"{row['cpu_ms_per_step']} | {row.get('construct_s', '')} | "
              f"{row.get('first_render_s', '')} |")
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
