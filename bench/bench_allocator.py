"""The DrQ-v2 update on the CPU: glibc's default malloc against ``allocator.keep_freed_memory``.

The learner and reward nodes call ``keep_freed_memory()`` at start. Malloc settings hold for a
whole process, so each round runs one child process per way, in turn (``default`` then
``kept``), so that other load on a shared machine hits both alike; each child builds the demo's
agent (``bench_drq.DEMO``, one torch thread), warms up, then times updates and acts and reports
their wall and CPU time, the part of it in the kernel, page faults and peak memory.

    python bench/bench_allocator.py             # batch 128 (the demo's) and 256, ~3 minutes
    python bench/bench_allocator.py --quick     # batch 128, 2 rounds (allocator_quick.*)

Writes ``bench/results/allocator.json`` and ``allocator.md`` and prints the table.
"""
import argparse
import json
from pathlib import Path
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

RESULTS = Path(__file__).resolve().parent / 'results'
WAYS = ('default', 'kept')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[128, 256],
                        help='batch sizes, one row each (128: the demo)')
    parser.add_argument('--rounds', type=int, default=5, help='rounds per row (median)')
    parser.add_argument('--updates', type=int, default=8, help='timed updates per child')
    parser.add_argument('--quick', action='store_true', help='batch 128, 2 rounds of 3 updates')
    parser.add_argument('--out', type=Path, default=RESULTS)
    parser.add_argument('--child', choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument('--batch', type=int, default=128, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.rounds, args.updates = [128], 2, 3
    return args


def _usage() -> tuple[float, float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime, usage.ru_minflt


def child(way: str, batch_size: int, updates: int) -> dict[str, Any]:
    """One process: the agent's updates and acts timed under one way of allocating."""
    import numpy as np
    import torch

    import bench_drq
    from sole_r1_ros.allocator import keep_freed_memory
    from sole_r1_ros.rl.config import DrQConfig
    from sole_r1_ros.rl.drq import DrQAgent

    applied = keep_freed_memory() if way == 'kept' else False
    torch.set_num_threads(1)
    config = DrQConfig(**{**bench_drq.DEMO, 'batch_size': batch_size})
    agent = DrQAgent(config, bench_drq.STATE_DIM, bench_drq.ACTION_DIM)
    rng = np.random.default_rng(0)
    batch = bench_drq.make_batch(config, rng)
    obs = bench_drq.make_observation(config, rng)
    for _ in range(2):
        agent.update(batch)
    cpu0, sys0, faults0 = _usage()
    start = time.perf_counter()
    for _ in range(updates):
        agent.update(batch)
    wall = time.perf_counter() - start
    cpu1, sys1, faults1 = _usage()
    acts = []
    for _ in range(50):
        start = time.perf_counter()
        agent.act(obs, explore=True)
        acts.append(time.perf_counter() - start)
    return {'way': way, 'applied': applied, 'update_ms': 1e3 * wall / updates,
            'update_cpu_ms': 1e3 * (cpu1 - cpu0) / updates,
            'update_kernel_ms': 1e3 * (sys1 - sys0) / updates,
            'faults_per_update': (faults1 - faults0) / updates,
            'act_ms': 1e3 * statistics.median(acts),
            'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_row(batch_size: int, rounds: int, updates: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    for _ in range(rounds):
        for way in WAYS:
            done = subprocess.run(
                [sys.executable, __file__, '--child', way, '--batch', str(batch_size),
                 '--updates', str(updates)], capture_output=True, text=True, check=True)
            runs[way].append(json.loads(done.stdout.strip().splitlines()[-1]))
    row: dict[str, Any] = {'batch_size': batch_size}
    for way in WAYS:
        for key in ('update_ms', 'update_cpu_ms', 'update_kernel_ms', 'faults_per_update',
                    'act_ms', 'peak_rss_mb'):
            row[f'{way}_{key}'] = statistics.median(r[key] for r in runs[way])
    row['kept_applied'] = all(r['applied'] for r in runs['kept'])
    row['speedup'] = statistics.median(d['update_ms'] / k['update_ms']
                                       for d, k in zip(runs['default'], runs['kept']))
    return row


def table(doc: dict[str, Any]) -> str:
    lines = ['| batch | way | update ms | CPU ms | of it in the kernel | page faults | act ms | '
             'peak MB | x faster |', '|---|---|---|---|---|---|---|---|---|']
    for r in doc['rows']:
        for way in WAYS:
            speedup = f"{r['speedup']:.2f}" if way == 'kept' else '1'
            lines.append(f"| {r['batch_size']} | {way} | {r[f'{way}_update_ms']:.0f} | "
                         f"{r[f'{way}_update_cpu_ms']:.0f} | {r[f'{way}_update_kernel_ms']:.0f} | "
                         f"{r[f'{way}_faults_per_update']:,.0f} | {r[f'{way}_act_ms']:.2f} | "
                         f"{r[f'{way}_peak_rss_mb']:.0f} | {speedup} |")
    hw = doc['hardware']
    lines.append('')
    lines.append(f"DrQ-v2 at the demo's shapes, one torch thread; medians of {doc['rounds']} "
                 f"rounds, {doc['updates']} updates per child process, the ways in turn. "
                 f"{hw['cpu_cores']}-core {hw['cpu_model']}, torch {hw['torch']}; load average "
                 f"before/after: {doc['loadavg_before']} / {doc['loadavg_after']}.")
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.updates)))
        return 0
    import torch

    import results_io
    load_before = results_io.load_average()
    rows = [run_row(batch, args.rounds, args.updates) for batch in args.batches]
    doc = {'hardware': results_io.hardware(torch=torch.__version__),
           'command': ' '.join([sys.executable] + sys.argv), 'rounds': args.rounds,
           'updates': args.updates, 'rows': rows, 'loadavg_before': load_before,
           'loadavg_after': results_io.load_average()}
    name = 'allocator_quick' if args.quick else 'allocator'
    results_io.write_doc_and_table(args.out, name, doc, table(doc))
    return 0


if __name__ == '__main__':
    sys.exit(main())
