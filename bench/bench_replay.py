"""Micro-benchmark of the replay buffer's bookkeeping at the demo's shapes, full and filling.

The learner's pattern is one frame added (a label now and then) and one batch drawn per update.
Each row is a buffer of that capacity, filled first, then rounds of that pattern; the table
gives medians over rounds of the time per frame added and batch drawn:

- ``by slot``: today's buffer, which checks again only the windows over frames that changed;
- ``every slot``: the same buffer made to check every slot's window after each change, as it
  did before 2026-12-07 (the bench sets its flag to do so; the sampled windows are the same);
- ``same gather``: numpy gathering the same batch (states, actions, both views at t and t+n)
  at random slots with no bookkeeping at all, as the buffer's own gather does.

The two ways take turns within each round, so that other load on a shared machine hits both
alike. Also timed: ``stats()`` (the learner's idle poll, every 50 ms) and one full check. The
process keeps freed memory as the learner node does (``allocator.keep_freed_memory``); with
glibc's defaults each batch's 9 MB of arrays is faulted in anew and that, not the bookkeeping,
is most of what is timed.

    python bench/bench_replay.py            # 10,000 and 100,000 frames (2.5 GB), ~1 minute
    python bench/bench_replay.py --quick    # 10,000 frames, a few seconds (replay_quick.*)

Writes ``bench/results/replay.json`` and ``replay.md`` and prints the table.
"""
import argparse
from pathlib import Path
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

import results_io
from sole_r1_ros.allocator import keep_freed_memory
from sole_r1_ros.rl.config import ReplayConfig
from sole_r1_ros.rl.replay import ReplayBuffer

RESULTS = Path(__file__).resolve().parent / 'results'
# the demo's shapes (config/demo.yaml, bench_drq.DEMO)
STATE_DIM, ACTION_DIM, VIEWS, IMAGE_SIZE, N_STEP, BATCH = 25, 4, ('external', 'wrist'), 64, 3, 128
EPISODE_STEPS = 150   # frames per episode before its last one
LABEL_EVERY = 5       # a query label every 5 frames; the frames between are filled


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--capacities', type=int, nargs='+', default=[10_000, 100_000],
                        help='replay.capacity of each row (100,000 is the default; 2.5 GB)')
    parser.add_argument('--rounds', type=int, default=15, help='rounds per row (median)')
    parser.add_argument('--per-round', type=int, default=100,
                        help='frames added and batches drawn per way per round')
    parser.add_argument('--quick', action='store_true', help='10,000 frames, 3 rounds')
    parser.add_argument('--out', type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.capacities, args.rounds = [10_000], 3
    return args


class Feeder:
    """Adds the frames of endless episodes to a buffer, labelling every ``LABEL_EVERY``-th."""

    def __init__(self, buffer: ReplayBuffer, rng: np.random.Generator) -> None:
        self.buffer, self.episode, self.step = buffer, 0, 0
        self.obs = {'state': rng.standard_normal(STATE_DIM).astype(np.float32)}
        for view in VIEWS:
            self.obs[view] = rng.integers(0, 256, (3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        self.action = np.zeros(ACTION_DIM, np.float32)

    def add(self) -> None:
        last = self.step == EPISODE_STEPS
        self.buffer.add(self.episode, self.step, self.obs, None if last else self.action,
                        stamp=float(self.step))
        if last or self.step % LABEL_EVERY == 0:
            self.buffer.label(self.episode, self.step, 100.0 * self.step / EPISODE_STEPS)
        self.episode, self.step = (self.episode + 1, 0) if last else (self.episode, self.step + 1)


def per_call_ms(call: Callable[[], Any], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        call()
    return 1e3 * (time.perf_counter() - start) / count


def bare_gather(buffer: ReplayBuffer, rng: np.random.Generator) -> None:
    """The batch's arrays at random slots, gathered as ``_gather`` does, no bookkeeping."""
    arrays, size = buffer._arrays, len(buffer)
    start = rng.integers(0, size - N_STEP, BATCH)
    following = start + N_STEP
    for slots in (start, following):
        arrays['state'][slots]
        np.stack([arrays[f'image/{view}'][slots] for view in VIEWS], axis=1)
    arrays['action'][start]
    arrays['progress'][start]


def run_row(capacity: int, rounds: int, per_round: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(ReplayConfig(capacity=capacity, seed=0), STATE_DIM, ACTION_DIM,
                          image_keys=VIEWS, image_size=IMAGE_SIZE, n_step=N_STEP)
    feeder = Feeder(buffer, rng)
    fill_start = time.perf_counter()
    for _ in range(capacity + EPISODE_STEPS):   # full, and wrapped round once
        feeder.add()
    fill_s = time.perf_counter() - fill_start

    def by_slot() -> None:
        feeder.add()
        buffer.sample(BATCH)

    def every_slot() -> None:
        feeder.add()
        buffer._all_windows_stale = True   # as before: every window checked after a change
        buffer.sample(BATCH)

    samples: dict[str, list[float]] = {name: [] for name in (
        'by_slot_ms', 'every_slot_ms', 'bare_gather_ms', 'stats_ms', 'full_check_ms')}
    for _ in range(rounds):
        samples['by_slot_ms'].append(per_call_ms(by_slot, per_round))
        samples['every_slot_ms'].append(per_call_ms(every_slot, per_round))
        samples['bare_gather_ms'].append(per_call_ms(lambda: bare_gather(buffer, rng),
                                                     per_round))
        samples['stats_ms'].append(per_call_ms(buffer.stats, 20))
        samples['full_check_ms'].append(per_call_ms(
            lambda: buffer._windows_complete(np.arange(len(buffer))), 5))
    row = {name: statistics.median(values) for name, values in samples.items()}
    # ratios of the medians shown (a median of per-round ratios can disagree with them)
    row.update(capacity=capacity, fill_s=fill_s, sampleable=buffer.stats()['sampleable'],
               speedup=row['every_slot_ms'] / row['by_slot_ms'],
               by_slot_over_bare=row['by_slot_ms'] / row['bare_gather_ms'])
    return row


def table(doc: dict[str, Any]) -> str:
    lines = ['| frames | by slot: add + draw ms | every slot ms | x faster | same gather, no '
             'bookkeeping, ms | by slot / gather | stats() ms | one full check ms |',
             '|---|---|---|---|---|---|---|---|']
    for r in doc['rows']:
        lines.append(f"| {r['capacity']:,} | {r['by_slot_ms']:.3f} | {r['every_slot_ms']:.3f} | "
                     f"{r['speedup']:.1f} | {r['bare_gather_ms']:.3f} | "
                     f"{r['by_slot_over_bare']:.2f} | {r['stats_ms']:.3f} | "
                     f"{r['full_check_ms']:.2f} |")
    hw = doc['hardware']
    lines.append('')
    lines.append(f'Batch {BATCH}, {len(VIEWS)} views of 3x{IMAGE_SIZE}x{IMAGE_SIZE} uint8, '
                 f'{STATE_DIM}-dim state, {N_STEP}-step windows, a label every {LABEL_EVERY} '
                 f"frames; medians of {doc['rounds']} rounds of {doc['per_round']} per way. "
                 f"{hw['cpu_cores']}-core {hw['cpu_model']}; load average before/after: "
                 f"{doc['loadavg_before']} / {doc['loadavg_after']}.")
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_freed_memory()   # as the learner node does: no page faults in every batch drawn
    load_before = results_io.load_average()
    rows = [run_row(capacity, args.rounds, args.per_round) for capacity in args.capacities]
    doc = {'hardware': results_io.hardware(), 'command': ' '.join([sys.executable] + sys.argv),
           'rounds': args.rounds, 'per_round': args.per_round, 'rows': rows,
           'loadavg_before': load_before, 'loadavg_after': results_io.load_average()}
    name = 'replay_quick' if args.quick else 'replay'
    results_io.write_doc_and_table(args.out, name, doc, table(doc))
    return 0


if __name__ == '__main__':
    sys.exit(main())
