"""Benchmark of the RL layer (``sole_r1_ros.rl``) on the simulated Meta-World robot.

The learner node's own loop (``rl.ControlLoop`` around ``rl.OnlineLearner``) runs with the
simulator called directly (``sim_loop.DirectSimRobot``): the same safety box, command form and
sensing as the node. The reward is the simulator's ground-truth progress, delivered as labels by
episode and frame stamp with an artificial delay (plus jitter, so they arrive out of order, and
optional duplicates and losses), the way SOLE-R1's answers reach the learner node. It checks the
learner, not the product. Updates run inline at the update-to-data ratio.

Variants: ``pixels`` (the product: both cameras + joint states + end-effector pose) and
``state`` (the privileged baseline: the simulator's state vector with object and goal poses).

    python bench/bench_rl.py                  # pixels and state, drawer- and window-close, 5k
    python bench/bench_rl.py --variants pixels --tasks drawer-close-v3 --steps 10000 \
        --eval-every 2500 --eval-episodes 10 --final-eval-episodes 20
    python bench/bench_rl.py --quick          # smoke run, a few minutes

An environment step is one command held for ``--action-repeat`` simulator steps.

Writes (merging with earlier runs, keyed by task and variant) ``bench/results/rl.json``,
``rl_curve.png`` and ``rl.md``.
"""
import argparse
import dataclasses
import heapq
import json
import logging
import os
from pathlib import Path
import sys
import time
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402
from sim_loop import DirectSimRobot  # noqa: E402
from sole_r1_ros.rl import (  # noqa: E402
    CommandConfig, ControlLoop, DrQConfig, LoopConfig, OnlineLearner, prepare_observation,
    ReplayConfig, SafetyBox, SensingConfig)
from sole_r1_ros.sim import JOINT_NAMES, MetaWorldRobot, SimConfig, STATE_SIZE  # noqa: E402

RESULTS = Path(__file__).resolve().parent / 'results'
EVAL_SEED = 1_000_000  # reset seeds of the evaluation episodes; training uses seed * 10^5 + k

# Pixels on a 2-core CPU: smaller batch and fewer updates per step than the state variant.
PIXEL_OVERRIDES = {'variant': 'pixels', 'batch_size': 128, 'utd_ratio': 0.5}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tasks', nargs='+', default=['drawer-close-v3', 'window-close-v3'],
                        help='Meta-World tasks (default: two whose object moves gradually, so '
                             'the ground-truth progress is dense; random commands close the '
                             'drawer 35 %% of the time and the window never)')
    parser.add_argument('--variants', nargs='+', default=['pixels', 'state'],
                        choices=('state', 'pixels'))
    parser.add_argument('--steps', type=int, default=5000, help='environment steps per task')
    parser.add_argument('--quick', action='store_true', help='tiny budget for a smoke run')
    parser.add_argument('--episode-steps', type=int, default=100, help='episode length [steps]')
    parser.add_argument('--label-delay', type=int, default=10,
                        help='steps between a frame and its progress label')
    parser.add_argument('--label-jitter', type=int, default=5,
                        help='extra random delay, U[0, jitter] steps (out-of-order labels)')
    parser.add_argument('--label-stride', type=int, default=1,
                        help='label every k-th frame (and the last); the rest is filled')
    parser.add_argument('--label-duplicate-prob', type=float, default=0.05)
    parser.add_argument('--label-drop-prob', type=float, default=0.0)
    parser.add_argument('--action-repeat', type=int, default=2,
                        help='simulator steps (12.5 ms each) per command and environment step')
    parser.add_argument('--eval-every', type=int, default=2500, help='environment steps')
    parser.add_argument('--eval-episodes', type=int, default=10,
                        help='deterministic episodes per intermediate evaluation')
    parser.add_argument('--final-eval-episodes', type=int, default=20,
                        help='deterministic episodes of the final evaluation')
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=1,
                        help="agent, replay and training-episode seed (1: the demo's; seed 0's "
                             'untrained pixels policy happens to close the drawer)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--set', nargs='+', action='extend', default=[], metavar='FIELD=VALUE',
                        help='override DrQConfig / ReplayConfig fields, e.g. lr=1e-4')
    parser.add_argument('--out', type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every, args.eval_episodes, args.final_eval_episodes = (
            1500, 750, 2, 3)
    return args


def build_configs(args: argparse.Namespace, variant: str) -> tuple[DrQConfig, ReplayConfig]:
    """Tuned defaults, pixel overrides, then ``--set`` overrides (checked like node params)."""
    from sole_r1_ros.configuration import from_mapping, specs
    agent: dict[str, Any] = dict(PIXEL_OVERRIDES) if variant == 'pixels' else {}
    agent.update(seed=args.seed, image_size=args.image_size)
    replay: dict[str, Any] = {'capacity': max(args.steps + 1000, 2000), 'seed': args.seed}
    if args.quick:
        agent.update(seed_steps=200, std_decay_steps=1000)
        replay.update(min_labelled=200)
    agent_names = {s.name for s in specs(DrQConfig)}
    for item in args.set:
        name, _, text = item.partition('=')
        target = agent if name in agent_names else replay
        target[name] = yaml.safe_load(text)
    return from_mapping(DrQConfig, agent), from_mapping(ReplayConfig, replay)


class DelayedLabels:
    """Progress labels that reach the learner late, jittered, sometimes twice or never."""

    def __init__(self, args: argparse.Namespace, rng: np.random.Generator) -> None:
        self._args, self._rng = args, rng
        self._queue: list[tuple[int, int, str, int, float]] = []
        self._count = 0
        self.now = 0

    def frame(self, episode: str, stamp_ns: int, step: int, progress: float,
              last: bool) -> None:
        """Queue the label of one frame (every ``label_stride``-th frame, and the last)."""
        a = self._args
        if not episode or (step % a.label_stride and not last):
            return
        if self._rng.random() < a.label_drop_prob:
            return
        for _ in range(2 if self._rng.random() < a.label_duplicate_prob else 1):
            due = self.now + a.label_delay + int(self._rng.integers(0, a.label_jitter + 1))
            self._count += 1
            heapq.heappush(self._queue, (due, self._count, episode, stamp_ns, progress))

    def deliver(self, learner: OnlineLearner) -> None:
        self.now += 1
        while self._queue and self._queue[0][0] <= self.now:
            _, _, episode, stamp_ns, progress = heapq.heappop(self._queue)
            learner.label(episode, stamp_ns, progress)


def evaluate(robot: DirectSimRobot, agent: Any, config: DrQConfig, episodes: int,
             episode_steps: int) -> dict[str, float]:
    """Run the deterministic policy (mu) for ``episodes`` episodes.

    The variations are the same every time (reset seeds ``EVAL_SEED + i``); success = success at
    any step of the episode.
    """
    successes, final_progress = [], []
    for i in range(episodes):
        robot.observation = robot.robot.reset(seed=EVAL_SEED + i)
        success, progress = False, 0.0
        for _ in range(episode_steps):
            sensed = robot.observe()
            robot.send(agent.act(prepare_observation(sensed.state, sensed.views, config),
                                 explore=False), sensed)
            success, progress = success or bool(robot.info.success), float(robot.info.progress)
            if robot.info.truncated:
                break
        successes.append(success)
        final_progress.append(progress)
    return {'success_rate': float(np.mean(successes)),
            'final_progress': float(np.mean(final_progress))}


def random_policy_success(task: str, args: argparse.Namespace) -> float:
    """Measure the success rate of uniformly random commands, for context.

    Uses the final evaluation's variations and no rendering: how easy the task is unlearned.
    """
    robot = MetaWorldRobot(SimConfig(task=task, render=False, seed=args.seed,
                                     max_episode_steps=args.episode_steps,
                                     action_repeat=args.action_repeat))
    rng = np.random.default_rng(args.seed)
    successes = []
    for i in range(args.final_eval_episodes):
        robot.reset(seed=EVAL_SEED + i)
        success = False
        for _ in range(args.episode_steps):
            _, info = robot.step(rng.uniform(-1.0, 1.0, 4))
            success = success or bool(info.success)
        successes.append(success)
    robot.close()
    return float(np.mean(successes))


def run_task(task: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one agent on ``task`` for ``args.steps`` environment steps; return the record."""
    config, replay_config = build_configs(args, variant)
    state = 'sim_state_privileged' if variant == 'state' else 'proprio'
    sensing = SensingConfig(observation=state, joint_names=JOINT_NAMES)
    learner = OnlineLearner(config, replay_config, sensing.state_dim(STATE_SIZE), 4)
    labels = DelayedLabels(args, np.random.default_rng(args.seed))
    episodes = [0]
    command = CommandConfig(translation_scale_m=0.01 * args.action_repeat)
    box = SafetyBox(max_translation_m=0.01 * args.action_repeat, max_speed_m_s=10.0)

    def on_step(episode: str, stamp_ns: int, observation: Any, info: Any) -> None:
        step = loop.learner.step
        progress = 0.0 if info is None else float(info.progress)
        labels.frame(episode, stamp_ns, step, progress, step >= args.episode_steps)

    def reset_seed() -> int:
        episodes[0] += 1
        return args.seed * 100_000 + episodes[0]
    robot = DirectSimRobot(MetaWorldRobot(SimConfig(
        task=task, render=variant == 'pixels', seed=args.seed, max_episode_steps=10**6,
        image_width=args.image_size, image_height=args.image_size,
        action_repeat=args.action_repeat)), command, box, 0.1, state=state, on_step=on_step,
        reset_seed=reset_seed)
    loop = ControlLoop(learner, robot, LoopConfig(episode_length=args.episode_steps,
                                                  updates_per_round=100),
                       lambda s: prepare_observation(s.state, s.views, config))
    start = time.monotonic()
    evaluating = [0.0]   # seconds spent evaluating, kept out of the training rates

    def evaluation(count: int) -> dict[str, Any]:
        stats = learner.replay.stats()
        began = time.monotonic()
        scores = evaluate(robot, learner.agent, config, count, args.episode_steps)
        evaluating[0] += time.monotonic() - began
        point = {'env_steps': learner.env_steps, 'updates': learner.agent.updates,
                 'eval_episodes': count, **scores,
                 'wall_s': round(time.monotonic() - start, 1),
                 'training_s': round(time.monotonic() - start - evaluating[0], 1),
                 'labelled_share': stats['labelled_share'],
                 'labels_duplicate': stats['labels_duplicate']}
        loop.request_reset()   # the evaluation moved the robot: start a fresh episode
        print(f'[{task} {variant}] ' + ' '.join(
            f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}' for k, v in point.items()),
            flush=True)
        return point

    curve = [evaluation(args.eval_episodes)]   # the untrained policy
    next_eval = args.eval_every
    while learner.env_steps < args.steps:
        loop.step()
        labels.deliver(learner)
        loop.learn()
        if learner.env_steps >= next_eval or learner.env_steps >= args.steps:
            next_eval += args.eval_every
            final = learner.env_steps >= args.steps
            curve.append(evaluation(args.final_eval_episodes if final else args.eval_episodes))
    robot.robot.close()
    final = curve[-1]
    wall = final['wall_s']
    training = final['training_s']   # the rates: the evaluations' steps are not training's
    return {'task': task, 'variant': variant, 'seed': args.seed, 'policy_input': (
                'cameras + joint states + end-effector pose' if variant == 'pixels'
                else 'simulator state (privileged)'),
            'env_steps': learner.env_steps, 'episode_steps': args.episode_steps,
            'success_rate': final['success_rate'], 'eval_episodes': args.final_eval_episodes,
            'wall_s': wall, 'training_s': training, 'updates': learner.agent.updates,
            'updates_per_s': round(learner.agent.updates / training, 2),
            'steps_per_s': round(learner.env_steps / training, 2),
            'action_repeat': args.action_repeat,
            'simulator_steps': learner.env_steps * args.action_repeat,
            'final_progress': final['final_progress'], 'curve': curve,
            'replay': learner.replay.stats(),
            'label_delay_steps': args.label_delay, 'label_jitter_steps': args.label_jitter,
            'label_stride': args.label_stride, 'config': dataclasses.asdict(config),
            'replay_config': dataclasses.asdict(replay_config),
            'random_policy_success': random_policy_success(task, args)}


def write_outputs(records: list[dict[str, Any]], out: Path) -> None:
    """Merge ``records`` into rl.json (by task and variant) and redraw the plot and table."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'rl.json'
    previous = json.loads(path.read_text()).get('runs', []) if path.exists() else []
    keys = {(r['task'], r['variant']) for r in records}
    runs = [r for r in previous if (r['task'], r['variant']) not in keys] + records
    doc = {'hardware': hardware(), 'runs': runs}
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)
    write_table(runs, out / 'rl.md')
    write_plot(runs, out / 'rl_curve.png')
    print(f'wrote {path}, {out / "rl.md"}, {out / "rl_curve.png"}')


def hardware() -> dict[str, Any]:
    return results_io.hardware(torch=torch.__version__, torch_threads=torch.get_num_threads())


def write_table(runs: list[dict[str, Any]], path: Path) -> None:
    lines = ['| task | variant | seed | env steps (action repeat) | success (eval episodes) | '
             'final-step progress | untrained policy | random policy | updates | steps/s | '
             'updates/s | wall time |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    nan = float('nan')
    for r in runs:
        untrained = r['curve'][0]['success_rate'] if r.get('curve') else nan
        lines.append(f"| {r['task']} | {r['variant']} | {r.get('seed', 0)} | {r['env_steps']} "
                     f"({r.get('action_repeat', 1)}) | {r['success_rate']:.0%} "
                     f"({r['eval_episodes']}) | {r.get('final_progress', nan):.0f} % | "
                     f"{untrained:.0%} | {r.get('random_policy_success', nan):.0%} | "
                     f"{r['updates']} | {r.get('steps_per_s', nan):.1f} | "
                     f"{r.get('updates_per_s', nan):.1f} | {r['wall_s'] / 60:.1f} min |")
    lines.append('')
    lines.append('Reward: ground-truth progress / 100, labelled with delay '
                 f"{runs[-1]['label_delay_steps']}+U[0, {runs[-1]['label_jitter_steps']}] "
                 'steps; success = success at any step of a deterministic episode (curve '
                 'points: the episodes of each evaluation are in rl.json).')
    info = hardware()
    lines.append(f"Hardware: {info['cpu_cores']}-core CPU ({info['cpu_model']}), torch "
                 f"{info['torch']} with {info['torch_threads']} thread(s); no GPU. Wall times "
                 'depend on other load on the machine.')
    path.write_text('\n'.join(lines) + '\n')


def write_plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in runs:
        steps = [p['env_steps'] for p in r['curve']]
        ax.plot(steps, [100 * p['success_rate'] for p in r['curve']], marker='o',
                label=f"{r['task']} ({r['variant']})")
    ax.set_xlabel('environment steps')
    ax.set_ylabel('eval success [%]')
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    records = [run_task(task, variant, args) for task in args.tasks
               for variant in args.variants]
    write_outputs(records, args.out)
    for r in records:
        print(f"{r['task']} {r['variant']}: success {r['success_rate']:.0%} after "
              f"{r['env_steps']} steps in {r['wall_s'] / 60:.1f} min")
    return 0


if __name__ == '__main__':
    sys.exit(main())
