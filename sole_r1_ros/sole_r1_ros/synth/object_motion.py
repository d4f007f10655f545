"""Object-motion episodes: the goal's words, not the scene, say which way an object should go.

In each training scene with a free object the closed gripper comes down behind the object and
pushes it left, right, forward (away from the robot's base) or back (toward it), 12 cm, under
goals such as "push the puck to the left" or "pull the ball back toward the robot" (and two
paraphrases). Four behaviours per direction: the whole way, stopping at 30-70 %, noisy, and the
wrong way (pushed another way under the asked goal), so one motion is progress under one
sentence and none under another: a network that reads the scene alone cannot fit them.

The label is the object's displacement along the *asked* direction over 12 cm, clipped to
0-100, from the simulator's object position: a training label, never an input. Pairs that
would synthesize a task held out from the compact model or kept for evaluation are left out
(push and push-wall pulled back would be push-back), and so are the plate scenes (plate-slide
and its variants are such tasks). Each episode's ``meta['scene']`` is its scene's task, for the
scene adversary (``compact/scene_adversary.py``).

Episode i of a scene resets the simulator with seed 2000 + i on the i-th variation of the
scene's training pool (``synth.generate.variation_pools``, dataset seed 0: never a variation that
``sole-r1 synth`` validates the task on) and draws its noise from (i, the scene), so a scene's
episodes are the same whichever worker makes them.
"""
from dataclasses import dataclass
import multiprocessing
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from sole_r1_ros.labelled import folder as labelled_folder, LabelledEpisode
from sole_r1_ros.synth.generate import variation_pools

OBJECT_NOUNS: dict[str, str] = {
    'assembly-v3': 'nut', 'basketball-v3': 'ball', 'coffee-pull-v3': 'mug',
    'coffee-push-v3': 'mug', 'hammer-v3': 'hammer', 'hand-insert-v3': 'block',
    'peg-insert-side-v3': 'peg', 'pick-place-v3': 'puck', 'pick-place-wall-v3': 'puck',
    'push-v3': 'puck', 'push-wall-v3': 'puck', 'shelf-place-v3': 'block',
    'soccer-v3': 'ball', 'stick-pull-v3': 'stick', 'stick-push-v3': 'stick',
    'sweep-v3': 'block',
}
'''The scenes with a free object, and what the goals call it.'''
DIRECTIONS: dict[str, tuple[tuple[float, float], tuple[str, str, str]]] = {
    'left': ((-1, 0), ('push the {o} to the left', 'slide the {o} over to the left',
                       'move the {o} left')),
    'right': ((1, 0), ('push the {o} to the right', 'slide the {o} over to the right',
                       'move the {o} right')),
    'forward': ((0, 1), ('push the {o} forward, away from the robot',
                         'slide the {o} further away', 'move the {o} away from the robot')),
    'back': ((0, -1), ('pull the {o} back toward the robot', 'bring the {o} closer to the robot',
                       'drag the {o} back')),
}
'''Direction -> (x, y unit vector in the world frame, goal and two paraphrases).'''
SKIPPED = frozenset({('push-v3', 'back'), ('push-wall-v3', 'back'), ('pick-place-v3', 'back'),
                     ('pick-place-wall-v3', 'back')})
'''(scene, direction) pairs left out: they would be push-back, a held-out task. Pick-place and
pick-place-wall render pixel for pixel as push and push-wall (the goal sites are hidden), so
their puck pulled back is push-back too; a wrong-way episode never moves one of these ways.'''
BEHAVIOURS = ('expert', 'stop-short', 'wrong-way', 'noisy')
DISTANCE_M = 0.12
IMAGE_SIZE = 64


@dataclass(frozen=True)
class ObjectMotionSpec:
    """One episode: a scene, the asked direction, a behaviour and its index in the scene."""

    task: str
    direction: str
    behaviour: str
    index: int

    @property
    def episode_id(self) -> str:
        return f'{self.task}-obj-{self.index:02d}'


def episode_specs(task: str, directions: Iterable[str] | None = None) -> list[ObjectMotionSpec]:
    """The episodes of one scene (numbered over every direction, whichever are chosen).

    Raises:
        ValueError: a scene without a free object or an unknown direction.
    """
    if task not in OBJECT_NOUNS:
        raise ValueError(f'{task!r} has no object-motion goals; scenes with a free object: '
                         f'{", ".join(sorted(OBJECT_NOUNS))}')
    chosen = set(DIRECTIONS if directions is None else directions)
    unknown = chosen - set(DIRECTIONS)
    if unknown:
        raise ValueError(f'unknown directions {sorted(unknown)}; known: {list(DIRECTIONS)}')
    pairs = [(d, b) for d in DIRECTIONS if (task, d) not in SKIPPED for b in BEHAVIOURS]
    return [ObjectMotionSpec(task, d, b, i) for i, (d, b) in enumerate(pairs) if d in chosen]


def moved_direction(spec: ObjectMotionSpec, rng: np.random.Generator) -> str:
    """The way the object is moved: the asked one, or for 'wrong-way' another, never skipped.

    ``rng`` is the episode's generator, drawn from first (the draw is part of the episode).
    """
    if spec.behaviour != 'wrong-way':
        return spec.direction
    others = [d for d in DIRECTIONS if d != spec.direction and (spec.task, d) not in SKIPPED]
    return others[rng.integers(len(others))]


def rollout(robot: Any, spec: ObjectMotionSpec) -> LabelledEpisode | None:
    """Push the scene's object one way, labelled by the asked way; None if nothing was filmed."""
    task, index = spec.task, spec.index
    asked = np.r_[DIRECTIONS[spec.direction][0], 0.0]
    rng = np.random.default_rng([index, sum(map(ord, task))])
    move = np.r_[DIRECTIONS[moved_direction(spec, rng)][0], 0.0]
    fraction = rng.uniform(0.3, 0.7) if spec.behaviour == 'stop-short' else 1.0
    noise = 0.3 if spec.behaviour == 'noisy' else 0.0
    train_pool = variation_pools(task, 0)[1]
    obs = robot.reset(seed=2000 + index, variation=train_pool[index % len(train_pool)])
    start_object = np.asarray(obs.state[4:7], dtype=np.float64)
    external, wrist, progress = [obs.external], [obs.wrist], [0.0]

    def label(state: Any) -> float:
        along = np.dot(np.asarray(state[4:7]) - start_object, asked) / DISTANCE_M
        return float(100.0 * np.clip(along, 0.0, 1.0))

    def moved_enough() -> bool:
        return np.dot(np.asarray(obs.state[4:7]) - start_object, move) >= fraction * DISTANCE_M

    step = 0

    def go(target: np.ndarray, tolerance: float = 0.012, limit: int = 60, speed: float = 0.6,
           until: Callable[[], bool] | None = None) -> None:
        # Proportional control of the hand, gripper closed; a frame every second step.
        nonlocal obs, step
        for _ in range(limit):
            if until is not None and until():
                return
            hand = np.asarray(obs.ee_position, dtype=np.float64)
            if until is None and np.linalg.norm(target - hand) < tolerance:
                return
            command = np.clip((target - hand) / 0.012, -speed, speed) + rng.normal(0, noise, 3)
            step += 1
            obs, _ = robot.step(np.r_[np.clip(command, -1, 1), 1.0], render=step % 2 == 0)
            if obs.external is not None:
                external.append(obs.external)
                wrist.append(obs.wrist)
                progress.append(label(obs.state))

    push_height = max(start_object[2] + 0.01, 0.045)
    behind = start_object - move * 0.075
    hand = np.asarray(obs.ee_position, dtype=np.float64)
    safe_height = max(hand[2], start_object[2] + 0.15)
    go(np.r_[hand[:2], safe_height])
    go(np.r_[behind[:2], safe_height])
    go(np.r_[behind[:2], push_height])
    go(np.r_[(start_object + move * (DISTANCE_M + 0.05))[:2], push_height], limit=70,
       speed=0.4, until=moved_enough)
    if len(progress) < 2:
        return None
    goal, *paraphrases = (g.format(o=OBJECT_NOUNS[task]) for g in DIRECTIONS[spec.direction][1])
    return LabelledEpisode(
        episode_id=spec.episode_id, goal=goal, progress=progress, external=np.stack(external),
        wrist=np.stack(wrist), task=task.replace('-v3', f'-obj-{spec.direction}-v3'),
        success=progress[-1] >= 95,
        behaviour='expert' if spec.behaviour in ('expert', 'noisy') else spec.behaviour,
        split='train', paraphrases=tuple(paraphrases), meta={'scene': task})


def _run_scene(job: tuple[str, str, tuple[str, ...] | None, bool]) -> int:
    """Worker entry: write one scene's unfinished episodes; return how many were written.

    A scene's robot is closed before the next is built (one GL context per process at a time,
    as ``synth.generate`` does).
    """
    import warnings

    from sole_r1_ros.sim import MetaWorldRobot, SimConfig

    warnings.filterwarnings('ignore', message='Constant\\(s\\) may be too high')
    root, task, directions, robot_masks = job
    todo = [s for s in episode_specs(task, directions)
            if not labelled_folder.is_finished(root, s.episode_id)]
    if not todo:
        return 0
    robot = MetaWorldRobot(SimConfig(
        task=task, image_width=IMAGE_SIZE, image_height=IMAGE_SIZE, external_camera='corner4',
        wrist_camera='gripperPOV', max_episode_steps=400, seed=0), robot_masks=robot_masks)
    written = 0
    try:
        for spec in todo:
            episode = rollout(robot, spec)
            if episode is not None:
                labelled_folder.write_episode(root, episode)
                written += 1
    finally:
        robot.close()
    return written


def generate_object_motion(root: str, tasks: Sequence[str] | None = None,
                           directions: Iterable[str] | None = None, workers: int = 1,
                           on_scene: Callable[[str, int], None] | None = None,
                           robot_masks: bool = False) -> int:
    """Write the object-motion episodes of ``tasks`` (default: every scene) under ``root``.

    Finished episodes are kept (resumable). Returns the number of episodes written now.
    ``robot_masks``: frames are the robot's masks (``MetaWorldRobot(robot_masks=True)``).

    Raises:
        ValueError: a scene without a free object, an unknown direction.
    """
    tasks = sorted(OBJECT_NOUNS) if not tasks else list(tasks)
    directions = None if directions is None else tuple(directions)
    for task in tasks:
        episode_specs(task, directions)  # validates before any simulator starts
    jobs = [(root, task, directions, robot_masks) for task in tasks]
    if workers <= 1 or len(jobs) == 1:
        return _tally(jobs, map(_run_scene, jobs), on_scene)
    with multiprocessing.get_context('spawn').Pool(processes=workers) as pool:
        return _tally(jobs, pool.imap(_run_scene, jobs), on_scene)


def _tally(jobs: list[tuple], counts: Iterator[int],
           on_scene: Callable[[str, int], None] | None) -> int:
    """Sum the episodes each scene wrote, reporting each scene as it finishes."""
    written = 0
    for job, count in zip(jobs, counts):
        written += count
        if on_scene is not None:
            on_scene(job[1], count)
    return written
