"""What the compact model sees of a task: an expert episode at full size and at its 64 pixels.

The data README's "What the pooled AUROC is made of" shows with this figure why
handle-press-side's finished presses go unread: the external view's first frame, the middle
step's and the first success's at 256 pixels (top row) and at the network's 64 (bottom row,
enlarged), beside the wrist view at 64 pixels at the success and the middle step.

    python tools/task_views.py handle-press-side-v3 docs/handle_press_side_views.png
"""
import argparse

import numpy as np
from PIL import Image, ImageDraw

from sole_r1_ros.sim import MetaWorldRobot, SimConfig

CELL = 256


def expert_frames(task: str, size: int, seed: int) -> tuple[list, list, int]:
    """(external, wrist) frames at the start, the middle step and the first success; that step."""
    config = SimConfig(task=task, image_width=size, image_height=size, seed=seed,
                       max_episode_steps=300)
    with MetaWorldRobot(config) as robot:
        observations = [robot.reset(seed=seed)]
        for _ in range(1, config.max_episode_steps):
            observation, info = robot.step(robot.expert_action(), render=True)
            observations.append(observation)
            if info.success:
                middle = len(observations) // 2
                chosen = (observations[0], observations[middle], observation)
                return ([o.external for o in chosen], [o.wrist for o in chosen], middle)
    raise RuntimeError(f'the expert did not succeed at {task} (seed {seed}) in '
                       f'{config.max_episode_steps} steps')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('task', help='Meta-World v3 task id')
    parser.add_argument('out', help='PNG to write')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    def enlarge(frame: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(frame).resize((CELL, CELL), Image.NEAREST))

    large, _, middle = expert_frames(args.task, CELL, args.seed)
    small, small_wrist, _ = expert_frames(args.task, 64, args.seed)
    top = np.concatenate([*large, enlarge(small_wrist[-1])], axis=1)
    bottom = np.concatenate([*map(enlarge, small), enlarge(small_wrist[1])], axis=1)
    figure = Image.fromarray(np.concatenate([top, bottom], axis=0))
    draw = ImageDraw.Draw(figure)
    captions = (('start', f'half-way (step {middle})', 'success', 'wrist, success (64 px)'),
                ('64 px', '64 px', '64 px', f'wrist, step {middle} (64 px)'))
    for row, texts in enumerate(captions):
        for column, text in enumerate(texts):
            draw.text((6 + CELL * column, 4 + CELL * row), text, fill=(255, 255, 255))
    figure.resize((figure.width * 3 // 4, figure.height * 3 // 4), Image.LANCZOS).save(
        args.out, optimize=True)
    print(f'{args.task}: {args.out}')


if __name__ == '__main__':
    main()
