"""What taking the robot out of the frames costs at run time, side by side with what it adds to.

Two parts, each against the work it sits beside:

- **camera node**: erasing one frame (``RobotEraser``, fixed camera with its background memory
  and moving camera) against shrinking and encoding that frame's tile, which the node does for
  every queried frame anyway; at the simulator's 64 px and at the protocol's 384 px tile of a
  640×480 camera (the node erases the tile, after shrinking: the tile column is the whole
  picture's shrink and encode, the erase column the tile's);
- **simulator**: steps per second rendering both cameras, with and without the robot's masks
  (``MetaWorldRobot.render_robot_masks``, a segmentation pass; a real robot's self-filter
  replaces it);
- **self-filter** (``robot_mask_node``'s ``RobotSelfFilter``): one external-camera mask drawn
  from the Sawyer's model and the joint positions, against the simulator's segmentation pass
  of the same camera on the whole scene, at 64×64, 128×128 and 640×480 (and 640×480 drawn at
  384 px and scaled up, as ``robot_mask_node`` does by default), without and with an RGB-D
  camera's depth (``use_depth``); and how well the two agree along expert episodes (IoU, and
  the share of the simulator's robot pixels the self-filter covers), where the table and the
  objects hide parts of the robot that its model alone shows, which the depth (the
  simulator's, with 1 cm of noise and 5 % of pixels unread) leaves out.

Writes bench/results/erasing.json and prints markdown tables. One thread; about a minute.
"""
import argparse
import contextlib
import os
import tempfile
import time

import numpy as np

from results_io import hardware, merge_result
from sole_r1_ros.camera import encode_tile, shrink_to_tile
from sole_r1_ros.camera.robot_eraser import RobotEraser

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results', 'erasing.json')
_FRAMES = {'64x64': (64, 64), '640x480': (480, 640)}


def _per_call_ms(fn, args_list) -> float:
    start = time.perf_counter()
    for args in args_list:
        fn(*args)
    return 1e3 * (time.perf_counter() - start) / len(args_list)


def _camera_rows(repeats: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for name, (height, width) in _FRAMES.items():
        frames = rng.integers(0, 256, (8, height, width, 3), dtype=np.uint8)
        masks = np.zeros((8, height, width), dtype=bool)
        for i, mask in enumerate(masks):   # an arm-sized block moving across the picture
            top, left = height // 4, (i * width) // 16
            mask[top:top + height // 2, left:left + width // 3] = True
        calls = [(frames[i % 8], masks[i % 8]) for i in range(repeats)]
        tiles = [(shrink_to_tile(f), shrink_to_tile(m.astype(np.uint8))) for f, m in calls]
        fixed, moving = RobotEraser(fixed_camera=True), RobotEraser(fixed_camera=False)
        row = {'frame': name,
               'erase_fixed_ms': _per_call_ms(fixed, tiles),
               'erase_moving_ms': _per_call_ms(moving, tiles),
               'tile_jpeg_ms': _per_call_ms(
                   lambda f, m: encode_tile(shrink_to_tile(f), 'jpeg', 90), calls),
               'tile_png_ms': _per_call_ms(
                   lambda f, m: encode_tile(shrink_to_tile(f), 'png'), calls)}
        row = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
        row['erase_fixed_over_tile_jpeg'] = round(row['erase_fixed_ms'] / row['tile_jpeg_ms'], 2)
        rows.append(row)
    return rows


def _sim_rows(steps: int, seed: int) -> list[dict]:
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig

    rows = []
    robot = MetaWorldRobot(SimConfig(task='door-close-v3', image_width=64, image_height=64))
    try:
        actions = np.random.default_rng(seed).uniform(-1, 1, (steps, 4))
        for masks in (False, True, False, True):   # interleaved: the load hits both alike
            robot.reset(seed=seed)
            start = time.perf_counter()
            for action in actions:
                robot.step(action)
                if masks:
                    robot.render_robot_masks()
            rows.append({'masks': masks, 'steps_per_s': steps / (time.perf_counter() - start)})
    finally:
        robot.close()
    plain = max(r['steps_per_s'] for r in rows if not r['masks'])
    with_masks = max(r['steps_per_s'] for r in rows if r['masks'])
    return [{'mode': '2 cameras 64x64', 'steps_per_s': round(plain, 1)},
            {'mode': '2 cameras 64x64 + robot masks', 'steps_per_s': round(with_masks, 1),
             'ratio_to_plain': round(with_masks / plain, 2)}]


@contextlib.contextmanager
def _sawyer_and_its_self_filter(task: str, width: int, height: int, max_side: int, seed: int):
    """(robot after a reset, its first observation, a self-filter of its external camera)."""
    from sole_r1_ros.camera.self_filter import RobotSelfFilter
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig
    from sole_r1_ros.sim.metaworld_robot import write_robot_model

    robot = MetaWorldRobot(SimConfig(task=task, image_width=width, image_height=height,
                                     wrist_camera=''))
    with tempfile.TemporaryDirectory() as folder:
        try:
            observation = robot.reset(seed=seed)
            self_filter = RobotSelfFilter(write_robot_model(os.path.join(folder, 'sawyer.xml')),
                                          robot.camera_calibrations()[0][0], max_side=max_side)
            try:
                yield robot, observation, self_filter
            finally:
                self_filter.close()
        finally:
            robot.close()


def _measured_depth(robot, rng: np.random.Generator) -> np.ndarray:
    """The external camera's depth as an RGB-D camera reads it: 1 cm noise, 5 % unread."""
    depth = robot.render_depths()[0]
    depth = depth + rng.normal(0.0, 0.01, depth.shape)
    depth[rng.random(depth.shape) < 0.05] = 0.0
    return depth.astype(np.float32)


def _self_filter_rows(frames: int, seed: int) -> list[dict]:
    rows = []
    for width, height, max_side in ((64, 64, 0), (128, 128, 0), (640, 480, 0), (640, 480, 384)):
        with _sawyer_and_its_self_filter('door-close-v3', width, height, max_side, seed) as (
                robot, observation, self_filter):
            joints = dict(zip(observation.joint_names, observation.joint_positions))
            depth = _measured_depth(robot, np.random.default_rng(seed))
            self_filter.mask(joints)   # the GL context, made once
            robot.render_robot_masks()
            timings = {'self_filter': [], 'with_depth': [], 'simulator': []}
            for _ in range(2):   # interleaved: the load hits all alike
                timings['self_filter'].append(
                    _per_call_ms(self_filter.mask, [(joints,)] * frames))
                timings['with_depth'].append(
                    _per_call_ms(self_filter.mask, [(joints, depth)] * frames))
                timings['simulator'].append(
                    _per_call_ms(robot.render_robot_masks, [()] * frames))
        mine, sim = min(timings['self_filter']), min(timings['simulator'])
        drawn = f', drawn at {max_side} px' if max_side else ''
        rows.append({'frame': f'{width}x{height}{drawn}', 'self_filter_ms': round(mine, 2),
                     'with_depth_ms': round(min(timings['with_depth']), 2),
                     'simulator_segmentation_ms': round(sim, 2),
                     'ratio_to_simulator': round(mine / sim, 2)})
    return rows


def _agreement_rows(steps: int, seed: int) -> list[dict]:
    rows = []
    for task in ('drawer-close-v3', 'door-close-v3', 'push-back-v3'):
        with _sawyer_and_its_self_filter(task, 128, 128, 0, seed) as (
                robot, observation, self_filter):
            rng = np.random.default_rng(seed)
            iou, recall = {'': [], '_depth': []}, {'': [], '_depth': []}
            for step in range(steps):
                if step:
                    observation, _ = robot.step(robot.expert_action())
                truth = robot.render_robot_masks()[0] > 0
                joints = dict(zip(observation.joint_names, observation.joint_positions))
                for kind, depth in (('', None), ('_depth', _measured_depth(robot, rng))):
                    drawn = self_filter.mask(joints, depth) > 0
                    iou[kind].append((truth & drawn).sum() / (truth | drawn).sum())
                    recall[kind].append((truth & drawn).sum() / truth.sum())
        row = {'task': task, 'frames': steps}
        for kind in iou:
            row.update({f'iou_mean{kind}': round(float(np.mean(iou[kind])), 3),
                        f'iou_min{kind}': round(float(np.min(iou[kind])), 3),
                        f'covered_min{kind}': round(float(np.min(recall[kind])), 3)})
        rows.append(row)
    return rows


def _overlay_figure(path: str, steps: int, seed: int) -> None:
    """What the self-filter draws on three expert episodes, against the simulator's masks.

    Per task: the picture with the self-filter's mask tinted green (``robot_mask_overlay``),
    and where it differs from the simulator's segmentation of the whole scene (yellow: erased
    though hidden by the scene; magenta: robot pixels it missed), on the picture in gray.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from sole_r1_ros.nodes.robot_mask_node import overlay_mask

    tasks = ('drawer-close-v3', 'door-close-v3', 'push-back-v3')
    figure, axes = plt.subplots(2, len(tasks), figsize=(3.2 * len(tasks), 6.6))
    for column, task in enumerate(tasks):
        with _sawyer_and_its_self_filter(task, 256, 256, 0, seed) as (
                robot, observation, self_filter):
            for _ in range(steps):
                observation, _ = robot.step(robot.expert_action())
            truth = robot.render_robot_masks()[0] > 0
            drawn = self_filter.mask(dict(zip(observation.joint_names,
                                              observation.joint_positions))) > 0
            picture = observation.external
        gray = (picture.mean(axis=2, keepdims=True) // 2).astype(np.uint8)
        differences = np.repeat(gray, 3, axis=2)
        differences[drawn & ~truth] = (255, 220, 0)
        differences[truth & ~drawn] = (255, 0, 255)
        iou = (truth & drawn).sum() / (truth | drawn).sum()
        axes[0, column].imshow(overlay_mask(picture, drawn.astype(np.uint8) * 255))
        axes[0, column].set_title(f'{task}, step {steps}', fontsize=9)
        axes[1, column].imshow(differences)
        axes[1, column].set_title(f'IoU {iou:.3f}; {int((truth & ~drawn).sum())} px missed',
                                  fontsize=9)
        for axis in axes[:, column]:
            axis.set_axis_off()
    figure.suptitle('self-filter mask (green); against the simulator: yellow erased though '
                    'hidden by the scene, magenta missed', fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=400, help='frames per camera timing')
    parser.add_argument('--sim-steps', type=int, default=200)
    parser.add_argument('--masks', type=int, default=100, help='masks per self-filter timing')
    parser.add_argument('--agreement-steps', type=int, default=60,
                        help='expert steps per task compared with the simulator')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=_RESULTS)
    parser.add_argument('--overlay', metavar='PNG',
                        help="only draw the self-filter's overlay on three expert episodes "
                        "against the simulator's masks (docs/self_filter_overlay.png)")
    args = parser.parse_args(argv)
    if args.overlay:
        _overlay_figure(args.overlay, 30, args.seed)
        print(f'wrote {args.overlay}')
        return 0
    import cv2
    cv2.setNumThreads(1)
    camera = _camera_rows(args.repeats, args.seed)
    sim = _sim_rows(args.sim_steps, args.seed)
    self_filter = _self_filter_rows(args.masks, args.seed)
    agreement = _agreement_rows(args.agreement_steps, args.seed)
    result = {'hardware': hardware(load_avg_1min=round(os.getloadavg()[0], 2)),
              'date': time.strftime('%Y-%m-%d %H:%M'), 'camera_node': camera, 'simulator': sim,
              'self_filter': self_filter, 'self_filter_agreement': agreement}
    merge_result(args.out, 'erasing', result)
    print('| frame | erase, fixed camera [ms] | erase, wrist camera [ms] | tile JPEG [ms] | '
          'tile PNG [ms] | erase / JPEG tile |')
    print('|---|---:|---:|---:|---:|---:|')
    for row in camera:
        print(f"| {row['frame']} | {row['erase_fixed_ms']} | {row['erase_moving_ms']} | "
              f"{row['tile_jpeg_ms']} | {row['tile_png_ms']} | "
              f"{row['erase_fixed_over_tile_jpeg']} |")
    print()
    print('| simulator | steps/s | ratio |')
    print('|---|---:|---:|')
    for row in sim:
        print(f"| {row['mode']} | {row['steps_per_s']} | {row.get('ratio_to_plain', 1.0)} |")
    print()
    print('| external camera | self-filter mask [ms] | with depth [ms] | '
          'simulator segmentation [ms] | ratio |')
    print('|---|---:|---:|---:|---:|')
    for row in self_filter:
        print(f"| {row['frame']} | {row['self_filter_ms']} | {row['with_depth_ms']} | "
              f"{row['simulator_segmentation_ms']} | {row['ratio_to_simulator']} |")
    print()
    print('| expert episode, 128x128 | frames | IoU mean | IoU min | robot pixels covered, min '
          '| with depth: IoU mean | IoU min | covered, min |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    for row in agreement:
        print(f"| {row['task']} | {row['frames']} | {row['iou_mean']} | {row['iou_min']} | "
              f"{row['covered_min']} | {row['iou_mean_depth']} | {row['iou_min_depth']} | "
              f"{row['covered_min_depth']} |")
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
