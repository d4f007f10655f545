"""``sole-r1 synth``: synthetic robot videos with ground-truth progress, for progress models.

Meta-World's scripted experts plus labelled perturbations (noise, pauses, reversals, stopping
short, wrong targets, drops), both cameras, proprioception and per-frame progress, written as
labelled episodes (``labelled/FORMAT.md``; synthetic specifics in ``synth/FORMAT.md``).
Resumable: finished episodes are skipped. ``--export-sole-r1 DIR`` also writes SOLE-R1
fine-tuning examples with the writer ``sole-r1 finetune prepare`` uses.

Two more kinds of episode teach the compact model to read the goal, not the scene:
``--object-motion`` pushes the free object of a training scene left, right, forward or back
under goals that name the direction (``synth/object_motion.py``); ``--undo-of DIR`` plays
DIR's successful training episodes backwards under goals that undo them (``synth/undo.py``).
``--ghost-of DIR`` replays DIR's successful expert training episodes with the arm touching
nothing, so the objects never move (``synth/ghost.py``): the arm's motion alone is no progress.
"""
import argparse

from sole_r1_ros.configuration import from_mapping
from sole_r1_ros.synth.behaviours import BEHAVIOURS
from sole_r1_ros.synth.generate import SynthConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--tasks', default='',
                        help='comma-separated Meta-World v3 task ids, e.g. '
                             'drawer-close-v3,reach-v3 (required, except with --object-motion, '
                             '--undo-of or --ghost-of, where it chooses among their scenes or '
                             'tasks)')
    parser.add_argument('--episodes', type=int, default=SynthConfig.episodes_per_task,
                        help='episodes per task (behaviours cycle: expert, noisy, stop_short, '
                             'reversal, expert, pause, wrong_target, drop, ...)')
    parser.add_argument('--out', required=True, help='dataset folder (created or resumed)')
    parser.add_argument('--workers', type=int, default=2,
                        help='worker processes, one simulator each (default 2)')
    parser.add_argument('--image-size', type=int, default=SynthConfig.image_size,
                        help='square camera image side [px]')
    parser.add_argument('--frame-stride', type=int, default=SynthConfig.frame_stride,
                        help='store camera frames every K env steps')
    parser.add_argument('--max-steps', type=int, default=SynthConfig.max_steps)
    parser.add_argument('--seed', type=int, default=SynthConfig.seed)
    parser.add_argument('--randomize-scene', type=float, default=SynthConfig.scene_randomization,
                        metavar='STRENGTH',
                        help='draw camera pose, lighting and colours anew for each episode '
                             '(domain randomization; 1 = the defaults of '
                             'sim/randomization.py, 0 = off)')
    parser.add_argument('--camera-orbit', type=float, default=SynthConfig.camera_orbit_deg,
                        metavar='DEG',
                        help="turn each episode's external camera about the table's vertical "
                             'axis by up to DEG degrees (the scene from another side; 0 = off)')
    parser.add_argument('--behaviour', default=SynthConfig.behaviour, choices=BEHAVIOURS,
                        help='every episode this behaviour instead of the cycle of all')
    parser.add_argument('--brake', action='store_true',
                        help="stop the scene's hinges and slides when a stop_short episode's "
                             'hand backs off, so a shoved drawer ends where the push ended '
                             '(partial end states, still labelled by the simulator)')
    parser.add_argument('--export-sole-r1', metavar='DIR',
                        help='also write SOLE-R1 fine-tuning examples to DIR (the format of '
                             'sole-r1 finetune prepare)')
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument('--object-motion', action='store_true',
                      help='object-motion episodes instead: the free object of each scene '
                           '(default: all 16) pushed left/right/forward/back, labelled by its '
                           'displacement along the direction the goal asks')
    kind.add_argument('--undo-of', metavar='DIR',
                      help="undoing episodes instead: DIR's successful training episodes "
                           'played backwards under goals that undo them (default: every task '
                           'with one)')
    kind.add_argument('--ghost-of', metavar='DIR',
                      help="ghost episodes instead: DIR's successful expert training episodes "
                           'replayed with the arm passing through everything, the objects '
                           'unmoved, labelled by the simulator (about 0 %%)')
    kind.add_argument('--erase-robot-of', metavar='DIR',
                      help="robot-erased episodes instead: DIR's episodes with the robot "
                           'taken out of every frame (background memory on the external '
                           'camera, gray on the wrist camera), from the masks in --masks')
    parser.add_argument('--robot-masks', action='store_true',
                        help="store each frame as the robot's mask instead of its picture: "
                             'the same episodes, frame for frame, as the same command '
                             'without it (for --erase-robot-of; --undo-of or --ghost-of such a '
                             'folder makes their masks)')
    parser.add_argument('--masks', metavar='DIR',
                        help='with --erase-robot-of: the folder that the command which made '
                             'DIR wrote with --robot-masks')
    parser.add_argument('--queries-per-episode', type=int, default=4,
                        help='exported queries per episode (with --export-sole-r1)')


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sole_r1_ros.synth.export import export_finetune
    from sole_r1_ros.synth.generate import generate

    if args.workers < 1:
        raise ValueError(f'--workers must be >= 1, got {args.workers}')
    tasks = [t.strip() for t in args.tasks.split(',') if t.strip()]
    if bool(args.masks) != bool(args.erase_robot_of):
        raise ValueError('--erase-robot-of DIR and --masks DIR go together')
    if args.object_motion or args.undo_of or args.ghost_of or args.erase_robot_of:
        return _run_derived(args, tasks)
    if not tasks:
        raise ValueError('--tasks is required: comma-separated Meta-World v3 task ids')
    config = from_mapping(SynthConfig, {
        'tasks': tasks, 'episodes_per_task': args.episodes, 'image_size': args.image_size,
        'frame_stride': args.frame_stride, 'max_steps': args.max_steps, 'seed': args.seed,
        'scene_randomization': args.randomize_scene,
        'camera_orbit_deg': args.camera_orbit, 'robot_masks': args.robot_masks,
        'behaviour': args.behaviour, 'brake': args.brake})
    total = len(config.tasks) * config.episodes_per_task
    with tqdm(total=total, desc='synth', unit='episode') as bar:
        everything = generate(config, args.out, workers=args.workers, on_done=bar.update)
    chosen = [e for e in everything if e['task'] in config.tasks]
    frames = sum(len(e['progress']) for e in chosen)
    successes = sum(bool(e.get('success')) for e in chosen)
    print(f'{len(chosen)} episodes ({successes} successful), {frames} frames per camera in '
          f'{args.out} ({len(everything)} episodes in the whole dataset)')
    if args.export_sole_r1:
        with tqdm(total=len(chosen), desc='export', unit='episode') as bar:
            count = export_finetune(args.out, args.export_sole_r1, tasks=config.tasks,
                                    split='train',   # 'val' episodes are for evaluation
                                    queries_per_episode=args.queries_per_episode,
                                    on_episode=bar.update)
        print(f'{count} SOLE-R1 fine-tuning examples in {args.export_sole_r1}')
    return 0


def _run_derived(args: argparse.Namespace, tasks: list[str]) -> int:
    """``--object-motion``, ``--undo-of``, ``--ghost-of`` or ``--erase-robot-of``."""
    from tqdm import tqdm

    from sole_r1_ros.labelled import folder

    given = [flag for flag, value in (('--behaviour', args.behaviour), ('--brake', args.brake),
                                      ('--export-sole-r1', args.export_sole_r1)) if value]
    if given:
        raise ValueError(f"{' and '.join(given)} go{'es' if len(given) == 1 else ''} with "
                         'Meta-World expert episodes, not with --object-motion, --undo-of, '
                         '--ghost-of or --erase-robot-of')
    if args.robot_masks and not args.object_motion:
        raise ValueError('--robot-masks goes with Meta-World expert episodes or '
                         '--object-motion (--undo-of or --ghost-of a mask folder makes '
                         'masks already)')
    if args.object_motion:
        from sole_r1_ros.synth.object_motion import generate_object_motion, OBJECT_NOUNS

        chosen = tasks or sorted(OBJECT_NOUNS)
        with tqdm(total=len(chosen), desc='object motion', unit='scene') as bar:
            written = generate_object_motion(
                args.out, chosen, workers=args.workers,
                on_scene=lambda task, count: (bar.update(1), bar.set_postfix(scene=task)),
                robot_masks=args.robot_masks)
    else:
        if args.undo_of:
            from sole_r1_ros.synth.undo import write_undo_episodes as write
            source, desc = args.undo_of, 'undo'
        elif args.ghost_of:
            from sole_r1_ros.synth.ghost import write_ghost_episodes as write
            source, desc = args.ghost_of, 'ghost'
        else:
            from functools import partial

            from sole_r1_ros.synth.erase import write_erased_episodes

            write = partial(write_erased_episodes, masks=args.masks)
            source, desc = args.erase_robot_of, 'erase'
        with tqdm(desc=desc, unit='episode') as bar:
            written = write(source, args.out, tasks or None, on_episode=lambda _: bar.update(1))
    print(f'{written} episodes written now, {len(folder.list_episodes(args.out))} in {args.out}')
    return 0
