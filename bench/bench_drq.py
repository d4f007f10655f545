"""Micro-benchmark of the DrQ-v2 pixels agent on the CPU: ``update`` rate and ``act`` latency.

Synthetic batches at the demo's shapes (two 3x64x64 uint8 views, 25-dim proprioception,
4-dim actions); no simulator, no replay buffer. Every variant is one ``DrQConfig`` (plus the
number of torch threads) built side by side, and the variants take turns, a few updates each,
round after round, so that other load on a shared machine hits all of them alike; the table
gives medians over rounds and each variant's speed-up over the first row (the float32 path;
the demo's precision auto is bfloat16 on a CPU that has it, the third row),
the median of per-round ratios. Rates are given per wall-clock second and per CPU second of the
process: on a shared machine the second is the steadier measure of what a variant costs.

    python bench/bench_drq.py                # about 4 minutes on 2 cores
    python bench/bench_drq.py --quick        # smoke run (to drq_quick.json / .md)
    python bench/bench_drq.py --no-compile   # without torch.compile (drq_no_compile.*)
    python bench/bench_drq.py --no-compile   # skip the torch.compile row (its compile is slow)

Writes ``bench/results/drq.json`` and ``drq.md`` and prints the table.
"""
import argparse
import contextlib
import copy
import dataclasses
from pathlib import Path
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

import results_io
from sole_r1_ros.rl.config import DrQConfig
from sole_r1_ros.rl.drq import DrQAgent
from sole_r1_ros.rl.networks import cpu_has_bf16, random_shift
from sole_r1_ros.rl.replay import Batch

RESULTS = Path(__file__).resolve().parent / 'results'
STATE_DIM, ACTION_DIM = 25, 4
# today's demo settings (config/demo.yaml, bench_rl.py PIXEL_OVERRIDES)
DEMO = dict(variant='pixels', image_size=64, batch_size=128, utd_ratio=0.5, encoder_channels=32,
            encoder_strides=(2, 2, 1, 1), feature_dim=50, hidden_dim=256, seed_steps=0)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row: config overrides on top of ``DEMO``, torch threads and a bench-only tweak."""

    name: str
    overrides: dict[str, Any]
    threads: int = 1
    tweak: str = ''   # 'trunks_fp32', 'heads_bf16' or 'compile'


VARIANTS = [
    Variant('float32, channels-last (row 1)', {'precision': 'float32'}),
    Variant('float32, NCHW', {'precision': 'float32', 'channels_last': False}),
    Variant('bfloat16 (auto here: encoder + trunks)', {'precision': 'auto'}),
    Variant('bfloat16, NCHW', {'precision': 'bfloat16', 'channels_last': False}),
    Variant('bfloat16 encoder only', {'precision': 'bfloat16'}, tweak='trunks_fp32'),
    Variant('bfloat16 + policy/Q MLPs (not used)', {'precision': 'bfloat16'},
            tweak='heads_bf16'),
    Variant('float32, 2 threads', {'precision': 'float32'}, threads=2),
    Variant('bfloat16, 2 threads', {'precision': 'bfloat16'}, threads=2),
    Variant('bfloat16, batch 64', {'precision': 'bfloat16', 'batch_size': 64}),
    Variant('bfloat16, batch 256', {'precision': 'bfloat16', 'batch_size': 256}),
    Variant('bfloat16, 16 channels', {'precision': 'bfloat16', 'encoder_channels': 16}),
    Variant('bfloat16, strides 2,2,2,1', {'precision': 'bfloat16',
                                          'encoder_strides': (2, 2, 2, 1)}),
    Variant('bfloat16, 48 px', {'precision': 'bfloat16', 'image_size': 48}),
]
COMPILED = Variant('bfloat16 + torch.compile(encoder)', {'precision': 'bfloat16'},
                   tweak='compile')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=15, help='interleaved rounds (median)')
    parser.add_argument('--updates', type=int, default=2, help='updates per variant per round')
    parser.add_argument('--acts', type=int, default=20, help='act calls per variant per round')
    parser.add_argument('--no-compile', action='store_true', help='skip the torch.compile row')
    parser.add_argument('--quick', action='store_true', help='2 rounds of 1 update, no compile')
    parser.add_argument('--out', type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.updates, args.acts, args.no_compile = 2, 1, 5, True
    return args


def make_batch(config: DrQConfig, rng: np.random.Generator) -> Batch:
    """A replay-shaped batch of random frames (the cost does not depend on the pixel values)."""
    b, s = config.batch_size, config.image_size
    shape = (b, len(config.image_keys), 3, s, s)
    return Batch(state=rng.normal(size=(b, STATE_DIM)).astype(np.float32),
                 images=rng.integers(0, 256, shape, dtype=np.uint8),
                 action=rng.uniform(-1, 1, (b, ACTION_DIM)).astype(np.float32),
                 reward=rng.uniform(0, 1, b).astype(np.float32),
                 discount=np.full(b, 0.97, np.float32),
                 next_state=rng.normal(size=(b, STATE_DIM)).astype(np.float32),
                 next_images=rng.integers(0, 256, shape, dtype=np.uint8))


def make_observation(config: DrQConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = {'state': rng.normal(size=STATE_DIM).astype(np.float32)}
    for key in config.image_keys:
        obs[key] = rng.integers(0, 256, (3, config.image_size, config.image_size), np.uint8)
    return obs


def _autocast_forward(module: torch.nn.Module) -> None:
    """Run ``module``'s forward under bf16 autocast, returning float32 (bench-only tweak)."""
    forward = module.forward

    def wrapped(*args: Any) -> Any:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = forward(*args)
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()
    module.forward = wrapped


def build(variant: Variant) -> dict[str, Any]:
    """Agent, batch and observation of one variant; for 'compile', also the compile time."""
    config = DrQConfig(**{**DEMO, **variant.overrides})
    agent = DrQAgent(config, STATE_DIM, ACTION_DIM)
    heads = (agent.actor, agent.critic, agent.critic_target, agent._act_actor)
    if variant.tweak == 'heads_bf16':   # the whole actor and critic forward, Q too
        for module in heads:
            _autocast_forward(module)
    if variant.tweak == 'trunks_fp32':
        for module in heads:
            module.trunk.bf16 = False
    rng = np.random.default_rng(0)
    entry = {'variant': variant, 'agent': agent, 'batch': make_batch(config, rng),
             'obs': make_observation(config, rng), 'update_wall_s': [], 'update_cpu_s': [],
             'act_wall_s': [], 'act_cpu_s': []}
    if variant.tweak == 'compile':
        agent.encoder.compile()
        agent._act_encoder.compile()
        with _threads(variant.threads):
            start = time.perf_counter()
            agent.update(entry['batch'])
            agent.act(entry['obs'], explore=False)
            entry['compile_s'] = time.perf_counter() - start
    return entry


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_rounds(entries: list[dict[str, Any]], rounds: int, updates: int, acts: int) -> None:
    """Interleave the variants: each round, every variant does its updates, then its acts.

    Records wall-clock and process CPU time: with one thread the CPU time is what an update costs
    on a whole core, little changed by other processes taking turns on the machine.
    """
    for entry in entries:   # warm-up: allocator, oneDNN primitive caches
        with _threads(entry['variant'].threads):
            entry['agent'].update(entry['batch'])
            entry['agent'].act(entry['obs'], explore=False)
    for r in range(rounds):
        for entry in entries[r % len(entries):] + entries[:r % len(entries)]:
            agent, batch, obs = entry['agent'], entry['batch'], entry['obs']
            with _threads(entry['variant'].threads):
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(updates):
                    agent.update(batch)
                entry['update_wall_s'].append((time.perf_counter() - wall) / updates)
                entry['update_cpu_s'].append((time.process_time() - cpu) / updates)
                for _ in range(acts):
                    wall, cpu = time.perf_counter(), time.process_time()
                    agent.act(obs, explore=True)
                    entry['act_wall_s'].append(time.perf_counter() - wall)
                    entry['act_cpu_s'].append(time.process_time() - cpu)
        print(f'round {r + 1}/{rounds} done (load {results_io.load_average()})', flush=True)


def grid_sample_shift(images: torch.Tensor, pad: int, generator: torch.Generator
                      ) -> torch.Tensor:
    """DrQ-v2's ``RandomShiftsAug`` (float, replicate pad, bilinear ``grid_sample``)."""
    n, _, h, w = images.shape
    x = F.pad(images.float(), (pad,) * 4, mode='replicate')
    eps = 1.0 / (h + 2 * pad)
    arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * pad)[:h]
    arange = arange.unsqueeze(0).repeat(h, 1).unsqueeze(2)
    base_grid = torch.cat([arange, arange.transpose(1, 0)], dim=2)
    base_grid = base_grid.unsqueeze(0).repeat(n, 1, 1, 1)
    shift = torch.randint(0, 2 * pad + 1, (n, 1, 1, 2), generator=generator).float()
    shift *= 2.0 / (h + 2 * pad)
    return F.grid_sample(x, base_grid + shift, padding_mode='zeros', align_corners=False)


def time_augmentations(rounds: int) -> dict[str, float]:
    """Median ms to shift one update's images (2 x B x V frames) with each method, 1 thread."""
    images = torch.randint(0, 256, (2 * DEMO['batch_size'] * 2, 3, 64, 64), dtype=torch.uint8)
    methods: dict[str, Callable] = {'integer crop of a padded uint8 batch (ours)': random_shift,
                                    'F.grid_sample on float (DrQ-v2 reference)':
                                        grid_sample_shift}
    times: dict[str, list[float]] = {name: [] for name in methods}
    generator = torch.Generator().manual_seed(0)
    with _threads(1):
        for _ in range(max(3, rounds)):
            for name, method in methods.items():
                start = time.perf_counter()
                method(images, 4, generator)
                times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def encoder_calls_per_update() -> int:
    """Count encoder forwards in one update (2 = obs with grad, next obs without)."""
    agent = DrQAgent(DrQConfig(**DEMO), STATE_DIM, ACTION_DIM)
    calls = []
    agent.encoder.register_forward_hook(lambda *_: calls.append(1))
    agent.update(make_batch(agent.config, np.random.default_rng(0)))
    return len(calls)


def summarise(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per variant; speed-ups are medians of per-round ratios to the first variant."""
    base = entries[0]
    rows = []
    for entry in entries:
        variant, agent = entry['variant'], entry['agent']
        row = {'name': variant.name, 'threads': variant.threads, 'tweak': variant.tweak,
               'overrides': _plain(variant.overrides), 'precision': agent.precision,
               'batch_size': agent.config.batch_size}
        for clock in ('wall', 'cpu'):
            times, base_times = entry[f'update_{clock}_s'], base[f'update_{clock}_s']
            row[f'updates_per_{clock}_s'] = 1.0 / statistics.median(times)
            row[f'samples_per_{clock}_s'] = row[f'updates_per_{clock}_s'] * agent.config.batch_size
            row[f'update_speedup_{clock}'] = statistics.median(
                b / t for b, t in zip(base_times, times))
            row[f'act_{clock}_ms'] = 1e3 * statistics.median(entry[f'act_{clock}_s'])
            row[f'act_speedup_{clock}'] = (statistics.median(base[f'act_{clock}_s'])
                                           / statistics.median(entry[f'act_{clock}_s']))
        row['act_wall_p90_ms'] = 1e3 * float(np.percentile(entry['act_wall_s'], 90))
        row['update_wall_s_rounds'] = entry['update_wall_s']
        row['update_cpu_s_rounds'] = entry['update_cpu_s']
        if 'compile_s' in entry:
            row['compile_s'] = entry['compile_s']
        rows.append(row)
    return rows


def hardware() -> dict[str, Any]:
    return results_io.hardware(cpu_has_bf16=cpu_has_bf16(), torch=torch.__version__)


def table(doc: dict[str, Any]) -> str:
    lines = ['| variant | threads | updates/s wall | x row 1 | updates per CPU-s | samples per '
             'CPU-s | x row 1 | act ms wall (p90) | act CPU ms | act x row 1 (CPU) |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in doc['rows']:
        name = r['name'] + (f" (compile {r['compile_s']:.0f} s)" if 'compile_s' in r else '')
        lines.append(f"| {name} | {r['threads']} | {r['updates_per_wall_s']:.2f} | "
                     f"{r['update_speedup_wall']:.2f} | {r['updates_per_cpu_s']:.2f} | "
                     f"{r['samples_per_cpu_s']:.0f} | {r['update_speedup_cpu']:.2f} | "
                     f"{r['act_wall_ms']:.2f} ({r['act_wall_p90_ms']:.2f}) | "
                     f"{r['act_cpu_ms']:.2f} | {r['act_speedup_cpu']:.2f} |")
    lines.append('')
    lines.append('| augmentation of one update (1 thread) | ms |')
    lines.append('|---|---|')
    lines += [f'| {name} | {ms:.1f} |' for name, ms in doc['augmentation_ms'].items()]
    hw = doc['hardware']
    lines.append('')
    lines.append(f"Encoder forwards per update: {doc['encoder_calls_per_update']} (obs with "
                 'grad, next obs without; the actor reuses the detached obs features).')
    lines.append(f"Demo shapes: batch {DEMO['batch_size']} x 2 views x 3x64x64 uint8, "
                 f'{STATE_DIM}-dim proprioception, {ACTION_DIM}-dim actions; medians of '
                 f"{doc['rounds']} interleaved rounds of {doc['updates_per_round']} updates "
                 f"and {doc['acts_per_round']} acts. {hw['cpu_cores']}-core {hw['cpu_model']} "
                 f"(native bf16: {hw['cpu_has_bf16']}), torch {hw['torch']}; load average "
                 f"before/after: {doc['loadavg_before']} / {doc['loadavg_after']}.")
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = results_io.load_average()
    variants = VARIANTS + ([] if args.no_compile else [COMPILED])
    entries = [build(v) for v in variants]
    run_rounds(entries, args.rounds, args.updates, args.acts)
    doc = {'hardware': hardware(), 'command': ' '.join([sys.executable] + sys.argv),
           'rounds': args.rounds, 'updates_per_round': args.updates,
           'acts_per_round': args.acts, 'demo_config': _plain(DEMO),
           'rows': summarise(entries), 'augmentation_ms': time_augmentations(args.rounds),
           'encoder_calls_per_update': encoder_calls_per_update(),
           'loadavg_before': load_before, 'loadavg_after': results_io.load_average()}
    # A smoke run (--quick) or one without the compiled variant is not the result the README
    # cites (drq.json): files of their own.
    name = 'drq_quick' if args.quick else 'drq_no_compile' if args.no_compile else 'drq'
    results_io.write_doc_and_table(args.out, name, doc, table(doc))
    return 0


def _plain(value: Any) -> Any:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in copy.copy(value).items()}


if __name__ == '__main__':
    sys.exit(main())
