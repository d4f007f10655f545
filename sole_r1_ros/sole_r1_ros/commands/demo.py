"""``sole-r1 demo`` (``make demo``): a simulated robot learns a task from video rewards alone.

A Meta-World task, learned from pixels and proprioception on a CPU in about a quarter of an
hour.

drawer-close is the default task because its goal is visible: reach, push and pick-place mark
their goal only with a site the cameras hide, so a video reward cannot see it and the policy
learns to please the reward model instead (measured: 94% predicted, 25% true progress).

The reward is the compact progress model shipped with the package, asked the SOLE-R1 question
(first / previous / current frame of both cameras, the goal, the previous answer) through the
same camera and reward nodes a real robot uses. The policy sees what a robot has: the two camera
views, joint states and the end-effector pose; the simulator's ground truth is only used to
report true success next to the predicted one. The simulator runs in lock-step with the learner
('on_command') so the quarter hour is spent learning, not waiting for a wall clock.
"""
import argparse
import json
from pathlib import Path

from sole_r1_ros.bringup import config_dir
from sole_r1_ros.commands.learn import learn, LearnRequest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--task', default='drawer-close-v3', help='Meta-World v3 task id')
    parser.add_argument('--goal', help="the goal in words (default: the task's own)")
    parser.add_argument('--minutes', type=float, default=10.0,
                        help='learning time budget (evaluation and plots take 1-2 more); '
                        'the run ends at this or --steps, whichever comes first')
    parser.add_argument('--steps', type=int, default=30000,
                        help='environment-step budget (about 11-13 minutes at the 37-45 steps/s '
                        'of the simulated demo: raise it with a longer --minutes)')
    parser.add_argument('--reward', default='compact', help='reward backend (compact: the '
                        'shipped CPU model; oracle: simulator truth, as a baseline)')
    parser.add_argument('--out', default='demo_output', help='run directory')
    parser.add_argument('--eval-episodes', type=int, default=10)
    parser.add_argument('--baseline-episodes', type=int, default=10,
                        help='episodes of the untrained policy first, the number to beat')
    parser.add_argument('--resume', action='store_true')
    parser.add_argument('--fresh', action='store_true', help='start over in --out')
    parser.add_argument('--set', nargs='+', action='extend', default=[],
                        metavar='NODE.PARAM=VALUE',
                        help='override parameters of config/demo.yaml (repeatable)')


def run(args: argparse.Namespace) -> int:
    from sole_r1_ros.sim import TASK_GOALS
    if args.task not in TASK_GOALS:
        raise ValueError(f'unknown task {args.task!r}; one of {sorted(TASK_GOALS)}')
    goal = args.goal or TASK_GOALS[args.task]
    request = LearnRequest(   # checks the budgets before anything is said or started
        goal=goal, run_dir=Path(args.out), sim_task=args.task,
        params_file=config_dir() / 'demo.yaml', reward=args.reward, steps=args.steps,
        minutes=args.minutes, resume=args.resume, fresh=args.fresh,
        eval_episodes=args.eval_episodes, baseline_episodes=args.baseline_episodes,
        overrides=tuple(args.set), run_dir_flag='--out')
    print(f'demo: learning "{goal}" ({args.task}) from {args.reward} progress rewards for '
          f'at most {args.minutes:g} minutes / {args.steps} steps -> {args.out}/')
    code = learn(request)
    summary = Path(args.out) / 'summary.json'
    if summary.exists() and code != 2:   # refused or failed to start: another run's summary
        print(f'summary ({summary}):')
        print(json.dumps(json.loads(summary.read_text()), indent=2))
    return code
