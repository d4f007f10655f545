"""Roll out scripted expert and perturbed episodes in Meta-World and write them to disk.

Episodes run in worker processes, one MuJoCo env (and EGL context) per process at a time: GL
contexts cannot be shared, and an old env collected after a new one rendered blacks out every
later frame, so a worker closes its robot before it builds the next task's.
"""
from dataclasses import asdict, dataclass, field
import json
import gc
import logging
import multiprocessing
import os
from typing import Any, Callable, Iterator

import numpy as np

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.labelled import folder as labelled_folder, LabelledEpisode
from sole_r1_ros.sim.tasks import TASK_GOALS
from sole_r1_ros.synth.behaviours import (
    approach_fraction, behaviour_for_episode, BEHAVIOURS, BehaviourPlan, draw_plan,
    PerturbedExpert)
from sole_r1_ros.synth.goals import EVAL_PARAPHRASES, TRAIN_PARAPHRASES

logger = logging.getLogger(__name__)

_TASK_ORDER = {task: index for index, task in enumerate(sorted(TASK_GOALS))}
# A frame this dark means the GL context was lost (see the module docstring), not a scene.
_MIN_FRAME_MEAN = 5.0
_CYCLE_LENGTH = 10
VARIATIONS = 50
'''Meta-World's fixed object/goal variations of a task (MT1's ``train_tasks``).'''
VAL_VARIATIONS = 10
'''Of them, how many only validation episodes use: a validation episode never begins as a
training episode of its task does (the scripted expert is deterministic, so a shared variation
had made some identical whole).'''
HEADER = 'synth.json'
# The dataset's settings, beside ``episodes/``: {"format", "version", "config"}.
FORMAT_NAME = 'sole_r1_synth'
FORMAT_VERSION = 3
# 3: each episode's variation chosen from its split's own pool and the validation positions
# rotated by task (2: variations drawn, shared by the splits; validation never on a reversal).
FRAME_ARRAYS: tuple[str, ...] = (
    'frame_steps', 'progress', 'success', 'state', 'ee_position', 'gripper_opening',
    'joint_positions')
'''Per-frame arrays of a rollout besides the camera frames (``frames.npz`` extras).'''
STEP_ARRAYS: tuple[str, ...] = ('step_progress', 'step_success', 'actions')
'''Per-env-step arrays: progress/success at steps 0..T, actions 1..T.'''


@dataclass(frozen=True)
class SynthConfig:
    """What ``sole-r1 synth`` generates; stored in ``synth.json`` so a dataset describes itself."""

    tasks: tuple[str, ...] = option(('drawer-close-v3', 'reach-v3'),
                                    'Meta-World v3 task ids (keys of sim.TASK_GOALS)')
    episodes_per_task: int = option(10, 'episodes per task; episode i has behaviour '
                                    'behaviour_for_episode(i)', range=(1, 100_000))
    image_size: int = option(64, 'side of the square camera images [px]', range=(8, 512))
    frame_stride: int = option(2, 'store the cameras every this many env steps and at the last '
                               'step; progress, success and actions are kept at every step',
                               range=(1, 100))
    max_steps: int = option(150, "hard cap on an episode's env steps", range=(2, 5000))
    success_hold_steps: int = option(5, 'steps recorded after the first success before the '
                                     'episode ends (expert videos that end at success, as '
                                     'value-order correlation expects)', range=(0, 1000))
    seed: int = option(0, "base seed; each episode's variation and perturbation derive from "
                       'it, the task and the index', range=(0, 2**31))
    val_per_block: int = option(2, ('episodes of every block of 10 (one behaviour cycle) marked '
                                    "split='val', rotating through the behaviours block by "
                                    'block and task by task, so every behaviour is validated; '
                                    '0 marks none'),
                                range=(0, _CYCLE_LENGTH))
    external_camera: str = option('corner4', 'external camera of the Meta-World scene')
    wrist_camera: str = option('gripperPOV', 'wrist camera of the Meta-World scene')
    scene_randomization: float = option(
        0.0, "strength of each episode's camera pose, lighting and colour randomization "
        '(sim.randomization: 1 is +-2 cm and +-3 deg of camera, +-35 % light, +-20 % colour); '
        '0 renders every scene as Meta-World draws it', range=(0.0, 2.0))
    camera_orbit_deg: float = option(
        0.0, "each episode's external camera turned about the table's vertical axis by up to "
        'this [deg] (sim.randomization: the scene seen from another side, so a mechanism '
        'trained from the front is also seen from the side); 0 keeps the camera where it is',
        range=(0.0, 180.0))
    behaviour: str = option(
        '', 'every episode this behaviour (one of synth.behaviours.BEHAVIOURS) instead of '
        "behaviour_for_episode's cycle; empty cycles")
    brake: bool = option(
        False, "stop the scene's hinges and slides while a stop_short episode's hand backs "
        'off, so a shoved drawer ends where the push ended instead of sliding shut: labelled '
        "partial end states (the label is still the simulator's progress)")
    robot_masks: bool = option(
        False, "store each frame as the robot's mask (white where the robot is) instead of "
        'its picture: the same episodes as without it, frame for frame, for '
        '--erase-robot-of (sim.MetaWorldRobot(robot_masks=True))')

    def __post_init__(self) -> None:
        validate(self)
        if self.behaviour and self.behaviour not in BEHAVIOURS:
            raise ValueError(f'behaviour must be one of {BEHAVIOURS} or empty, '
                             f'got {self.behaviour!r}')
        unknown = [t for t in self.tasks if t not in TASK_GOALS]
        if not self.tasks or unknown:
            raise ValueError(f'tasks must be Meta-World v3 task ids, got unknown {unknown} '
                             f'in {list(self.tasks)}')

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data['tasks'] = list(self.tasks)
        return data


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything that determines one episode (so any worker reproduces it exactly)."""

    task: str
    index: int
    config: SynthConfig = field(repr=False)

    @property
    def episode_id(self) -> str:
        return f'{self.task}-{self.index:04d}'

    @property
    def seed(self) -> int:
        return self.config.seed * 1_000_003 + _TASK_ORDER[self.task] * 10_007 + self.index

    @property
    def behaviour(self) -> str:
        return self.config.behaviour or behaviour_for_episode(self.index)

    @property
    def split(self) -> str:
        block, position = divmod(self.index, _CYCLE_LENGTH)
        return 'val' if position in self._val_positions(block) else 'train'

    @property
    def variation(self) -> int:
        """The episode's Meta-World variation: its split's pool, in turn (``variation_pools``)."""
        val_pool, train_pool = variation_pools(self.task, self.config.seed)
        block, position = divmod(self.index, _CYCLE_LENGTH)
        earlier_val = (block * self.config.val_per_block
                       + sum(p < position for p in self._val_positions(block)))
        if self.split == 'val':
            return val_pool[earlier_val % len(val_pool)]
        return train_pool[(self.index - earlier_val) % len(train_pool)]

    def _val_positions(self, block: int) -> set[int]:
        # Spread over the cycle and shifted by block and task: the six validation episodes of
        # a task's 30 are six behaviours, and the task after it validates others (reversal
        # among them), where an unshifted rotation never validated a reversal.
        count = self.config.val_per_block
        spacing = _CYCLE_LENGTH // max(1, count)
        shift = block + _TASK_ORDER[self.task] % spacing
        return {(shift + k * spacing) % _CYCLE_LENGTH for k in range(count)}


def variation_pools(task: str, seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The task's variations of validation episodes and of training ones, disjoint.

    A permutation of the ``VARIATIONS`` drawn from the dataset's seed and the task: the first
    ``VAL_VARIATIONS`` validate, the rest train. Other generators of training episodes in a
    task's scene (object motion) take theirs from the training pool too.
    """
    order = np.random.default_rng([seed, _TASK_ORDER[task], VARIATIONS]).permutation(VARIATIONS)
    return (tuple(int(v) for v in order[:VAL_VARIATIONS]),
            tuple(int(v) for v in order[VAL_VARIATIONS:]))


def episode_specs(config: SynthConfig) -> list[EpisodeSpec]:
    """Every episode of the dataset, task by task."""
    return [EpisodeSpec(task, index, config) for task in config.tasks
            for index in range(config.episodes_per_task)]


def rollout(robot: Any, spec: EpisodeSpec, randomizer: Any = None
            ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run one episode on ``robot`` (a ``MetaWorldRobot`` of ``spec.task``).

    ``randomizer`` (a ``sim.randomization.SceneRandomizer`` of the robot's model) draws the
    episode's look from its own seed before the reset renders the first frame.

    Returns:
        (metadata, arrays): the labels-file fields and the stacked per-frame and per-step
        arrays (``to_episode`` makes a labelled episode of them).
    """
    config = spec.config
    rng = np.random.default_rng(spec.seed)
    if randomizer is not None:
        # A stream of its own: the behaviours draw the same numbers with or without it.
        randomizer.apply(np.random.default_rng([spec.seed, 1]))
    observation = robot.reset(seed=spec.seed, variation=spec.variation)
    plan = draw_plan(spec.behaviour, rng, observation.state[4:7])
    controller = PerturbedExpert(plan, rng, observation.state)
    frames = [_frame(observation, 0, 0.0, False)]
    step_progress, step_success, actions = [0.0], [False], []
    first_success = None
    for step in range(1, config.max_steps + 1):
        action = controller.act(observation.state, step_progress[-1], robot.expert_action)
        done_soon = _ends_after(step, first_success, controller, config)
        render = step % config.frame_stride == 0 or done_soon
        observation, info = robot.step(action, render=render)
        if config.brake and controller.stopping:
            robot.stop_objects()
        actions.append(np.asarray(action, dtype=np.float32))
        step_progress.append(float(info.progress))
        step_success.append(bool(info.success))
        if info.success and first_success is None:
            first_success = step
        ended = _ends_after(step, first_success, controller, config)
        if observation.external is not None:
            frames.append(_frame(observation, step, info.progress, info.success))
        if ended:
            break
    arrays = _stack(frames, step_progress, step_success, actions)
    if not config.robot_masks:  # a mask is black wherever the robot is out of view
        _check_frames(spec, arrays)
    return _metadata(spec, plan, robot, arrays), arrays


def _ends_after(step: int, first_success: int | None, controller: PerturbedExpert,
                config: SynthConfig) -> bool:
    if step >= config.max_steps or controller.finished:
        return True
    return first_success is not None and step >= first_success + config.success_hold_steps


def _frame(observation: Any, step: int, progress: float, success: bool) -> dict[str, Any]:
    return {'external': observation.external, 'wrist': observation.wrist, 'frame_steps': step,
            'progress': progress, 'success': success, 'state': observation.state,
            'ee_position': observation.ee_position,
            'gripper_opening': observation.gripper_opening,
            'joint_positions': observation.joint_positions}


def _stack(frames: list[dict[str, Any]], step_progress: list[float], step_success: list[bool],
           actions: list[np.ndarray]) -> dict[str, np.ndarray]:
    dtypes = {'external': np.uint8, 'wrist': np.uint8, 'frame_steps': np.int32,
              'success': np.bool_}
    arrays = {name: np.stack([np.asarray(f[name]) for f in frames]).astype(
        dtypes.get(name, np.float32)) for name in ('external', 'wrist', *FRAME_ARRAYS)}
    arrays['step_progress'] = np.asarray(step_progress, dtype=np.float32)
    arrays['step_success'] = np.asarray(step_success, dtype=np.bool_)
    arrays['actions'] = np.asarray(actions, dtype=np.float32).reshape(-1, 4)
    return arrays


def _check_frames(spec: EpisodeSpec, arrays: dict[str, np.ndarray]) -> None:
    for view in ('external', 'wrist'):
        means = arrays[view].reshape(len(arrays[view]), -1).mean(axis=1)
        if means.min() < _MIN_FRAME_MEAN:
            raise RuntimeError(f'episode {spec.episode_id}: a black {view} frame (mean '
                               f'{means.min():.1f}); the GL context was lost')


def _metadata(spec: EpisodeSpec, plan: BehaviourPlan, robot: Any,
              arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    progress = arrays['step_progress']
    success = arrays['step_success']
    return {
        'episode_id': spec.episode_id, 'task': spec.task, 'goal': TASK_GOALS[spec.task],
        'index': spec.index, 'seed': spec.seed, 'variation': robot.variation,
        'behaviour': spec.behaviour, 'plan': asdict(plan), 'split': spec.split,
        'source': 'sole-r1 synth (simulator ground truth)',
        'num_steps': int(len(progress) - 1), 'num_frames': int(len(arrays['external'])),
        'image_size': spec.config.image_size, 'frame_stride': spec.config.frame_stride,
        'cameras': [spec.config.external_camera, spec.config.wrist_camera],
        'scene_randomization': spec.config.scene_randomization,
        'camera_orbit_deg': spec.config.camera_orbit_deg,
        'success': bool(success.any()), 'final_success': bool(success[-1]),
        'first_success_step': int(np.argmax(success)) if success.any() else None,
        'max_progress': float(progress.max()), 'final_progress': float(progress[-1]),
    }


def to_episode(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> LabelledEpisode:
    """Turn a rollout into a labelled episode.

    Simulator progress as labels, the goal's paraphrases, and every other array (state,
    actions, ...) plus the approach fraction as extras.
    """
    task = meta['task']
    states = arrays['state']
    extras = {k: v for k, v in arrays.items() if k not in ('external', 'wrist', 'progress')}
    # How far the hand has closed in on the object: compact training credits it (the
    # simulator's progress stays 0 until the object moves).
    extras['approach'] = np.array([approach_fraction(s, states[0]) for s in states],
                                  dtype=np.float32)
    rest = {k: v for k, v in meta.items() if k not in (
        'episode_id', 'goal', 'task', 'behaviour', 'split', 'success')}
    rest['ever_success'] = meta['success']
    return LabelledEpisode(
        episode_id=meta['episode_id'], goal=meta['goal'],
        progress=[float(v) for v in arrays['progress']], external=arrays['external'],
        wrist=arrays['wrist'], task=task, success=meta['final_success'],
        behaviour=meta['behaviour'], split=meta['split'],
        paraphrases=TRAIN_PARAPHRASES.get(task, ()), extras=extras,
        meta={**rest, 'eval_paraphrases': list(EVAL_PARAPHRASES.get(task, ()))})


# ------------------------------------------------------------------ workers
class _Worker:
    """A process-local robot cache: one env at a time, closed before the next is built."""

    def __init__(self) -> None:
        self._robot: Any = None
        self._key: tuple | None = None
        self.randomizer: Any = None
        '''The current robot's ``SceneRandomizer``; None when the dataset has none.'''

    def robot_for(self, spec: EpisodeSpec) -> Any:
        from sole_r1_ros.sim import MetaWorldRobot, SimConfig

        config = spec.config
        key = (spec.task, config.image_size, config.external_camera, config.wrist_camera,
               config.max_steps)
        if key != self._key:
            self.close()
            # The robot's seed picks Meta-World's 50 variations of the task, so it is the
            # dataset's, not that of whichever episode reached this worker first: each
            # episode's own seed then chooses among the same 50 (``rollout`` resets with it),
            # whatever the scheduling of episodes over workers.
            self._robot = MetaWorldRobot(SimConfig(
                task=spec.task, image_width=config.image_size, image_height=config.image_size,
                external_camera=config.external_camera, wrist_camera=config.wrist_camera,
                max_episode_steps=config.max_steps, seed=config.seed),
                robot_masks=config.robot_masks)
            self._key = key
            if config.scene_randomization > 0 or config.camera_orbit_deg > 0:
                from sole_r1_ros.sim.randomization import SceneRandomization, SceneRandomizer

                self.randomizer = SceneRandomizer(
                    self._robot.model, [config.external_camera, config.wrist_camera],
                    strength=config.scene_randomization,
                    settings=SceneRandomization(camera_orbit_deg=config.camera_orbit_deg))
        return self._robot

    def close(self) -> None:
        if self._robot is not None:
            self._robot.close()
            self._robot = None
            self._key = None
            self.randomizer = None
            gc.collect()


_WORKER: _Worker | None = None


def _run_chunk(job: tuple[str, list[EpisodeSpec]]) -> list[str]:
    """Worker entry: generate a chunk of episodes of one task, return their ids."""
    global _WORKER
    import warnings

    warnings.filterwarnings('ignore', message='Constant\\(s\\) may be too high')
    if _WORKER is None:
        _WORKER = _Worker()
    root, specs = job
    done = []
    for spec in specs:
        robot = _WORKER.robot_for(spec)
        meta, arrays = rollout(robot, spec, _WORKER.randomizer)
        labelled_folder.write_episode(root, to_episode(meta, arrays))
        done.append(spec.episode_id)
    return done


def _chunks(root: str, specs: list[EpisodeSpec], size: int) -> Iterator[tuple[str, list]]:
    for task in dict.fromkeys(s.task for s in specs):
        of_task = [s for s in specs if s.task == task]
        for start in range(0, len(of_task), size):
            yield root, of_task[start:start + size]


def generate(config: SynthConfig, root: str, workers: int = 1,
             on_done: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Generate every unfinished episode of ``config`` under ``root``.

    Returns:
        The labels of every episode in the folder (``labelled.folder.list_episodes``).

    Args:
        workers: processes (each with its own env and GL context); 1 runs in this process.
        on_done: called with the number of episodes just finished (progress bars).

    Raises:
        ValueError: ``root`` holds a dataset made with a different config.
    """
    os.makedirs(root, exist_ok=True)
    _check_same_config(root, config)
    specs = episode_specs(config)
    todo = [s for s in specs if not labelled_folder.is_finished(root, s.episode_id)]
    logger.info('synth: %d of %d episodes to generate in %s with %d workers', len(todo),
                len(specs), root, workers)
    if on_done is not None and len(todo) < len(specs):
        on_done(len(specs) - len(todo))
    jobs = list(_chunks(root, todo, size=max(1, min(5, len(todo) // max(1, 2 * workers)))))
    if workers <= 1:
        for job in jobs:
            finished = _run_chunk(job)
            if on_done is not None:
                on_done(len(finished))
        _close_local_worker()
    elif jobs:
        context = multiprocessing.get_context('spawn')
        with context.Pool(processes=workers, maxtasksperchild=None) as pool:
            for finished in pool.imap_unordered(_run_chunk, jobs):
                if on_done is not None:
                    on_done(len(finished))
    return labelled_folder.list_episodes(root)


def _close_local_worker() -> None:
    global _WORKER
    if _WORKER is not None:
        _WORKER.close()
        _WORKER = None


def _check_same_config(root: str, config: SynthConfig) -> None:
    """Write ``synth.json``, or refuse a folder made with other settings.

    Raises:
        ValueError: ``root`` holds another format or other settings.
    """
    path = os.path.join(root, HEADER)
    new = config.to_json()
    if os.path.isfile(path):
        with open(path, encoding='utf-8') as stream:
            header = json.load(stream)
        if header.get('format') != FORMAT_NAME or header.get('version') != FORMAT_VERSION:
            raise ValueError(f'{path}: not a {FORMAT_NAME} v{FORMAT_VERSION} dataset (version '
                             f'{header.get("version")}: an older generator chose other '
                             'variations and splits); remove it or use another --out')
        old = header['config']
        # More tasks or episodes extend a dataset; anything else would mix incompatible
        # episodes.
        defaults = SynthConfig(tasks=config.tasks).to_json()  # fields older files lack
        fixed = [k for k in new if k not in ('tasks', 'episodes_per_task')
                 and old.get(k, defaults[k]) != new[k]]
        if fixed:
            raise ValueError(f'{root} holds a dataset made with other settings '
                             f'{ {k: old.get(k) for k in fixed} }; use another --out')
        new = {**new, 'tasks': sorted(set(old['tasks']) | set(new['tasks'])),
               'episodes_per_task': max(old['episodes_per_task'], new['episodes_per_task'])}
    elif os.path.isdir(os.path.join(root, labelled_folder.EPISODES_DIR)):
        raise ValueError(f'{root} already holds episodes that sole-r1 synth did not make; '
                         'use another --out')
    with open(path, 'w', encoding='utf-8') as stream:
        json.dump({'format': FORMAT_NAME, 'version': FORMAT_VERSION, 'config': new}, stream,
                  indent=1)
