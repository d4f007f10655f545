"""Replay a run's bag through a compact pair's two networks: one shared chain or each its own.

For a run made with a pair (``sole-r1 demo --set reward_node.erased_model=shipped ...``), whose
bag holds the external pictures and their robot masks: per episode, the pictures' file, the
erased file and the pair are each chained over every fourth frame (the camera node asks about
one frame in four at the demo's rates), each quoted its previous answer as the engine would,
from the first frame. Prints, over the episodes after ``--after-s`` seconds of the bag, the
final answers of the ones that truly closed (true progress >= 95 at the end) and the ones that
never moved the object (true progress < 5 throughout), and how well each chain separates them.

    python tools/pair_chain_replay.py RUN_DIR --goal "close the drawer" [--after-s 420]

It reads ``ground_truth`` (simulation only) to say which episodes succeeded.
"""
import argparse
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from sklearn.metrics import roc_auc_score

from sole_r1_ros.camera.robot_eraser import RobotEraser
from sole_r1_ros.compact.predictor import CompactPredictor, erased_checkpoint_path
from sole_r1_ros.image_msgs import image_to_array

_EVERY = 4


def _episodes(bag: Path, after_s: float) -> list[list[dict]]:
    """Per episode (in order): its frames, each {'image', 'mask', 'truth'}."""
    frames: dict = {}
    started = 0
    topics = {'/camera/external/image_raw', '/camera/external/robot_mask', '/episode',
              '/ground_truth'}
    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        first_t, truth = None, 0.0
        for connection, t, raw in reader.messages(connections=connections):
            first_t = t if first_t is None else first_t
            msg = reader.deserialize(raw, connection.msgtype)
            if connection.topic == '/episode':
                started += 1
                continue
            if connection.topic == '/ground_truth':
                truth = msg.progress
                continue
            if (t - first_t) / 1e9 < after_s:
                continue
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            frame = frames.setdefault(key, {})
            if connection.topic == '/camera/external/image_raw':
                frame.update(image=image_to_array(msg).copy(), episode=started, truth=truth)
            else:
                frame['mask'] = image_to_array(msg).copy()
    by_episode: dict = {}
    for key in sorted(frames):
        frame = frames[key]
        if 'image' in frame and 'mask' in frame:
            by_episode.setdefault(frame['episode'], []).append(frame)
    return [episode for _, episode in sorted(by_episode.items()) if len(episode) > 2 * _EVERY]


def _final_answers(frames: list[dict], pictures: CompactPredictor, erased: CompactPredictor,
                   goal: str) -> dict[str, float]:
    eraser = RobotEraser(fixed_camera=True)
    views = {'pictures': [f['image'] for f in frames],
             'erased': [eraser(f['image'], f['mask']) for f in frames]}
    nets = {'pictures': pictures, 'erased': erased}
    finals = {}
    for chain in ('pictures', 'erased', 'mean, one chain', 'mean, own chains',
                  'min, one chain', 'min, own chains'):
        halves = [chain] if chain in nets else ['pictures', 'erased']
        join = np.mean if chain.startswith('mean') else np.min
        own = {h: 0.0 for h in halves}
        joined, previous_index = 0.0, 0
        for index in range(_EVERY, len(frames), _EVERY):
            for half in halves:
                query = np.zeros((1, 2, 3, 64, 64, 3), np.uint8)
                query[0, 0] = np.stack([views[half][0], views[half][previous_index],
                                        views[half][index]])
                quoted = own[half] if 'one chain' not in chain else joined
                own[half] = float(nets[half].predict(query, [goal], [round(quoted)],
                                                     [False])[0])
            joined = float(join(list(own.values())))
            previous_index = index
        finals[chain] = joined
    return finals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run_dir', type=Path)
    parser.add_argument('--goal', required=True)
    parser.add_argument('--after-s', type=float, default=0.0,
                        help='only episodes this far into the bag [s] (a trained policy)')
    args = parser.parse_args()
    bags = sorted(args.run_dir.glob('bag-*'))
    if not bags:
        raise SystemExit(f'no bag-* folder in {args.run_dir}')
    pictures = CompactPredictor.load('')
    erased = CompactPredictor.load(erased_checkpoint_path('shipped'))
    episodes = _episodes(bags[-1], args.after_s)
    finals = [_final_answers(frames, pictures, erased, args.goal) for frames in episodes]
    truth_end = np.array([frames[-1]['truth'] for frames in episodes])
    truth_max = np.array([max(f['truth'] for f in frames) for frames in episodes])
    closed, untouched = truth_end >= 95, truth_max < 5
    print(f'{len(episodes)} episodes: {closed.sum()} succeeded, {untouched.sum()} never moved '
          'the object')
    print('| chain | never moved: mean answer (>= 90) | succeeded: mean | AUROC | Pearson |')
    print('|---|---|---|---|---|')
    for chain in finals[0]:
        answers = np.array([f[chain] for f in finals])
        auroc = roc_auc_score(closed, answers) if 0 < closed.sum() < len(closed) else float('nan')
        print(f'| {chain} | {answers[untouched].mean():.0f} % '
              f'({(answers[untouched] >= 90).sum()} of {untouched.sum()}) | '
              f'{answers[closed].mean():.0f} % | {auroc:.2f} | '
              f'{np.corrcoef(truth_end, answers)[0, 1]:.2f} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
