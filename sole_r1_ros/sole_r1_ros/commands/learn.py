"""``sole-r1 learn``: the whole loop for machines without ``ros2 launch``.

The same nodes and YAML as ``sim_learn.launch.py`` / ``real_robot_learn.launch.py``, one process
per node (``bringup``); a progress bar with a live summary; a run directory with checkpoints, a
bag, learning curves, evaluation results, a video of the final policy and ``summary.json``.
Everything is checked before anything starts. SIGINT (Ctrl-C) or SIGTERM: the robot holds, a
checkpoint is written, the bag is closed, and the command exits 130 / 143 within about ten
seconds; a second Ctrl-C skips only the plots.
"""
import argparse
from dataclasses import dataclass, field
import hashlib
import json
import math
import os
import re
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import threading
import time

_STARTUP_TIMEOUT_S = 240.0   # at least; an openai reward's health check may wait longer
# A node reports every second: silence this long is said, and the learner's ends the run.
_SILENT_SAID_S, _SILENT_END_S = 15.0, 120.0
_DISCOVERY_S = 1.0   # for another run's nodes to show in the graph's names
_ALIVE_S = 3.0   # for such a node's report on /diagnostics (one a second) once named
_HOLDING_SAID_AFTER_S = 10.0   # a reset or a pause holds for a few seconds; this is more


def check_namespace(namespace: str) -> str:
    """Refuse a ROS namespace rcl would refuse, before anything is written; the namespace.

    It raised a traceback deep in the first node made, after the run directory had its
    params file: the corrected rerun was then refused as a run stopped before its first
    checkpoint. It is returned without a leading or trailing '/', which every node takes
    ('arm1/' passed the check, then failed the same way).

    Raises:
        ValueError: not a valid namespace.
    """
    if not namespace.strip('/'):
        return ''
    from rclpy.exceptions import InvalidNamespaceException
    from rclpy.validate_namespace import validate_namespace
    try:
        validate_namespace('/' + namespace.strip('/'))
    except InvalidNamespaceException as exc:
        raise ValueError(f'--namespace {namespace!r} is not a ROS namespace: letters, digits, '
                         "'_' and '/' only, no segment starting with a digit") from exc
    return namespace.strip('/')


_RUN_DIR = 'runs/learn'
'''The run folder of the root namespace, and the base of the others' (``default_run_dir``).'''


def default_run_dir(namespace: str) -> str:
    """``runs/learn``, or ``runs/learn-arm1`` in namespace 'arm1': each arm its own run."""
    from sole_r1_ros.launch_utils import run_dir_of
    return run_dir_of(_RUN_DIR, namespace)


@dataclass(frozen=True)
class LearnRequest:
    """One ``sole-r1 learn`` (or ``demo``) run; the CLI flags, checked."""

    goal: str
    run_dir: Path
    sim_task: str | None = 'drawer-close-v3'
    '''Meta-World task of a simulated robot; None: a real robot on this ROS graph.'''
    params_file: Path | None = None
    reward: str | None = None
    model: str | None = None
    steps: int = 20000
    minutes: float = 0.0
    resume: bool = False
    fresh: bool = False
    run_dir_flag: str = '--run-dir'
    '''How the command names the run directory, for its messages (``sole-r1 demo``: --out).'''
    eval_episodes: int = 10
    baseline_episodes: int = 0
    '''Deterministic episodes of the untrained policy before learning (a fresh run only): what
    learning must beat.'''
    record: bool = True
    namespace: str = ''
    overrides: tuple[str, ...] = field(default_factory=tuple)
    '''NODE.PARAM=VALUE strings.'''
    remaps: tuple[str, ...] = field(default_factory=tuple)
    '''FROM:=TO topic remappings, given to every node (as ros2 launch's remappings).'''

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f'--steps must be >= 1, got {self.steps}')
        if not self.minutes >= 0:   # also NaN
            raise ValueError(f'--minutes must be >= 0, got {self.minutes}')
        for flag, value in (('--eval-episodes', self.eval_episodes),
                            ('--baseline-episodes', self.baseline_episodes)):
            if value < 0:
                raise ValueError(f'{flag} must be >= 0, got {value}')
        object.__setattr__(self, 'namespace', check_namespace(self.namespace))
        for remap in self.remaps:
            source, _, target = remap.partition(':=')
            if not source.strip() or not target.strip() or ' ' in remap:
                raise ValueError(f'--remap takes FROM:=TO, e.g. camera/external/image_raw:='
                                 f'/cam_ext/color/image_raw; got {remap!r}')

    def node_remaps(self) -> tuple[str, ...]:
        """``remaps``, and each renamed camera's camera_info beside its image, as launch does.

        ``camera/external/image_raw:=/cam/color/image_raw`` left the self-filter and the
        recorder on ``camera/external/camera_info``, which no camera published: no masks, no
        calibration in the bag. A camera_info remap given is kept.
        """
        given = {remap.partition(':=')[0].strip('/') for remap in self.remaps}
        derived = []
        for remap in self.remaps:
            source, _, target = remap.partition(':=')
            match = re.fullmatch(r'camera/(\w+)/image_raw', source.strip('/'))
            info = f'camera/{match.group(1)}/camera_info' if match else None
            if info and info not in given and '/' in target.strip('/'):
                derived.append(f'{info}:={target.rsplit("/", 1)[0]}/camera_info')
        return tuple(self.remaps) + tuple(derived)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--goal', required=True, help='the task in words')
    where = parser.add_mutually_exclusive_group()
    where.add_argument('--sim', metavar='TASK', help='Meta-World task id (default '
                       'drawer-close-v3 unless --real)')
    where.add_argument('--real', action='store_true', help='a real robot on this ROS graph')
    parser.add_argument('--reward', help='reward backend: compact (CPU), transformers '
                        '(SOLE-R1-8B), openai (vllm serve), oracle (simulator ground truth, '
                        "evaluation only); default: the params file's reward_node.backend "
                        '(compact for --sim, transformers for --real)')
    parser.add_argument('--model', help='checkpoint folder / served model name; with --reward '
                        'compact, a .pt file of sole-r1 train compact')
    parser.add_argument('--steps', type=int, default=20000, help='environment steps to learn')
    parser.add_argument('--minutes', type=float, default=0.0,
                        help='stop learning after this long even if --steps is not reached '
                        '(0: no time limit)')
    parser.add_argument('--run-dir', help='everything of the run goes here (default: '
                        'runs/learn, or runs/learn-NS with --namespace NS: two arms side by '
                        'side, each its own)')
    parser.add_argument('--resume', action='store_true', help='continue the run in --run-dir')
    parser.add_argument('--fresh', action='store_true', help='start a new run in --run-dir even '
                        'if it holds one (the old one moves to --run-dir/previous-<time>/, '
                        'never deleted)')
    parser.add_argument('--params-file', help='YAML (default: config/sim_learn.yaml or '
                        'config/real_robot_learn.yaml)')
    parser.add_argument('--eval-episodes', type=int, default=10,
                        help='deterministic episodes at the end (0: none)')
    parser.add_argument('--baseline-episodes', type=int, default=0,
                        help='deterministic episodes of the untrained policy first, the number '
                        'learning must beat (0: none)')
    parser.add_argument('--no-record', action='store_true', help='do not write a bag')
    parser.add_argument('--namespace', default='')
    # 'extend': a second --set added to the first; it replaced them (a halved speed limit
    # given before a --remap was dropped without a word)
    parser.add_argument('--set', nargs='+', action='extend', default=[],
                        metavar='NODE.PARAM=VALUE', help='override parameters, e.g. '
                        'learner_node.episode_length=50 (repeatable)')
    parser.add_argument('--remap', action='append', default=[], metavar='FROM:=TO',
                        help="a topic of the nodes to the robot's own, e.g. "
                        'camera/external/image_raw:=/cam_ext/color/image_raw (repeatable)')


def run(args: argparse.Namespace) -> int:
    run_dir = args.run_dir or default_run_dir(args.namespace)
    if not args.run_dir:
        from sole_r1_ros.launch_utils import moved_default_run
        if moved := moved_default_run(_RUN_DIR, run_dir):
            print(f'sole-r1 learn: {moved}', file=sys.stderr, flush=True)
    return learn(LearnRequest(
        goal=args.goal, run_dir=Path(run_dir),
        sim_task=None if args.real else (args.sim or 'drawer-close-v3'),
        params_file=Path(args.params_file) if args.params_file else None, reward=args.reward,
        model=args.model, steps=args.steps, minutes=args.minutes, resume=args.resume,
        fresh=args.fresh, eval_episodes=args.eval_episodes,
        baseline_episodes=args.baseline_episodes, record=not args.no_record,
        namespace=args.namespace, overrides=tuple(args.set), remaps=tuple(args.remap)))


def learn(request: LearnRequest) -> int:
    """Run one learning session; the exit code (0, 2 bad input, 1 a node failed, 130, 143).

    The run directory is this process's from before anything looks into it until the end:
    ``--fresh`` beside a run still going moved that run's files away under it, and with another
    ROS domain two learners wrote, and deleted, each other's checkpoints in one folder.
    """
    from sole_r1_ros.file_lock import release
    from sole_r1_ros.reward import protocol

    protocol.normalize_goal(request.goal)
    if request.fresh and request.resume:
        raise ValueError('--fresh starts over and --resume continues: give one')
    path, held = _lock_run_dir(request)
    try:
        return _learn_in_locked_dir(request)
    finally:
        release(path, held)


def _lock_run_dir(request: LearnRequest):
    """(lock file, this process's lock of the run directory); ValueError names who has it."""
    from sole_r1_ros.file_lock import try_lock
    path = _machine_lock_path('dir', os.path.realpath(request.run_dir))
    held = try_lock(path, f'pid {os.getpid()}')
    if isinstance(held, str):
        raise ValueError(f'{request.run_dir} is in use by another sole-r1 learn or demo '
                         f'({held}): let it finish (or stop it) first, or choose another '
                         f'{request.run_dir_flag}')
    return path, held


def _machine_lock_path(kind: str, what: str) -> Path:
    """This user's lock file of ``what`` (a run directory, a domain and namespace) in /tmp."""
    key = hashlib.sha1(what.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f'sole_r1_ros-{os.getuid()}-{kind}-{key}.lock'


def _learn_in_locked_dir(request: LearnRequest) -> int:
    from sole_r1_ros.bringup import (
        bag_reserve_gb, check_paced, check_params, check_real_limits, command_topics,
        write_params_file)

    resume = _check_run_dir(request)
    params = check_params(_params(request, resume))
    if not request.sim_task:
        check_real_limits(params.get('learner_node', {}))
        check_paced(params.get('learner_node', {}))
        if _reward_of(params.get('reward_node', {})).get('model') == 'shipped':
            print('sole-r1 learn: warning: the reward is the shipped compact model, trained on '
                  "simulated Meta-World scenes only: a real robot's pictures are not what it "
                  'knows, and its answers may mean nothing there. Distil it from SOLE-R1 on '
                  'your own recordings (--model DISTILLED.pt) or use SOLE-R1 (README: "The '
                  'compact progress model, and when to use SOLE-R1 instead")', file=sys.stderr,
                  flush=True)
    run_dir = request.run_dir
    if resume:
        _check_same_task(run_dir, params, request.run_dir_flag)
    session = 1 + len(list(run_dir.glob('params-*.yaml')))
    params_file = run_dir / f'params-{session:03d}.yaml'
    write_params_file(params_file, params)
    nodes = [n for n in ('sim_robot_node', 'robot_mask_node', 'camera_node', 'reward_node',
                         'learner_node')
             if n in params or n not in ('sim_robot_node', 'robot_mask_node')]
    if request.record:
        nodes.append('recorder_node')
        # the disk the learner's checkpoints will need, unless the file or --set says
        reserve = {'min_free_gb': bag_reserve_gb(params['learner_node'])}
        params['recorder_node'] = {**reserve, **params.get('recorder_node', {}),
                                   'bag_path': str(run_dir / f'bag-{session:03d}'),
                                   'extra_topics': command_topics(params)}
        write_params_file(params_file, params)
    return _Session(request, run_dir, session, params_file, nodes,
                    _policy_input(params['learner_node']),
                    _stop_budget_s(params['learner_node']),
                    _reward_of(params.get('reward_node', {})),
                    _utd_ratio(params['learner_node']),
                    _startup_s(params.get('reward_node', {})),
                    _video_fps(params)).run()


def _video_fps(params: dict) -> float | None:
    """The final video's frame rate: a simulator's own; None, the camera's stamps say.

    A simulator's stamps are wall time, and lock-step runs it faster than that: its frames
    stand for ``rate_hz`` / ``camera_every_n_ticks``. At a fixed 10 fps the demo's 40 Hz
    simulation played at a quarter of its speed.
    """
    if 'sim_robot_node' not in params:
        return None
    from sole_r1_ros.nodes.sim_robot_node import SimRobotNodeConfig
    config = _config_of(SimRobotNodeConfig, params['sim_robot_node'])
    return config.rate_hz / config.camera_every_n_ticks


def _config_of(cls: type, section: dict):
    """The ``cls`` config of a node's parameters, the keys of its other sections left out."""
    from sole_r1_ros.configuration import from_mapping
    return from_mapping(cls, {k: v for k, v in section.items()
                              if k in cls.__dataclass_fields__})


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a kill or a power cut leaves the old file or the new.

    Synced before the rename and the folder after it, as the checkpoints are: renamed
    unsynced, a power cut could leave summary.json empty.
    """
    from sole_r1_ros.rl.checkpoint import fsync_dir, write_synced_text
    partial = path.with_name(f'.{path.name}.partial')
    write_synced_text(partial, text)
    os.replace(partial, path)
    fsync_dir(path.parent)


def _reward_of(reward_params: dict) -> dict:
    """What paid the learner, for summary.json: an oracle run must not read as a video reward."""
    from sole_r1_ros.reward.config import RewardConfig
    chosen = {name: reward_params.get(name, getattr(RewardConfig, name))
              for name in ('backend', 'model', 'erased_model', 'pair_join')}
    if not chosen['erased_model']:
        del chosen['erased_model'], chosen['pair_join']
    if chosen['backend'] == 'compact' and not chosen['model']:
        chosen['model'] = 'shipped'
    return chosen


def _stop_budget_s(learner: dict) -> float:
    """The learner's ``stop_budget_s``: the nodes are killed only after it (and 1.5 s more)."""
    from dataclasses import fields

    from sole_r1_ros.nodes.learner_config import LearnerNodeConfig
    default = {f.name: f.default for f in fields(LearnerNodeConfig)}['stop_budget_s']
    return float(learner.get('stop_budget_s', default))


def _check_run_dir(request: LearnRequest) -> bool:
    """Check the run directory before any work; True when the learner should resume.

    Raises:
        ValueError: not a writable directory, a run there without --resume, --resume without a
            run to resume (or with only unreadable checkpoints) without --fresh.
    """
    from sole_r1_ros.rl.checkpoint import (
        CheckpointError, list_checkpoints, verify_checkpoint, verify_resumable)
    run_dir = request.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f'{request.run_dir_flag} {run_dir} is a file, not a directory')
    if request.resume and not run_dir.exists():
        raise ValueError(f'--resume: the run directory {run_dir} does not exist (leave out '
                         '--resume to start a new run there)')
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as exc:
        raise ValueError(f'{request.run_dir_flag} {run_dir} is not writable: '
                         f'{exc.strerror}') from exc
    _check_no_learner_in(run_dir)
    checkpoints = list_checkpoints(run_dir / 'checkpoints')
    if request.fresh:
        _move_previous_run(run_dir)
        return False
    if not request.resume:
        if checkpoints:
            raise ValueError(f'{run_dir} already holds a run: pass --resume to continue it, '
                             f'--fresh to start over there, or choose a new '
                             f'{request.run_dir_flag}')
        if any(run_dir.glob('params-*.yaml')) or (run_dir / 'episodes.jsonl').exists():
            raise ValueError(f'{run_dir} holds a run stopped before its first checkpoint (its '
                             'episodes and bag would mix with this one): pass --fresh to move '
                             f'it aside and start over there, or choose a new '
                             f'{request.run_dir_flag}')
        return False
    if not checkpoints:
        raise ValueError(f'--resume: {run_dir} has no checkpoint to resume from; pass --fresh '
                         'to start a new run there')
    problems = []
    for path in checkpoints:
        try:
            verify_checkpoint(path)
            return True
        except CheckpointError as exc:
            problems.append(f'{path.name}: {exc}')
    for path in checkpoints:   # the learner loads the newest of these without the damaged
        try:
            damaged = verify_resumable(path)
        except CheckpointError:
            continue
        print(f'sole-r1 learn: warning: no checkpoint in {run_dir} verifies in full; '
              f'resuming from {path.name} without the frames of {len(damaged)} damaged '
              f'image segments ({"; ".join(damaged.values())})', file=sys.stderr, flush=True)
        return True
    raise ValueError(f'--resume: every checkpoint in {run_dir} is unreadable '
                     f'({"; ".join(problems)}); refusing to start from scratch. Pass --fresh to '
                     'start over (the unreadable checkpoints are kept)')


def _check_same_task(run_dir: Path, params: dict, run_dir_flag: str = '--run-dir') -> None:
    """Refuse to resume a run of another goal or simulated task.

    The policy and the replay's rewards belong to the goal they were learnt for; continuing
    them under another would mix two tasks' rewards in one buffer.

    Raises:
        ValueError: the newest ``params-*.yaml`` of the run names another goal or task.
    """
    from sole_r1_ros.bringup import load_params
    sessions = sorted(run_dir.glob('params-*.yaml'))
    if not sessions:
        return
    before = load_params(sessions[-1])
    for node, name, what in (('reward_node', 'goal', 'the goal'),
                             ('sim_robot_node', 'task', 'the task'), *_MEANING):
        old, new = before.get(node, {}).get(name), params.get(node, {}).get(name)
        if old is not None and new is not None and str(old).strip() != str(new).strip():
            raise ValueError(f'--resume: {run_dir} learnt with {what} {old!r} '
                             f'({sessions[-1].name}), not {new!r}: pass --fresh to start over '
                             f'there, or choose a new {run_dir_flag}')


_MEANING = tuple(('learner_node', name, f'learner_node.{name}') for name in (
    'action_layout', 'command.rotation_actions', 'joint_names', 'observation', 'use_ee_pose',
    'views')) + (('reward_node', 'backend', 'the reward backend'),)
'''What a resumed run must keep: the same sizes could mean other actions (joint offsets
read as end-effector deltas), other inputs, or rewards of another scale in one replay.'''


def _check_no_learner_in(run_dir: Path) -> None:
    """Refuse a run directory whose checkpoints a learner still holds (its lock).

    A learner started by ros2 launch, or one still stopping after its sole-r1 learn was
    killed, holds no lock of sole-r1 learn's: --fresh moved its run away under it, and the
    two then wrote, and rotated away, each other's checkpoints in one folder.

    Raises:
        ValueError: a learner holds the folder's checkpoint lock.
    """
    from sole_r1_ros.rl.checkpoint import CheckpointError, lock_directory
    if not (run_dir / 'checkpoints').is_dir():
        return
    try:
        lock_directory(run_dir / 'checkpoints').close()
    except CheckpointError as exc:
        raise ValueError(f'{exc}. A learner outside sole-r1 learn (ros2 launch), or one still '
                         'stopping, writes there') from exc


def _move_previous_run(run_dir: Path) -> None:
    """Move what a run left in ``run_dir`` into ``run_dir/previous-<time>/`` (nothing deleted).

    A new run would otherwise resume nothing yet append to the old run's episodes, metrics
    and curves, and number its bags after the old ones.
    """
    old = [p for p in run_dir.iterdir() if not p.name.startswith('previous-')]
    if not old:
        return
    aside = run_dir / time.strftime('previous-%Y%m%d-%H%M%S')
    aside.mkdir()
    for path in old:
        path.rename(aside / path.name)
    print(f'sole-r1 learn: --fresh: the previous run in {run_dir} moved to {aside}', flush=True)


def _params(request: LearnRequest, resume: bool) -> dict:
    """The nodes' parameters: the YAML, then what the request sets, then --set."""
    import yaml

    from sole_r1_ros.bringup import config_dir, load_params
    default = 'sim_learn.yaml' if request.sim_task else 'real_robot_learn.yaml'
    given = request.params_file
    if given is not None and not given.is_file() and (config_dir() / given).is_file():
        given = config_dir() / given   # a package config's name, as record and launch take it
    params = load_params(given or config_dir() / default, also=(
        'camera_node', 'reward_node', 'learner_node', 'recorder_node'),   # those that always run
        namespace=request.namespace, root_anywhere=True)
    if not request.sim_task:
        params.pop('sim_robot_node', None)
    params.setdefault('reward_node', {})['goal'] = request.goal
    params.setdefault('learner_node', {}).update(run_dir=str(request.run_dir), resume=resume,
                                                 goal=request.goal)
    if request.sim_task:
        params.setdefault('sim_robot_node', {})['task'] = request.sim_task
    if request.reward:
        params['reward_node']['backend'] = request.reward
        if request.reward == 'oracle':
            params.setdefault('camera_node', {})['use_ground_truth'] = True
    if request.model is not None:
        params['reward_node']['model'] = request.model
    for item in request.overrides:
        key, equals, value = item.partition('=')
        node, _, name = key.partition('.')
        if not node or not name or not equals:
            raise ValueError(f'--set wants NODE.PARAM=VALUE, got {item!r}')
        params.setdefault(node, {})[name] = yaml.safe_load(value)
    if params.get('robot_mask_node', {}).get('robot_model') == SIMULATED_ROBOT:
        _calibrate_simulated_self_filter(params, request.run_dir)
    _match_robot_erasing(params, {item.partition('=')[0] for item in request.overrides})
    return params


SIMULATED_ROBOT = 'simulator'
'''``robot_mask_node.robot_model`` value that means the simulated Sawyer, calibrated.'''


def _calibrate_simulated_self_filter(params: dict, run_dir: Path) -> None:
    """The self-filter of the simulated robot: its model file and its camera's calibration.

    What a real robot's YAML gives ``robot_mask_node`` by hand (its URDF, a hand-eye
    calibration), taken from the simulator once here; at run time the node knows only the
    joint states and the camera info, as on a real robot.
    """
    import dataclasses

    from sole_r1_ros.sim import MetaWorldRobot, SimConfig
    from sole_r1_ros.sim.metaworld_robot import write_robot_model
    if 'sim_robot_node' not in params:
        raise ValueError(f'robot_mask_node.robot_model={SIMULATED_ROBOT} is the simulated '
                         'robot; a real one gives its URDF or MJCF file')
    config = _config_of(SimConfig, params['sim_robot_node'])
    robot = MetaWorldRobot(dataclasses.replace(config, render=False))
    try:
        camera, link = robot.camera_calibrations()[0]
    finally:
        robot.close()
    params['robot_mask_node'].update(
        robot_model=write_robot_model(str(run_dir / 'robot_model.xml')), camera_link=link,
        camera_position=list(camera.position), camera_orientation=list(camera.orientation))
    if params['robot_mask_node'].get('use_depth'):   # the simulated RGB-D camera's depth
        params['sim_robot_node']['publish_depth'] = True


def _match_robot_erasing(params: dict, overridden: set[str] = frozenset()) -> None:
    """Erase the robot from the frames exactly when the reward model was trained so.

    A compact checkpoint trained on erased frames (``sole-r1 synth --erase-robot-of``) needs a
    camera node that erases and the robot's masks to erase with: in simulation both are
    switched on here; a real robot must publish its self-filter's masks and say so. Its
    queries then show the external view only (unless ``camera_node.use_wrist`` is set on the
    command line): where the wrist camera looks is the arm's pose, and a learner rewarded on
    it posed the gripper instead of closing the door (data README, "At run time"). A compact
    pair (``reward_node.erased_model``) reads the pictures and, beside them, the external
    view erased: the camera node erases with ``erased_beside``.

    Raises:
        ValueError: erasing set against what the model reads, or a real robot whose
            reward model reads erased frames without ``camera_node.erase_robot``.
    """
    reward = params.get('reward_node', {})
    camera = params.setdefault('camera_node', {})
    compact = reward.get('backend', 'compact') == 'compact'
    if compact and reward.get('erased_model'):
        _erase_beside_pictures(params, camera)   # the backend checks its files' kinds
        return
    if camera.get('erased_beside'):
        raise ValueError('camera_node.erased_beside sends erased frames for a compact pair, '
                         'and reward_node.erased_model is not set')
    erased = False
    if compact:
        erased = _reads_erased_frames(reward.get('model', ''))
    if camera.get('erase_robot', erased) != erased:
        raise ValueError(
            f"camera_node.erase_robot is {camera['erase_robot']} but the reward model reads "
            + ('frames with the robot erased' if erased else 'pictures with the robot in view'))
    if not erased:
        return
    if 'camera_node.use_wrist' not in overridden and camera.get('use_wrist', True):
        camera['use_wrist'] = False
        print('the reward model reads frames with the robot erased: its queries show the '
              'external view only (where the wrist camera looks is the arm pose; set '
              'camera_node.use_wrist=true to show it)')
    if 'robot_mask_node' in params and camera.get('use_wrist', True):
        raise ValueError("robot_mask_node draws the external camera's robot mask only: set "
                         'camera_node.use_wrist=false')
    if 'sim_robot_node' in params:
        camera['erase_robot'] = True
        print('the reward model reads frames with the robot erased: '
              f'{_switch_on_simulated_masks(params)}, and the camera node erases it')
    elif not camera.get('erase_robot'):
        raise ValueError('the reward model reads frames with the robot erased: publish the '
                         "robot's masks (camera/<view>/robot_mask, mono8, each picture's stamp) "
                         'from a self-filter (robot_mask_node) and set '
                         'camera_node.erase_robot=true')


def _switch_on_simulated_masks(params: dict) -> str:
    """Have the simulated robot's masks published; say by whom (the self-filter, else the sim)."""
    if 'robot_mask_node' in params:
        return 'robot_mask_node draws its masks from its model and the joint states'
    params['sim_robot_node']['publish_robot_masks'] = True
    return 'the simulator publishes its masks'


def _reads_erased_frames(path: str) -> bool:
    """Whether a compact checkpoint (``''``: the shipped one) was trained on erased frames.

    Read from the file's pickle without torch (``compact.checkpoint_info``). A file that
    cannot be read so is loaded in full in a child process, for the loader's own message:
    torch (1.3 s and 320 MB, 2026-12-06) would otherwise stay in this process, alive for the
    whole run, for one flag.

    Raises:
        ValueError: no such file, or not a compact checkpoint (the loader's own message).
    """
    from sole_r1_ros.compact.checkpoint_info import default_checkpoint_path, read_info
    try:
        return read_info(path or default_checkpoint_path()).get('robot_erased', False)
    except Exception:  # noqa: BLE001 (the loader, below, says what is wrong with the file)
        pass
    code = ('import sys\n'
            'from sole_r1_ros.compact.predictor import default_checkpoint_path, '
            'load_checkpoint\n'
            'try:\n'
            '    info = load_checkpoint(sys.argv[1] or default_checkpoint_path())[2]\n'
            'except Exception as exc:\n'
            "    sys.exit(f'{type(exc).__name__}: {str(exc).splitlines()[0]}')\n"
            "print(bool(info.get('robot_erased', False)))\n")
    done = subprocess.run([sys.executable, '-c', code, path], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f'exit code {done.returncode}']
        raise ValueError(f"the reward model {path or '(the shipped one)'}: {lines[-1]}")
    return done.stdout.strip() == 'True'


def _erase_beside_pictures(params: dict, camera: dict) -> None:
    """A compact pair: pictures in the queries, the erased external view beside them."""
    if camera.get('erase_robot') is False or camera.get('erased_beside') is False:
        raise ValueError('reward_node.erased_model pairs the model with one that reads the '
                         'external view with the robot erased: camera_node.erase_robot and '
                         'erased_beside must be true')
    if 'sim_robot_node' in params:
        camera['erase_robot'] = camera['erased_beside'] = True
        print(f'the reward is a compact pair: {_switch_on_simulated_masks(params)}, and the '
              'camera node sends the external view with the robot erased beside the pictures')
    elif not (camera.get('erase_robot') and camera.get('erased_beside')):
        raise ValueError('the reward is a compact pair (reward_node.erased_model): publish the '
                         "robot's mask of the external camera (camera/external/robot_mask, "
                         "mono8, each picture's stamp) from a self-filter (robot_mask_node) "
                         'and set camera_node.erase_robot=true and camera_node.erased_beside=true')


class _Session:
    """One run of the graph: start, learn, evaluate, stop, report."""

    def __init__(self, request: LearnRequest, run_dir: Path, session: int, params_file: Path,
                 nodes: list[str], policy_input: str, stop_budget_s: float = 7.0,
                 reward: dict | None = None, utd_ratio: float | None = None,
                 startup_s: float = _STARTUP_TIMEOUT_S, video_fps: float | None = None) -> None:
        self.request, self.run_dir, self.session = request, run_dir, session
        self.video_fps = video_fps
        self.utd_ratio, self.startup_s = utd_ratio, startup_s
        self.started = False   # both nodes reported: the session is a run, its summary due
        self.reward = reward or {}
        self.params_file, self.nodes, self.policy_input = params_file, nodes, policy_input
        self.stop_budget_s = stop_budget_s
        self.signals: list[int] = []
        self.hung = False   # the learner stopped reporting during an evaluation
        self.started_s = time.monotonic()
        self.report: dict = {}
        self._holding_since: float | None = None   # the learner's inputs stale since then
        self._holding_said = False
        self._said: dict[str, str] = {}   # the nodes' problems as last said ('' once gone)
        self.problems: dict[str, str] = {}   # the last of each seen: a checkpoint's, the bag's
        self._domain_lock = None   # this machine's lock of (domain, namespace), once held

    def _on_signal(self, signum, frame) -> None:
        self.signals.append(signum)
        if len(self.signals) == 1:
            self.signal_s = time.monotonic()
            print(f'\n{signal.Signals(signum).name}: stopping the robot, saving a checkpoint '
                  'and closing the bag', flush=True)
        else:
            print('\nsecond signal: skipping the plots (the hold, checkpoint and bag still '
                  'finish)', flush=True)

    def run(self) -> int:
        # SIGHUP too: a closed terminal or a dropped SSH session killed the runner at once,
        # without its summary, evaluation and curves (the nodes stopped with it).
        previous = {s: signal.signal(s, self._on_signal)
                    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            return self._run()
        finally:   # summary.json written: a second Ctrl-C during it was a KeyboardInterrupt.
            # A run stopped by a signal ignores more of them on its way out, as it said.
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_IGN if self.signals else handler)
            if self._domain_lock is not None:   # its nodes are stopped by now
                from sole_r1_ros.file_lock import release
                release(*self._domain_lock)   # one file per domain and namespace was left
                self._domain_lock = None

    def _run(self) -> int:
        import rclpy
        from rclpy.signals import SignalHandlerOptions

        from sole_r1_ros.bringup import NodeProcesses
        from sole_r1_ros.nodes.run_monitor import RunMonitorNode
        from sole_r1_ros.nodes.spin import BackgroundSpinner
        # not sys.argv: its --remap FROM:=TO words are the nodes', and rcl warned of them
        rclpy.init(args=sys.argv[:1], signal_handler_options=SignalHandlerOptions.NO)
        self.graph = NodeProcesses(self.nodes, self.params_file, self.run_dir / 'logs',
                                   self.request.namespace, self.request.node_remaps())
        # the robot's remaps too: the final video's camera was another topic under --remap
        remaps = [word for remap in self.request.node_remaps() for word in ('-r', remap)]
        self.monitor = RunMonitorNode(self.run_dir / 'episodes.jsonl',
                                      namespace=self.request.namespace,
                                      cli_args=['--ros-args', *remaps] if remaps else None)
        code, plot = 0, None
        try:
            with BackgroundSpinner(self.monitor):
                code = self._refuse_a_run_beside()
                if code:
                    return code
                try:
                    self.graph.start()
                    code = self._start_up()
                    if code == 0 and self.request.baseline_episodes and not (
                            self.monitor.counter('learner_node', 'start_env_steps')):
                        code = self._evaluate(self.request.baseline_episodes, 'baseline')
                    if code == 0:
                        code = self._learn() or self._evaluate()
                finally:
                    self.monitor.stop_video()
                    # The curves are drawn while the nodes stop (the learner's checkpoint
                    # takes seconds): the whole stop stays within about ten seconds.
                    plot = threading.Thread(target=self._plot, daemon=True)
                    plot.start()
                    exits = self.graph.stop(deadline_s=max(8.5, self.stop_budget_s + 1.5))
                    if len(self.signals) < 2:   # a second signal skips only the plots
                        plot.join(timeout=max(0.0, 9.5 - self._since_signal()))
        finally:
            self.monitor.close()
            self.monitor.destroy_node()
            rclpy.try_shutdown()
        crashed = {n: c for n, c in exits.items() if c not in (0, -signal.SIGINT)}
        if crashed and not self.signals and code == 0:
            print(f'nodes ended badly: {crashed} (logs in {self.run_dir / "logs"})')
            code = 1
        if self.signals:
            code = 128 + self.signals[0]
        if not self.started:
            # Refused, failed or stopped before the nodes reported: nothing of this session
            # is a run. Its summary would replace a resumed run's real one with zeros, and a
            # fresh run's 0-step checkpoint made the next start ask for --fresh.
            self._forget_session(stopped=True)
            return code
        self._finish(code)
        if plot is not None and plot.is_alive():
            # A second signal left the plot drawing in its daemon thread: finalizing the
            # interpreter under it aborted the process ("terminate called without an active
            # exception", exit -6, seen once in a fresh-clone make test). Everything of this
            # run is written by now, so leave at once.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code

    def _refuse_a_run_beside(self) -> int:
        """2 when another run's learner or reward node is alive in this namespace and domain.

        Two runs of one namespace on one ROS domain drive each other's robot and pay each
        other's rewards. Another ``sole-r1 learn`` on this machine holds its domain and
        namespace's lock file (``file_lock.try_lock``): that is certain and at once. A node of
        anything else (a launch, another machine) shows in the graph's names once discovered
        (up to ``_DISCOVERY_S`` is waited for that); it is alive if it then reports on
        ``/diagnostics`` (every second, which the monitor reads) within ``_ALIVE_S``: a
        crashed run's names stay in the graph a while, and do not report. Discovery can take
        longer than that on a busy machine, so this part is best effort.
        """
        from sole_r1_ros.file_lock import try_lock
        where = '/' + self.request.namespace.strip('/')
        domain = os.environ.get('ROS_DOMAIN_ID', '').strip() or '0'   # '' is 0 to rcl too
        path = _machine_lock_path('run', f'{domain}{where}')
        held = try_lock(path, f'pid {os.getpid()}')
        if isinstance(held, str):
            return self._refuse_beside(f'another sole-r1 learn on this machine ({held}) runs '
                                       f'in namespace {where} on ROS_DOMAIN_ID={domain}')
        self._domain_lock = (path, held)   # released, its file removed, when the run ends
        ours = ('learner_node', 'reward_node')
        start, named, found = time.monotonic(), False, []
        while not found and not self.signals:
            found = [node for node in ours if node in self.monitor.status]
            named = named or any(name in ours and ns == where for name, ns
                                 in self.monitor.get_node_names_and_namespaces())
            waited = time.monotonic() - start
            if waited > (_ALIVE_S if named else _DISCOVERY_S):
                break
            time.sleep(0.05)
        if not found:
            return 0
        return self._refuse_beside(f'another run or launch has a {found[0]} in namespace '
                                   f'{where} on this ROS graph (ROS_DOMAIN_ID={domain})')

    def _refuse_beside(self, what: str) -> int:
        print(f"sole-r1 learn: {what}. Two would drive each other's robot and pay each "
              "other's rewards: stop it, or give this run --namespace NAME or another "
              'ROS_DOMAIN_ID', file=sys.stderr, flush=True)
        self._forget_session()
        return 2

    def _start_up(self) -> int:
        """Wait until the learner reports (configured, active); 2 when a node failed."""
        deadline = time.monotonic() + self.startup_s
        while not self.signals:
            dead = self.graph.exited()
            if dead:
                node = next(iter(dead))
                print(f'sole-r1 learn: {node} failed to start (exit {dead[node]}):\n'
                      f'{self.graph.log_tail(node)}')
                self._forget_session()
                return 2
            if 'learner_node' in self.monitor.status and (
                    'reward_node' in self.monitor.status):
                self._warn_of_untrained_goal()
                self.started = True
                return 0
            if time.monotonic() > deadline:
                silent = [n for n in ('learner_node', 'reward_node')
                          if n not in self.monitor.status]
                print(f'sole-r1 learn: the graph did not start within {self.startup_s:.0f} s: '
                      f'{", ".join(silent)} never reported; the end of its log:\n'
                      + '\n'.join(self.graph.log_tail(n) for n in silent)
                      + f'\n(all logs in {self.run_dir / "logs"})')
                return 2
            time.sleep(0.2)
        return 0

    def _warn_of_untrained_goal(self) -> None:
        """Print what the reward node logged: its model was not trained on the goal."""
        reward = self.monitor.status.get('reward_node', {})
        if reward.get('goal_trained') == 'no':
            backwards = ('; it reads like that goal run the other way, which the model was '
                         'measured to score backwards or not at all on such tasks (push-back, '
                         'drawer-open)' if reward.get('goal_runs_nearest_backwards') == 'yes'
                         else '')
            print(f'sole-r1 learn: warning: {reward.get("model", "the reward model")} was not '
                  f'trained on "{self.request.goal}" (nearest trained goal: '
                  f'{reward.get("nearest_trained_goal")}){backwards}; on a task it never saw '
                  'it is not a reliable reward and the policy may exploit it. Distil it for this '
                  'task or use SOLE-R1 (README: "Use SOLE-R1 instead").', flush=True)

    def _forget_session(self, stopped: bool = False) -> None:
        """A failed start leaves no parameters file, no empty bag, no empty episode list.

        The logs stay. An episode list, even empty, would make the next start ask for
        ``--fresh`` as if a run were there; so would the checkpoints a new run's learner
        wrote at its stop (``stopped``: the nodes have stopped), of no step.
        """
        import shutil
        self.params_file.unlink(missing_ok=True)
        shutil.rmtree(self.run_dir / f'bag-{self.session:03d}', ignore_errors=True)
        episodes = self.run_dir / 'episodes.jsonl'
        if episodes.exists() and episodes.stat().st_size == 0:
            episodes.unlink()
        if stopped and self.session == 1 and not self.request.resume and not _any_steps(
                self.run_dir / 'checkpoints'):
            shutil.rmtree(self.run_dir / 'checkpoints', ignore_errors=True)

    def _learn(self) -> int:
        if self.signals:   # stopped before it: no learning time, no rate (they read 0.0)
            return 0
        from tqdm import tqdm

        from sole_r1_ros.run_progress import run_share
        request, monitor = self.request, self.monitor
        start_steps = int(monitor.counter('learner_node', 'start_env_steps'))
        if start_steps:
            print(f'resumed {self.run_dir}: {start_steps} steps, '
                  f"{monitor.counter('learner_node', 'episodes_done'):.0f} episodes")
        if start_steps >= request.steps:
            print(f'sole-r1 learn: the run already has {start_steps} environment steps and '
                  f'--steps {request.steps} counts the whole run: nothing to learn (give more '
                  'steps); evaluating it', file=sys.stderr, flush=True)
        # From now: steps taken before (a baseline's) do not count in this session's rate.
        self.learn_started_s = time.monotonic()
        self.start_steps = max(start_steps, int(monitor.counter('learner_node', 'env_steps')))
        # In per cent of the run: --steps ends it by steps, --minutes by time, whichever comes
        # first, so the time left is the bar's own estimate of that, not of the step budget;
        # the run ends when that share is whole.
        with tqdm(total=100, desc='learning', dynamic_ncols=True,
                  bar_format='{l_bar}{bar}| {elapsed}<{remaining}{postfix}') as bar:
            while not self.signals:
                steps = int(monitor.counter('learner_node', 'env_steps'))
                elapsed = time.monotonic() - self.learn_started_s
                share = run_share(steps, request.steps, elapsed, request.minutes)
                bar.update(100 * share - bar.n)
                rate = (steps - start_steps) / elapsed if elapsed > 0 else 0.0
                bar.set_postfix_str(f'{steps}/{request.steps} steps, {rate:.1f} step/s, '
                                    f'{monitor.summary()}', refresh=False)
                if share >= 1.0:
                    break
                dead = self.graph.exited()
                if dead:
                    print(f'\nsole-r1 learn: {", ".join(dead)} stopped unexpectedly; logs in '
                          f'{self.run_dir / "logs"}')
                    return 1
                if self._learner_hung():
                    return 1
                self._say_what_is_wrong()
                time.sleep(0.5)
        self.learn_s = time.monotonic() - self.learn_started_s
        return 0

    def _learner_hung(self) -> bool:
        """True, and said with the end of its log, once the learner is silent for too long."""
        if self.monitor.silent_s('learner_node') <= _SILENT_END_S:
            return False
        print(f'\nsole-r1 learn: the learner has not reported for {_SILENT_END_S:.0f} s '
              f'(hung?): ending the run. The end of its log:\n'
              f'{self.graph.log_tail("learner_node")}', flush=True)
        return True

    def _say_what_is_wrong(self) -> None:
        """Say what the terminal would not: the robot held for want of fresh inputs, a failure.

        The learner logs both, but a terminal showing 0 steps/s, or an evaluation that never
        ends, would not say why: no robot on the graph, its drivers down, or other topic
        names or namespace than the parameters say (said once a spell); and a checkpoint that
        failed (a full disk) was said nowhere but the learner's log (said once a failure).
        """
        for node in ('learner_node', 'reward_node'):
            silent = self.monitor.silent_s(node) > _SILENT_SAID_S
            self._say_once(f'silent {node}', 'silent' if silent else '',
                           f'{node} has not reported for {_SILENT_SAID_S:.0f} s (stopped, or '
                           f'hung?): its log {self.run_dir / "logs" / f"{node}.log"}')
        failed = str(self.monitor.status.get('learner_node', {}).get('checkpoint_error', ''))
        self._say_once('checkpoint', failed, f'a checkpoint failed ({failed}); the learner goes '
                       'on and tries again, the last good checkpoint stays. Free space on '
                       f'{self.run_dir}? Its log: {self.run_dir / "logs" / "learner_node.log"}')
        silent = str(self.monitor.status.get('camera_node', {}).get('not_querying', ''))
        self._say_once('camera', silent, f'the camera node asks the reward model nothing: '
                       f'{silent}. Its log: {self.run_dir / "logs" / "camera_node.log"}')
        bag = self.monitor.status.get('recorder_node', {})
        stopped = str(bag.get('stopped', ''))
        self._say_once('bag', stopped, f'the bag {bag.get("bag")} stopped ({stopped}); its '
                       'messages are dropped until the disk has room, then it goes on in a new '
                       'part')
        stale, now = self.monitor.stale_inputs(), time.monotonic()
        if not stale:
            self._holding_since, self._holding_said = None, False
            return
        if self._holding_since is None:
            self._holding_since = now
        if not self._holding_said and now - self._holding_since >= _HOLDING_SAID_AFTER_S:
            self._holding_said = True
            why = self.monitor.stale_why()
            if 'rejected' in why:   # they come, and are refused: the reason is the help
                print(f'\nsole-r1 learn: the learner has held the robot for '
                      f'{now - self._holding_since:.0f} s: {why}. Its log: '
                      f'{self.run_dir / "logs" / "learner_node.log"}', flush=True)
                return
            print(f'\nsole-r1 learn: the learner has held the robot for '
                  f'{now - self._holding_since:.0f} s: no fresh {stale}. Is the robot up, '
                  'publishing on the topics and in the namespace the parameters name (or '
                  '--remap FROM:=TO; README, "On a real arm")? Its log: '
                  f'{self.run_dir / "logs" / "learner_node.log"}',
                  flush=True)

    def _say_once(self, what: str, problem: str, message: str) -> None:
        """Print ``message`` once a node's ``problem`` ('': none) is a new one; keep the last."""
        if problem and problem != self._said.get(what):
            print(f'\nsole-r1 learn: {message}', flush=True)
            self.problems[what] = problem   # for summary.json
        self._said[what] = problem

    def _evaluate(self, episodes: int | None = None, name: str = 'evaluation') -> int:
        """Run the learner's evaluate action; ``name`` 'baseline' is the untrained policy."""
        episodes = self.request.eval_episodes if episodes is None else episodes
        if self.signals or episodes == 0:
            return 0
        from sole_r1_interfaces.action import Evaluate
        client = self.monitor.evaluate
        if not client.wait_for_server(timeout_sec=10.0):
            print('evaluation skipped: the learner offers no evaluate action')
            return 0
        final = name == 'evaluation'
        if final:
            self.monitor.start_video(self.run_dir / 'final_policy.mp4', self.video_fps)
        what = 'the policy' if final else 'the untrained policy (a baseline)'
        print(f'evaluating {what} over {episodes} episodes ...', flush=True)
        goal = client.send_goal_async(Evaluate.Goal(episodes=episodes, progress_threshold=90.0))
        if not self._wait(goal):
            return 1 if self.hung else 0
        if not goal.result().accepted:
            print('the learner refused the evaluation (paused, or evaluating already: its log '
                  'says which)', flush=True)
            return 0
        result_future = goal.result().get_result_async()
        if not self._wait(result_future):
            goal.result().cancel_goal_async()
            if self.hung:
                print(f'{name} not written: the learner hung', flush=True)
                return 1
            if self.signals:   # it went without a word, and a resumed run never has it again
                print(f'{name} interrupted: not written'
                      + (' (a resumed run does not evaluate the untrained policy again: it has '
                         'learned)' if name == 'baseline' else ''), flush=True)
            return 0
        self.monitor.stop_video()
        from action_msgs.msg import GoalStatus
        status = result_future.result().status
        result = result_future.result().result
        if status != GoalStatus.STATUS_SUCCEEDED or not result.episodes_done:
            # cancelled or aborted (the learner stopping): a partial result is not the run's
            print(f'{name} ended early (goal status {status}) after {result.episodes_done} '
                  f'episodes: not written', flush=True)
            return 0
        truth = _finite(result.success_rate_ground_truth)   # NaN on a real robot: null
        unscored = int(result.episodes_unscored)
        if unscored:
            print(f'{name}: the reward model never answered the last frame of {unscored} of '
                  f'its {result.episodes_done} episodes (a dead or slow reward node: its log); '
                  'the predicted rates count the others only', flush=True)
        self.report[name] = {
            'episodes': result.episodes_done,
            'episodes_unscored': unscored,
            'env_steps': int(self.monitor.counter('learner_node', 'env_steps')),
            'session': self.session,
            'success_rate_progress': _finite(result.success_rate_progress),
            'success_rate_ground_truth': truth,
            'mean_final_progress': _finite(result.mean_final_progress),
            'final_progress': [_finite(v) for v in result.final_progress],
            'success_ground_truth': list(result.success_ground_truth) if truth is not None
            else None}
        _write_atomically(self.run_dir / f'{name}.json',
                          json.dumps(self.report[name], indent=2, allow_nan=False))
        simulator = (f'{100 * truth:.0f}% (simulator), ' if truth is not None else '')
        predicted = (f'{100 * result.success_rate_progress:.0f}% (predicted progress >= 90%), '
                     f'mean final progress {result.mean_final_progress:.0f}%'
                     if unscored < result.episodes_done else 'none predicted (no episode scored)')
        print(f'{name} over {result.episodes_done} episodes: success {simulator}{predicted}')
        return 0

    def _wait(self, future) -> bool:
        """Wait for an action's future; False on a signal, a node's exit or a hung learner.

        The silence cut-off held while learning only: an evaluation whose learner hung was
        waited on for ever, and ``make demo`` never ended.
        """
        while not future.done():
            if self.signals or self.graph.exited():
                return False
            if self._learner_hung():
                self.hung = True
                return False
            self._say_what_is_wrong()
            time.sleep(0.1)
        return True

    def _plot(self) -> None:
        from sole_r1_ros.viz.curves import plot_learning_curves
        self.monitor.write_ended(wait_s=3.0)   # the last episodes' lines, in the curves too
        if plot_learning_curves(self.run_dir / 'episodes.jsonl',
                                self.run_dir / 'logs' / 'metrics.jsonl',
                                self.run_dir / 'learning_curves.png', title=self.request.goal):
            print(f"learning curves: {self.run_dir / 'learning_curves.png'}")

    def _since_signal(self) -> float:
        return time.monotonic() - self.signal_s if self.signals else 0.0

    def _finish(self, code: int) -> None:
        """The video (absent if cut short) and summary.json."""
        video = self.run_dir / 'final_policy.mp4'
        if video.exists() and video.stat().st_size < 1000:
            video.unlink()   # cut short: cleanly absent rather than broken
        self._write_summary(code)
        print(f'run directory: {self.run_dir}')

    def _baseline(self) -> dict:
        """The untrained policy's evaluation: this session's, or a resumed run's first."""
        if 'baseline' in self.report:
            return self.report['baseline']
        try:
            return json.loads((self.run_dir / 'baseline.json').read_text())
        except (OSError, ValueError):
            return {}

    def _write_summary(self, code: int) -> None:
        monitor, request = self.monitor, self.request
        steps = int(monitor.counter('learner_node', 'env_steps'))
        updates = int(monitor.counter('learner_node', 'updates'))
        learning_steps = int(monitor.counter('learner_node', 'learning_steps'))
        learn_s = getattr(self, 'learn_s', None)
        evaluation = self.report.get('evaluation', {})
        summary = {
            'goal': request.goal, 'task': request.sim_task, 'exit_code': code,
            'reward': self.reward, 'policy_input': self.policy_input,
            'env_steps': steps, 'updates': updates,
            # where a --resume goes on: the newest checkpoint's, fewer than env_steps after a
            # crash (the steps since it are not in the replay)
            'checkpoint_env_steps': _checkpoint_env_steps(self.run_dir),
            # the updates per environment step since learning began, against the configured
            # utd_ratio: on 2 cores the learner thread falls behind (the demo: 0.10 for 0.5)
            'updates_per_step': (round(updates / learning_steps, 3) if learning_steps
                                 else None),
            'utd_ratio': self.utd_ratio,
            # under a second of learning (an evaluate-only resume) gives no rate: it read 605
            'steps_per_s': (round((steps - self.start_steps) / learn_s, 2)
                            if learn_s and learn_s >= 1.0 else None),
            'learning_wall_s': round(learn_s, 1) if learn_s else None,
            'total_wall_s': round(time.monotonic() - self.started_s, 1),
            'eval_episodes': evaluation.get('episodes', 0),
            'true_success': _rounded(evaluation.get('success_rate_ground_truth')),
            'untrained_true_success': _rounded(self._baseline().get(
                'success_rate_ground_truth')),
            'predicted_success': _rounded(evaluation.get('success_rate_progress')),
            'reward_goal_trained': {'yes': True, 'no': False}.get(
                monitor.status.get('reward_node', {}).get('goal_trained')),
            # the last checkpoint failure seen, if any (a full disk): null when none failed
            'checkpoint_error': self.problems.get('checkpoint'),
            # the bag's last stop (a disk under the recorder's reserve), its drops and parts
            'bag_stopped': self.problems.get('bag'),
            'bag_dropped': int(monitor.counter('recorder_node', 'dropped')),
            'bag_parts': int(monitor.counter('recorder_node', 'parts', 1)),
            'git_commit': _git_commit()}
        _write_atomically(self.run_dir / 'summary.json', json.dumps(summary, indent=2))


def _checkpoint_env_steps(run_dir: Path) -> int | None:
    """The environment steps of the run directory's newest checkpoint (None: there is none)."""
    from sole_r1_ros.rl.checkpoint import newest_counters
    counters = newest_counters(run_dir / 'checkpoints')
    try:
        return int(counters['env_steps']) if counters else None
    except (KeyError, TypeError, ValueError):
        return None


def _policy_input(learner: dict) -> str:
    """What the policy observes, in words, from the learner's parameters."""
    from sole_r1_ros.rl import DrQConfig, SensingConfig
    sensing = _config_of(SensingConfig, learner)
    variant = learner.get('agent.variant', DrQConfig().variant)
    if sensing.observation == 'sim_state_privileged':
        return 'simulator state (privileged baseline)'
    cameras = f"cameras {' + '.join(sensing.views)}, " if variant == 'pixels' else ''
    return cameras + 'joint states' + (', end-effector pose' if sensing.use_ee_pose else '')


def _any_steps(folder: Path) -> bool:
    """Whether a checkpoint in ``folder`` holds an environment step (or cannot be read)."""
    from sole_r1_ros.rl.checkpoint import list_checkpoints
    for checkpoint in list_checkpoints(folder):
        try:
            counters = json.loads((checkpoint / 'meta.json').read_text())['counters']
            if int(counters.get('env_steps', 0)) > 0:
                return True
        except (OSError, ValueError, KeyError, TypeError):
            return True   # not known to be empty: kept
    return False


def _startup_s(reward: dict) -> float:
    """How long the nodes may take to report: an openai reward waits for its server to load.

    The reward node waits up to ``openai.health_check_s`` (600 s) for a vLLM server still
    loading its model, which the README says may start beside it; a start cut off at 240 s
    ended every run whose server took longer.
    """
    from sole_r1_ros.reward import OpenAIConfig
    if reward.get('backend') != 'openai':
        return _STARTUP_TIMEOUT_S
    health = float(reward.get('openai.health_check_s', OpenAIConfig().health_check_s))
    return max(_STARTUP_TIMEOUT_S, health + 60.0)


def _utd_ratio(learner: dict) -> float:
    """The configured update-to-data ratio, from the learner's parameters."""
    from sole_r1_ros.rl import DrQConfig
    return float(learner.get('agent.utd_ratio', DrQConfig().utd_ratio))


def _rounded(value: float | None) -> float | None:
    """A float32 rate from the action result, as the fraction it is (0.7, not 0.6999999881)."""
    value = _finite(value)
    return None if value is None else round(value, 4)


def _finite(value: float | None) -> float | None:
    """The value, or None for a NaN (strict JSON has no NaN; a real robot has no truth)."""
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _git_commit() -> str | None:
    """The commit checked out, with '-dirty' when tracked files differ from it."""
    here = Path(__file__).parent

    def git(*args: str) -> str:
        return subprocess.run(['git', *args], capture_output=True, text=True, cwd=here,
                              timeout=5).stdout.strip()
    try:
        commit = git('rev-parse', 'HEAD')
        dirty = commit and git('status', '--porcelain', '--untracked-files=no')
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ('-dirty' if dirty else '')) or None
