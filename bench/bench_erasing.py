"""What taking the robot out of the frames costs at run time, side by side with what it adds to.

Two parts, each against the work it sits beside:

- **camera node**: erasing one frame (``RobotEraser``, fixed camera with its background memory
  and moving camera) against shrinking and encoding that frame's tile, which the node does for
  every queried frame anyway; at the simulator's 64 px and at the protocol's 384 px tile of a
  640×480 camera (the node erases the tile, after shrinking: the tile column is the whole
  picture's shrink and encode, the erase column the tile's);
- **simulator**: steps per second rendering both cameras, with and without the robot's masks
  (``MetaWorldRobot.render_robot_masks``, a segmentation pass; a real robot's self-filter
  replaces it).

Writes bench/results/erasing.json and prints a markdown table. One thread; about a minute.
"""
import argparse
import os
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=400, help='frames per camera timing')
    parser.add_argument('--sim-steps', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=_RESULTS)
    args = parser.parse_args(argv)
    import cv2
    cv2.setNumThreads(1)
    camera = _camera_rows(args.repeats, args.seed)
    sim = _sim_rows(args.sim_steps, args.seed)
    result = {'hardware': hardware(load_avg_1min=round(os.getloadavg()[0], 2)),
              'date': time.strftime('%Y-%m-%d %H:%M'), 'camera_node': camera, 'simulator': sim}
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
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
