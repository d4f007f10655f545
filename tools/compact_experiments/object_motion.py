"""Object-motion episodes in the training scenes: the goal's words say which way an object goes.

In each training scene with a free object the closed gripper comes down behind the object and
pushes it left, right, forward (away from the robot's base) or back (toward it), 12 cm. The label
is the object's displacement along the *asked* direction over 12 cm, clipped to 0-100, from the
simulator's object position (a training label only, never an input). Four behaviours per
direction: the whole way, stopping at 30-70 %, noisy, and the wrong way (pushed in another
direction under the asked goal), so one motion is progress under one sentence and none under
another. Scene/direction pairs that would synthesize a held-out or evaluation task are left out
(push and push-wall pulled back: push-back), and so are the plate scenes.

Usage (two processes):  python object_motion.py OUT 0 2 & python object_motion.py OUT 1 2
"""
import sys

import numpy as np

from sole_r1_ros.labelled.episode import LabelledEpisode
from sole_r1_ros.labelled.folder import write_episode
from sole_r1_ros.sim import MetaWorldRobot, SimConfig

NOUN = {
    'assembly-v3': 'nut', 'basketball-v3': 'ball', 'coffee-pull-v3': 'mug', 'coffee-push-v3': 'mug',
    'hammer-v3': 'hammer', 'hand-insert-v3': 'block', 'peg-insert-side-v3': 'peg',
    'pick-place-v3': 'puck', 'pick-place-wall-v3': 'puck', 'push-v3': 'puck', 'push-wall-v3': 'puck',
    'shelf-place-v3': 'block', 'soccer-v3': 'ball', 'stick-pull-v3': 'stick',
    'stick-push-v3': 'stick', 'sweep-v3': 'block',
}
SKIP = {('push-v3', 'back'), ('push-wall-v3', 'back')}
DIRS = {
    'left': ((-1, 0), ('push the {o} to the left', 'slide the {o} over to the left',
                       'move the {o} left')),
    'right': ((1, 0), ('push the {o} to the right', 'slide the {o} over to the right',
                       'move the {o} right')),
    'forward': ((0, 1), ('push the {o} forward, away from the robot', 'slide the {o} further away',
                         'move the {o} away from the robot')),
    'back': ((0, -1), ('pull the {o} back toward the robot', 'bring the {o} closer to the robot',
                       'drag the {o} back')),
}
BEHAVIOURS = ('expert', 'stop-short', 'wrong-way', 'noisy')
DISTANCE_M = 0.12


def episode(robot, task, name, behaviour, index, out):
    """Push the scene's object one way, label by the asked way, write it; return the labels."""
    asked = np.r_[DIRS[name][0], 0.0]
    rng = np.random.default_rng([index, sum(map(ord, task))])
    if behaviour == 'wrong-way':
        others = [d for d in DIRS if d != name]
        move = np.r_[DIRS[others[rng.integers(len(others))]][0], 0.0]
    else:
        move = asked
    fraction = rng.uniform(0.3, 0.7) if behaviour == 'stop-short' else 1.0
    noise = 0.3 if behaviour == 'noisy' else 0.0
    obs = robot.reset(seed=2000 + index)
    obj0 = np.asarray(obs.state[4:7], dtype=np.float64)
    ext, wrist, progress = [obs.external], [obs.wrist], [0.0]

    def label(state):
        along = np.dot(np.asarray(state[4:7]) - obj0, asked) / DISTANCE_M
        return float(100.0 * np.clip(along, 0.0, 1.0))

    step = 0

    def go(target, tol=0.012, limit=60, speed=0.6, until=None):
        # Proportional control of the hand, gripper closed, frames every second step.
        nonlocal obs, step
        for _ in range(limit):
            if until is not None and until():
                return
            ee = np.asarray(obs.ee_position, dtype=np.float64)
            if until is None and np.linalg.norm(target - ee) < tol:
                return
            command = np.clip((target - ee) / 0.012, -speed, speed) + rng.normal(0, noise, 3)
            step += 1
            obs, _ = robot.step(np.r_[np.clip(command, -1, 1), 1.0], render=step % 2 == 0)
            if obs.external is not None:
                ext.append(obs.external)
                wrist.append(obs.wrist)
                progress.append(label(obs.state))

    z_push = max(obj0[2] + 0.01, 0.045)
    behind = obj0 - move * 0.075
    start = np.asarray(obs.ee_position, dtype=np.float64)
    z_safe = max(start[2], obj0[2] + 0.15)
    go(np.r_[start[:2], z_safe])
    go(np.r_[behind[:2], z_safe])
    go(np.r_[behind[:2], z_push])

    def moved():
        return np.dot(np.asarray(obs.state[4:7]) - obj0, move) >= fraction * DISTANCE_M

    go(np.r_[(obj0 + move * (DISTANCE_M + 0.05))[:2], z_push], limit=70, speed=0.4, until=moved)
    if len(progress) < 2:
        return None
    goal, *paraphrases = (g.format(o=NOUN[task]) for g in DIRS[name][1])
    write_episode(out, LabelledEpisode(
        episode_id=f'{task}-obj-{index:02d}', goal=goal, progress=progress,
        external=np.stack(ext), wrist=np.stack(wrist),
        task=task.replace('-v3', f'-obj-{name}-v3'), success=progress[-1] >= 95,
        behaviour='expert' if behaviour in ('expert', 'noisy') else behaviour, split='train',
        paraphrases=tuple(paraphrases), meta={'scene': task}))
    return progress


if __name__ == '__main__':
    out, part, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for task in sorted(NOUN)[part::parts]:
        robot = MetaWorldRobot(SimConfig(
            task=task, image_width=64, image_height=64, external_camera='corner4',
            wrist_camera='gripperPOV', max_episode_steps=400, seed=0))
        finals, index = [], 0
        for name in DIRS:
            if (task, name) in SKIP:
                continue
            for behaviour in BEHAVIOURS:
                labels = episode(robot, task, name, behaviour, index, out)
                index += 1
                finals.append(f'{name}/{behaviour}: {labels[-1]:.0f}' if labels else 'none')
        robot.close()
        print(task, ', '.join(finals), flush=True)
