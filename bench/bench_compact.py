"""The compact progress model on the CPU: query latency, and the memory distillation takes.

1. Latency, one thread: the shipped checkpoint behind the reward engine, as the reward node runs
   it, asked one episode's queries in turn (each quotes the answer before it, so a robot's
   queries cannot be batched), camera-resolution frames (640x480, two views); with the tile
   cache (each frame letterboxed once) and without, and the shipped pair (``--erased-model
   shipped``: a second network on the erased external view), alternated over three rounds.
   Side by side:
   the network's forward pass alone on one query (the bare part) and the 10 ms the
   compact-model issue allows.
2. Distillation memory: ``sole-r1 train compact`` (``compact.train.train``) for a few steps on a
   folder of camera-resolution MP4 episodes, as ``score-bag --labelled-out`` writes them, in a
   child process: its peak RSS against the frames' decoded size and against a child that only
   imports torch and loads the goal encoder and network (the floor).

    python bench/bench_compact.py                  # about 2 minutes on 2 cores
    python bench/bench_compact.py --episodes 16    # a bigger folder: the peak should not grow

Results: bench/results/compact.json and compact.md.
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import sole_r1_ros  # noqa: F401 - installed (colcon / pip -e)
except ImportError:  # running from a plain checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                    'sole_r1_ros'))

from results_io import hardware, merge_result  # noqa: E402  (bench/ is first on sys.path)

_HERE = os.path.dirname(os.path.abspath(__file__))
_JSON = os.path.join(_HERE, 'results', 'compact.json')
_MD = os.path.join(_HERE, 'results', 'compact.md')
_GOAL = 'close the drawer'
_LIMIT_MS = 10.0


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--queries', type=int, default=300, help='latency queries (one episode)')
    parser.add_argument('--episodes', type=int, default=8, help='distillation folder episodes')
    parser.add_argument('--frames', type=int, default=300, help='frames per episode')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    return parser.parse_args(argv)


def _frames(count, width, height, shift=0):
    """A gradient scene with a block sliding across it: what a camera-resolution video holds."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height,
                     (xx + yy) * 255 // (width + height)], -1).astype(np.uint8)
    frames = []
    for t in range(count):
        frame = base.copy()
        x = (shift + t * max(1, width // (2 * count))) % (width - 80)
        frame[height // 2 - 40:height // 2 + 40, x:x + 80] = (200, 40, 40)
        frames.append(frame)
    return frames


def _engine_ms(tile_cache, frames, pair=False):
    """Per-query backend latencies [ms] and wall per query of one episode through the engine.

    ``pair``: the shipped pair, the frames standing in for the erased external view too.
    """
    from sole_r1_ros.compact.predictor import CompactPredictor
    from sole_r1_ros.reward import EpisodeFrames, RewardConfig, score_episodes
    from sole_r1_ros.reward.backends.compact import CompactBackend
    from sole_r1_ros.reward.engine import RewardEngine

    config = RewardConfig(backend='compact', model='')
    predictor = CompactPredictor.load('', tile_cache, erased='shipped' if pair else '')
    with RewardEngine(CompactBackend(predictor), config) as engine:
        score_episodes(engine, [EpisodeFrames(episode_id='warm', goal=_GOAL,
                                              external=frames[:4], wrist=frames[:4],
                                              query_steps=[1, 2, 3],
                                              erased_external=frames[:4] if pair else None)])
        episode = EpisodeFrames(episode_id='bench', goal=_GOAL, external=frames,
                                wrist=frames[::-1], query_steps=list(range(1, len(frames))),
                                erased_external=frames[1:] + frames[:1] if pair else None)
        start = time.perf_counter()
        results = score_episodes(engine, [episode])[0]
        wall_ms = (time.perf_counter() - start) * 1e3 / len(results)
    return [r.latency_s * 1e3 for r in results], wall_ms


def bench_latency(args, rounds=3):
    """Engine with and without the tile cache, alternated, against the forward pass alone."""
    import torch

    from sole_r1_ros.compact.predictor import CompactPredictor

    torch.set_num_threads(1)
    frames = _frames(args.queries + 1, args.width, args.height)
    runs = {'cached': ([], []), 'uncached': ([], []), 'pair': ([], [])}
    for _ in range(rounds):
        for name, tile_cache in (('uncached', 0), ('cached', 64), ('pair', 64)):
            backend_ms, wall_ms = _engine_ms(tile_cache, frames, pair=name == 'pair')
            runs[name][0].extend(backend_ms)
            runs[name][1].append(wall_ms)
    predictor = CompactPredictor.load('')
    size = predictor.image_size
    views = np.random.default_rng(0).integers(0, 256, (1, 2, 3, size, size, 3), np.uint8)
    forward = []
    for _ in range(args.queries + 5):
        start = time.perf_counter()
        predictor.predict(views, [_GOAL], [10.0], [True])
        forward.append((time.perf_counter() - start) * 1e3)
    forward = np.array(forward[5:])
    result = {'queries': args.queries, 'rounds': rounds,
              'frame': f'{args.width}x{args.height}, 2 views',
              'forward_ms_median': round(float(np.median(forward)), 3),
              'forward_ms_p95': round(float(np.percentile(forward, 95)), 3),
              'limit_ms': _LIMIT_MS}
    for name, (backend_ms, wall_ms) in runs.items():
        result[name] = {
            'engine_ms_per_query': round(float(np.median(wall_ms)), 3),
            'backend_ms_median': round(float(np.median(backend_ms)), 3),
            'backend_ms_p95': round(float(np.percentile(backend_ms, 95)), 3)}
    cached = result['cached']['engine_ms_per_query']
    result['uncached_over_cached'] = round(result['uncached']['engine_ms_per_query'] / cached, 2)
    result['cached_over_forward'] = round(cached / result['forward_ms_median'], 2)
    result['pair_over_cached'] = round(result['pair']['engine_ms_per_query'] / cached, 2)
    result['limit_over_cached'] = round(_LIMIT_MS / cached, 1)
    return result


# Each child reports its own peak (VmHWM belongs to the process image, which exec replaces;
# getrusage's ru_maxrss is not: it keeps the parent's size at fork).
_PEAK = '''
def peak_mb():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) / 1024
'''
_CHILD_TRAIN = _PEAK + '''
import sys, time
from sole_r1_ros.compact.train import TrainConfig, train
start = time.perf_counter()
info = train(sys.argv[1], sys.argv[2], TrainConfig(epochs=0.02, minutes=5.0, eval_every_s=1e9))
print(info['train_frames'], round(time.perf_counter() - start, 1), peak_mb())
'''
_CHILD_FLOOR = _PEAK + '''
from sole_r1_ros.compact.goals import GoalEncoder
from sole_r1_ros.compact.model import CompactProgressNet
CompactProgressNet(); GoalEncoder().encode(['close the drawer'])
print(0, 0, peak_mb())
'''


def _child(code, *argv):
    """Run ``code`` in a fresh interpreter; return its stdout words but the last, peak [MB]."""
    result = subprocess.run([sys.executable, '-c', code, *argv], stdout=subprocess.PIPE,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'}, check=True)
    words = result.stdout.decode().split()
    return words[:-1], float(words[-1])


def bench_distil_memory(args, folder):
    from sole_r1_ros.labelled import LabelledEpisode
    from sole_r1_ros.labelled.folder import write_episode

    start = time.perf_counter()
    for e in range(args.episodes):
        frames = _frames(args.frames, args.width, args.height, shift=20 * e)
        write_episode(folder, LabelledEpisode(
            episode_id=f'ep{e}', goal=_GOAL, progress=np.linspace(0, 100, args.frames),
            external=frames, wrist=frames[::-1], split='val' if e == args.episodes - 1 else ''),
            videos=True, fps=15)
    written_s = time.perf_counter() - start
    decoded_mb = args.episodes * args.frames * 2 * args.width * args.height * 3 / 2**20
    _, floor_mb = _child(_CHILD_FLOOR)
    start = time.perf_counter()
    (frames, _), train_mb = _child(_CHILD_TRAIN, folder, os.path.join(folder, 'out.pt'))
    return {
        'episodes': args.episodes, 'frames_per_episode': args.frames,
        'frame': f'{args.width}x{args.height}, 2 views, MP4', 'write_s': round(written_s, 1),
        'train_frames': int(frames), 'decoded_mb': round(decoded_mb),
        'episode_decoded_mb': round(decoded_mb / args.episodes),
        'train_peak_rss_mb': round(train_mb), 'floor_peak_rss_mb': round(floor_mb),
        'train_wall_s': round(time.perf_counter() - start, 1),
        'peak_over_decoded': round(train_mb / decoded_mb, 2)}


def _markdown(result):
    lat, mem = result['latency'], result['distil_memory']
    return '\n'.join([
        f"# Compact progress model on the CPU ({result['date']}, {result['hardware']['cpu_model']}"
        f", {result['hardware']['cpu_cores']} cores, load {result['load_average']})", '',
        f"| one query, one thread, {lat['frame']} | engine wall | backend median / p95 |",
        '|---|---|---|',
        *[f"| reward engine, {name} letterboxed tiles | {lat[key]['engine_ms_per_query']} | "
          f"{lat[key]['backend_ms_median']} / {lat[key]['backend_ms_p95']} |"
          for key, name in (('cached', 'cached'), ('uncached', 'no cached'))],
        f"| reward engine, the shipped pair (two networks; {lat['pair_over_cached']}x one) | "
        f"{lat['pair']['engine_ms_per_query']} | "
        f"{lat['pair']['backend_ms_median']} / {lat['pair']['backend_ms_p95']} |",
        f"| network forward alone | | {lat['forward_ms_median']} / {lat['forward_ms_p95']} |",
        f"| limit (issue 16) | {lat['limit_ms']} ({lat['limit_over_cached']}x the engine) | |",
        '',
        f"| distillation, {mem['episodes']} x {mem['frames_per_episode']} frames, "
        f"{mem['frame']} | MB |", '|---|---|',
        f"| frames decoded (all episodes / one) | {mem['decoded_mb']} / "
        f"{mem['episode_decoded_mb']} |",
        f"| `train` peak RSS ({mem['train_frames']} train frames, {mem['train_wall_s']} s) | "
        f"{mem['train_peak_rss_mb']} |",
        f"| floor: torch + goal encoder + network | {mem['floor_peak_rss_mb']} |", ''])


def main(argv=None):
    args = _parse(argv)
    result = {'date': datetime.datetime.now().isoformat(timespec='seconds'),
              'load_average': round(os.getloadavg()[0], 2), 'hardware': hardware()}
    print('latency ...', flush=True)
    result['latency'] = bench_latency(args)
    print(result['latency'], flush=True)
    print('distillation memory ...', flush=True)
    with tempfile.TemporaryDirectory(prefix='bench_compact_') as folder:
        result['distil_memory'] = bench_distil_memory(args, folder)
    print(result['distil_memory'], flush=True)
    merge_result(_JSON, 'cpu', result)
    with open(_MD, 'w', encoding='utf-8') as stream:
        stream.write(_markdown(result))
    print(_markdown(result))


if __name__ == '__main__':
    main()
