"""How long the learner's checkpoint takes to write, against writing the same bytes bare.

A stop (Ctrl-C) writes a final checkpoint only if it fits ``stop_budget_s``, judged by the last
one's time per stored frame; this measures that time per frame at the demo's shapes (two 3x64x64
uint8 views, 25-dim proprioception, 4-dim actions; random pixels, so nothing compresses) and
projects it to a full default replay (100,000 frames). The bare row writes the same number of
bytes with one ``numpy.save`` and an fsync: the checkpoint's own cost beside the disk's.

    python bench/bench_checkpoint.py              # 20,000 frames, about half a minute
    python bench/bench_checkpoint.py --frames 2000   # a smoke run: the agent's weights, a
                                                     # fixed part, then inflate the projection

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=20_000)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--dir', default=None, help='where to write (default: a temp folder)')
    parser.add_argument('--out', default='bench/results/checkpoint.json')
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix='bench_checkpoint_', dir=args.dir))
    try:
        learner = OnlineLearner(DrQConfig(variant='pixels'),
                                ReplayConfig(capacity=args.frames, min_labelled=10**9), 25, 4,
                                checkpoint_dir=root / 'checkpoints')
        learner.start_episode('episode')
        views = rng.integers(0, 255, (16, 3, 64, 64), dtype=np.uint8)
        for step in range(args.frames):
            learner.record({'state': np.zeros(25, np.float32), 'external': views[step % 16],
                            'wrist': views[(step + 7) % 16]}, np.zeros(4, np.float32),
                           step * 10**8)
        checkpoint, bare, size = [], [], 0
        for _ in range(args.repeats):
            start = time.monotonic()
            path = learner.save()
            checkpoint.append(time.monotonic() - start)
            size = _bytes_of(path)
            bare.append(_bare_write(root, size))
        ckpt_s, bare_s = statistics.median(checkpoint), statistics.median(bare)
        per_frame_ms = 1e3 * ckpt_s / args.frames
        result = {
            'frames': args.frames, 'bytes': size, 'repeats': args.repeats,
            'checkpoint_s': round(ckpt_s, 3), 'bare_write_s': round(bare_s, 3),
            'checkpoint_over_bare': round(ckpt_s / bare_s, 2),
            'ms_per_frame': round(per_frame_ms, 4),
            'full_replay_frames': FULL_REPLAY,
            'full_replay_gb': round(size / args.frames * FULL_REPLAY / 1e9, 2),
            'full_replay_s': round(per_frame_ms * FULL_REPLAY / 1e3, 1),
            'date': time.strftime('%Y-%m-%d %H:%M'), 'hardware': hardware()}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    merge_result(args.out, 'checkpoint', result)
    full = result['full_replay_gb']
    print(f'| write | {args.frames:,} frames ({size / 1e6:.0f} MB) | per frame | '
          f'{FULL_REPLAY:,} frames ({full} GB) |\n|---|---|---|---|')
    for name, seconds in ((f'checkpoint (median of {args.repeats})', ckpt_s),
                          ('the same bytes, one np.save + fsync', bare_s)):
        per_frame = seconds / args.frames
        print(f'| {name} | {seconds:.2f} s | {1e3 * per_frame:.3f} ms | '
              f'{per_frame * FULL_REPLAY:.1f} s |')
    print(f'checkpoint / bare: {result["checkpoint_over_bare"]}x')


if __name__ == '__main__':
    main()
