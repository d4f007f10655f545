"""How long the learner's checkpoint takes, and holds the actor, against the disk and format 1.

The learner writes a checkpoint every minute (``checkpoint_every_s``) and on a stop, which it
does only if that fits ``stop_budget_s``. Since format 2 a checkpoint writes the replay's image
segments written since the last one, not the whole buffer. At the demo's shapes (two 3x64x64
uint8 views, 25-dim proprioception, 4-dim actions; random pixels, so nothing compresses) this
times, on a buffer of ``--frames``:

- a periodic checkpoint after ``--new-frames`` more (a minute of the demo's 40 steps/s);
- the first checkpoint of a run (every segment is new);
- the same buffer written as format 1 did (every image in ``replay.npz``, copied whole under
  the lock): what a periodic checkpoint cost before;
- the full checkpoint's bytes written bare, one ``numpy.save`` and an fsync (the disk's share).

"lock" is the copy made while the learner's lock is held, during which the actor waits.

    python bench/bench_checkpoint.py              # 20,000 frames, about a minute
    python bench/bench_checkpoint.py --frames 2000 --new-frames 500   # a smoke run

Writes ``bench/results/checkpoint.json`` and prints the table.
"""
import argparse
import os
from pathlib import Path
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import hardware, merge_result  # noqa: E402

from sole_r1_ros.rl import checkpoint  # noqa: E402
from sole_r1_ros.rl.config import DrQConfig, ReplayConfig  # noqa: E402
from sole_r1_ros.rl.online import OnlineLearner  # noqa: E402

FULL_REPLAY = 100_000


def _bytes_of(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob('*') if f.is_file())


def _bare_write(folder: Path, size: int) -> float:
    data = np.random.default_rng(1).integers(0, 255, size, dtype=np.uint8)
    path = folder / 'bare.npy'
    start = time.monotonic()
    with open(path, 'wb') as stream:
        np.save(stream, data)
        stream.flush()
        os.fsync(stream.fileno())
    seconds = time.monotonic() - start
    path.unlink()
    return seconds


def _record(learner: OnlineLearner, frames: int, views: np.ndarray) -> None:
    for step in range(frames):
        learner.record({'state': np.zeros(25, np.float32), 'external': views[step % 16],
                        'wrist': views[(step + 7) % 16]}, np.zeros(4, np.float32),
                       (learner.env_steps + 1) * 10**8)


def _timed(make_state, folder: Path) -> tuple[float, float, int]:
    """Lock (the snapshot's copy) and total seconds of one checkpoint, and its bytes written.

    Of at most two checkpoints in ``folder``: none is retired, so the bytes it grew by are the
    bytes written.
    """
    before = _bytes_of(folder) if folder.exists() else 0
    start = time.monotonic()
    state = make_state()
    lock = time.monotonic() - start
    checkpoint.write_checkpoint(folder, state, keep=3)
    total = time.monotonic() - start
    return lock, total, _bytes_of(folder) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=20_000)
    parser.add_argument('--new-frames', type=int, default=2_400,
                        help='frames between two checkpoints (a minute at 40 steps/s)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--dir', default=None, help='where to write (default: a temp folder)')
    parser.add_argument('--out', default='bench/results/checkpoint.json')
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix='bench_checkpoint_', dir=args.dir))
    rows: dict[str, list[tuple[float, float, int]]] = {
        'periodic': [], 'first': [], 'format1': []}
    bare = []
    try:
        capacity = args.frames + args.new_frames * args.repeats
        learner = OnlineLearner(DrQConfig(variant='pixels'),
                                ReplayConfig(capacity=capacity, min_labelled=10**9), 25, 4)
        learner.start_episode('episode')
        views = rng.integers(0, 255, (16, 3, 64, 64), dtype=np.uint8)
        _record(learner, args.frames, views)
        agent, replay = learner.agent, learner.replay

        def periodic(folder: Path):   # as OnlineLearner.save: what is on disk is not copied
            saved = checkpoint.saved_segments(folder)
            return lambda: checkpoint.snapshot(agent, replay, {}, saved)

        def format1():
            arrays, meta = replay.state_dict()
            return checkpoint.Checkpoint(None, agent.state_dict(), arrays, meta, {})

        for repeat in range(args.repeats):
            folder = root / f'run{repeat}'
            rows['first'].append(_timed(periodic(folder), folder))
            _record(learner, args.new_frames, views)
            rows['periodic'].append(_timed(periodic(folder), folder))
            rows['format1'].append(_timed(format1, root / f'format1-{repeat}'))
            bare.append(_bare_write(root, rows['first'][-1][2]))
            for path in root.iterdir():
                shutil.rmtree(path)
        median = {name: [statistics.median(r[i] for r in runs) for i in range(3)]
                  for name, runs in rows.items()}
        bare_s = statistics.median(bare)
        result = {
            'frames': args.frames, 'new_frames': args.new_frames, 'repeats': args.repeats,
            **{f'{name}_{what}': round(value, 4) if what != 'bytes' else int(value)
               for name, values in median.items()
               for what, value in zip(('lock_s', 's', 'bytes'), values)},
            'bare_write_s': round(bare_s, 3),
            'format1_over_periodic': round(median['format1'][1] / median['periodic'][1], 1),
            'format1_lock_over_periodic_lock': round(
                median['format1'][0] / max(median['periodic'][0], 1e-6), 1),
            'first_over_bare': round(median['first'][1] / bare_s, 2),
            'full_replay_frames': FULL_REPLAY,
            'full_replay_format1_s': round(median['format1'][1] / args.frames * FULL_REPLAY, 1),
            'date': time.strftime('%Y-%m-%d %H:%M'), 'hardware': hardware()}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    merge_result(args.out, 'checkpoint', result)
    print(f'| checkpoint of {args.frames:,} frames (median of {args.repeats}) | lock (actor '
          'waits) | total | written |\n|---|---|---|---|')
    names = {'periodic': f'periodic, {args.new_frames:,} frames after the last',
             'first': "a run's first (every segment new)",
             'format1': 'format 1 (the whole buffer each time)'}
    for name, label in names.items():
        lock, total, written = median[name]
        print(f'| {label} | {lock:.3f} s | {total:.2f} s | {written / 1e6:.0f} MB |')
    print(f"| the first's bytes, one np.save + fsync | | {bare_s:.2f} s | |")
    print(f'format 1 / periodic: {result["format1_over_periodic"]}x the time, '
          f'{result["format1_lock_over_periodic_lock"]}x the lock; first / bare: '
          f'{result["first_over_bare"]}x')


if __name__ == '__main__':
    main()
