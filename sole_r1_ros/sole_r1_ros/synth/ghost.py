"""Ghost episodes: the expert's arm motion replayed with the arm touching nothing.

A progress model trained on experts can learn to read the arm (where the hand goes while the
task gets done) instead of the task's objects, and an RL learner then finds arm motions it
rewards without moving anything. Here the robot's contacts are switched off, a successful
expert training episode's recorded commands are replayed from the same reset, and the arm
sweeps through the scene as the expert's did while the objects stay where they are. The label
is what the simulator measures (about 0), so only a model that looks at the objects tells the
expert from its ghost: a probe of any reward model, and training data. The shipped compact
file scores ghosts of fresh seeds at 70 % on average over 32 training tasks; trained with them,
28 % (data/README.md, "Ghost episodes, and the arm where the model never saw it").
"""
import contextlib
import json
import os
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from sole_r1_ros.labelled import folder as labelled_folder

GHOST_SUFFIX = '-ghost'


@contextlib.contextmanager
def arm_contacts_off(model: Any, root_body: str | None = None) -> Iterator[int]:
    """Switch off the collisions of every geom of the robot (``root_body``'s subtree).

    ``root_body`` defaults to the Sawyer's (``sim.metaworld_robot.ROBOT_ROOT_BODY``, the body
    robot masks are made of too). Yields the number of geoms switched off; restores them on
    exit.
    """
    from sole_r1_ros.sim.metaworld_robot import ROBOT_ROOT_BODY
    from sole_r1_ros.sim.rendering import subtree_geoms

    geoms = subtree_geoms(model, root_body or ROBOT_ROOT_BODY)
    saved = model.geom_contype[geoms].copy(), model.geom_conaffinity[geoms].copy()
    model.geom_contype[geoms] = 0
    model.geom_conaffinity[geoms] = 0
    try:
        yield len(geoms)
    finally:
        model.geom_contype[geoms], model.geom_conaffinity[geoms] = saved


def replay_as_ghost(robot: Any, spec: Any, actions: np.ndarray, variation: int | None = None
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Replay ``actions`` from the reset of ``spec`` (the source's ``EpisodeSpec``), arm unfelt.

    ``variation`` is the source episode's (its labels say which; a dataset of an older
    generator drew it from the seed, which None repeats).

    Returns ``(metadata, arrays)`` as ``synth.generate.rollout`` does (``to_episode`` makes a
    labelled episode of them), for the ghost: its own id, behaviour and plan, split 'train'.
    """
    from sole_r1_ros.synth.behaviours import BehaviourPlan
    from sole_r1_ros.synth.generate import _frame, _metadata, _stack

    stride = spec.config.frame_stride
    with arm_contacts_off(robot.model):
        observation = robot.reset(seed=spec.seed, variation=variation)
        frames = [_frame(observation, 0, 0.0, False)]
        step_progress, step_success = [0.0], [False]
        for step, action in enumerate(actions, start=1):
            render = step % stride == 0 or step == len(actions)
            observation, info = robot.step(action, render=render)
            step_progress.append(float(info.progress))
            step_success.append(bool(info.success))
            if observation.external is not None:
                frames.append(_frame(observation, step, info.progress, info.success))
    arrays = _stack(frames, step_progress, step_success, list(actions))
    meta = {**_metadata(spec, BehaviourPlan('expert'), robot, arrays),
            'episode_id': spec.episode_id + GHOST_SUFFIX, 'behaviour': 'ghost',
            'plan': {'kind': 'ghost', 'of': spec.episode_id}, 'split': 'train',
            'source': 'sole-r1 synth --ghost-of (simulator ground truth)'}
    return meta, arrays


def write_ghost_episodes(source: str, out: str, tasks: Iterable[str] | None = None,
                         on_episode: Callable[[str], None] | None = None) -> int:
    """Write a ghost of every successful expert training episode of ``source``; return how many.

    ``source`` is a ``sole-r1 synth`` dataset rendered as Meta-World draws it (its
    ``synth.json`` gives the cameras, image size and seed the ghosts are rendered with; the
    ghosts of a ``--robot-masks`` dataset are robot masks too, for ``--erase-robot-of``).
    Episodes already in ``out`` are skipped (an interrupted run resumes).

    Raises:
        ValueError: ``source`` is no synth dataset, has randomized scenes, or holds nothing to
            replay.
    """
    from sole_r1_ros.configuration import from_mapping
    from sole_r1_ros.sim import MetaWorldRobot, SimConfig
    from sole_r1_ros.synth.generate import EpisodeSpec, HEADER, SynthConfig, to_episode

    header_path = os.path.join(source, HEADER)
    if not os.path.isfile(header_path):
        raise ValueError(f'{source} is not a sole-r1 synth dataset (no {HEADER})')
    with open(header_path, encoding='utf-8') as stream:
        config = from_mapping(SynthConfig, json.load(stream)['config'])
    if config.scene_randomization > 0:
        raise ValueError(f'{source} has randomized scenes; ghosts replay plain ones')
    entries = [e for e in labelled_folder.select(labelled_folder.list_episodes(source),
                                                 tasks=tasks, split='train')
               if e.get('behaviour') == 'expert' and e.get('ever_success', e.get('success'))]
    if not entries:
        raise ValueError(f'no successful expert training episode in {source} to replay')
    written, robot, robot_task = 0, None, None
    try:
        for entry in entries:
            ghost_id = entry['episode_id'] + GHOST_SUFFIX
            if labelled_folder.is_finished(out, ghost_id):
                continue
            if entry['task'] != robot_task:
                if robot is not None:
                    robot.close()
                robot_task = entry['task']
                # As ``generate`` builds it: the dataset's seed picks the task's variations.
                robot = MetaWorldRobot(SimConfig(
                    task=robot_task, image_width=config.image_size,
                    image_height=config.image_size, external_camera=config.external_camera,
                    wrist_camera=config.wrist_camera, max_episode_steps=config.max_steps,
                    seed=config.seed), robot_masks=config.robot_masks)
            spec = EpisodeSpec(entry['task'], int(entry['index']), config)
            actions = labelled_folder.load_episode(source, entry).extras['actions']
            meta, arrays = replay_as_ghost(robot, spec, np.asarray(actions),
                                           entry.get('variation'))
            labelled_folder.write_episode(out, to_episode(meta, arrays))
            written += 1
            if on_episode is not None:
                on_episode(ghost_id)
    finally:
        if robot is not None:
            robot.close()
    return written
