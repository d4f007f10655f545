"""Benchmark of the RL layer (``sole_r1_ros.rl``) on the simulated Meta-World robot.

The reward is the simulator's ground-truth progress, delivered to the replay buffer as labels
with an artificial delay (plus jitter, so they arrive out of order, and optional duplicates and
losses), the way SOLE-R1's answers reach the learner node. It checks the learner, not the product.
One process runs the actor and learner in lock step, like the node's two threads would at a
fixed update-to-data ratio.

    python bench/bench_rl.py                  # state variant, reach + drawer-close, 50k each
    python bench/bench_rl.py --variant pixels --tasks drawer-close-v3 --steps 10000 \
        --eval-every 2500 --eval-episodes 10 --final-eval-episodes 20
    python bench/bench_rl.py --quick          # smoke run, a few minutes

An environment step is one command held for ``--action-repeat`` simulator steps.

Writes (merging with earlier runs, keyed by task and variant) ``bench/results/rl.json``,
``rl_curve.png`` and ``rl.md``.
"""
import argparse
import collections
import dataclasses
import heapq
import json
import logging
import os
from pathlib import Path
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

from sole_r1_ros.rl.config import DrQConfig, ReplayConfig
from sole_r1_ros.rl.drq import DrQAgent
from sole_r1_ros.rl.preprocess import prepare_observation
from sole_r1_ros.rl.replay import ReplayBuffer
from sole_r1_ros.sim import MetaWorldRobot, SimConfig

RESULTS = Path(__file__).resolve().parent / 'results'
CONTROL_PERIOD_S = 0.1  # frame stamps as if the robot ran at 10 Hz
EVAL_SEED = 1_000_000  # reset seeds of the evaluation episodes; training uses seed * 10^5 + k

# Pixels on a 2-core CPU: smaller batch and fewer updates per step than the state variant.
PIXEL_OVERRIDES = {'variant': 'pixels', 'batch_size': 128, 'utd_ratio': 0.5}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tasks', nargs='+', default=['reach-v3', 'drawer-close-v3'])
    parser.add_argument('--variant', choices=('state', 'pixels'), default='state')
    parser.add_argument('--steps', type=int, default=50000, help='environment steps per task')
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
    parser.add_argument('--eval-every', type=int, default=5000, help='environment steps')
    parser.add_argument('--eval-episodes', type=int, default=20,
                        help='deterministic episodes per intermediate evaluation')
    parser.add_argument('--final-eval-episodes', type=int, default=50,
                        help='deterministic episodes of the final evaluation')
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--set', nargs='*', default=[], metavar='FIELD=VALUE',
                        help='override DrQConfig / ReplayConfig fields, e.g. lr=1e-4')
    parser.add_argument('--out', type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every, args.eval_episodes, args.final_eval_episodes = (
            1500, 750, 2, 3)
    return args


def build_configs(args: argparse.Namespace) -> tuple[DrQConfig, ReplayConfig]:
    """Tuned defaults, pixel overrides, then ``--set`` overrides (typed like the defaults)."""
    agent_kw: dict[str, Any] = dict(PIXEL_OVERRIDES) if args.variant == 'pixels' else {}
    agent_kw.update(seed=args.seed, image_size=args.image_size)
    replay_kw: dict[str, Any] = {'capacity': max(args.steps + 1000, 2000), 'seed': args.seed}
    if args.quick:
        agent_kw.update(seed_steps=200, std_decay_steps=1000)
        replay_kw.update(min_labelled=200)
    agent_fields = {f.name: f for f in dataclasses.fields(DrQConfig)}
    replay_fields = {f.name: f for f in dataclasses.fields(ReplayConfig)}
    for item in args.set:
        name, _, text = item.partition('=')
        target, fields = ((agent_kw, agent_fields) if name in agent_fields
                          else (replay_kw, replay_fields))
        if name not in fields:
            raise SystemExit(f'--set: unknown field {name!r}')
        default = fields[name].default
        target[name] = (tuple(type(default[0])(x) for x in text.split(','))
                        if isinstance(default, tuple) else type(default)(text))
    return DrQConfig(**agent_kw), ReplayConfig(**replay_kw)


class DelayedLabels:
    """Progress labels that reach the replay buffer late, jittered, sometimes twice or never."""

    def __init__(self, args: argparse.Namespace, rng: np.random.Generator) -> None:
        self._args, self._rng = args, rng
        self._queue: list[tuple[int, int, int, int, float, float]] = []
        self._count = 0

    def send(self, now_step: int, episode: int, step: int, progress: float, stamp: float,
             force: bool = False) -> None:
        """Queue the label of frame ``step`` (every ``label_stride``-th frame, or ``force``)."""
        a = self._args
        if not force and step % a.label_stride:
            return
        if self._rng.random() < a.label_drop_prob:
            return
        copies = 2 if self._rng.random() < a.label_duplicate_prob else 1
        for _ in range(copies):
            due = now_step + a.label_delay + int(self._rng.integers(0, a.label_jitter + 1))
            self._count += 1
            heapq.heappush(self._queue, (due, self._count, episode, step, progress, stamp))

    def deliver(self, now_step: int, replay: ReplayBuffer) -> None:
        while self._queue and self._queue[0][0] <= now_step:
            _, _, episode, step, progress, stamp = heapq.heappop(self._queue)
            replay.label(episode, step, progress, stamp)


def evaluate(robot: Any, agent: DrQAgent, config: DrQConfig, episodes: int,
             episode_steps: int) -> dict[str, float]:
    """Run the deterministic policy (mu) for ``episodes`` episodes.

    The variations are the same every time (reset seeds ``EVAL_SEED + i``); success = success at
    any step of the episode.
    """
    successes, final_progress = [], []
    for i in range(episodes):
        obs = robot.reset(seed=EVAL_SEED + i)
        success, progress = False, 0.0
        for _ in range(episode_steps):
            action = agent.act(observe(obs, config), explore=False)
            obs, info = robot.step(action)
            success, progress = success or bool(info.success), float(info.progress)
            if info.truncated:
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


def train_seed(args: argparse.Namespace, episode: int) -> int:
    """Reset seed of training episode ``episode``, disjoint from the evaluation seeds."""
    return args.seed * 100_000 + episode


def observe(obs: Any, config: DrQConfig) -> dict[str, np.ndarray]:
    """Build the agent's observation from a simulator observation.

    State variant: the simulator's 39-d state (object and goal poses included). Pixels: the
    cameras plus robot-only proprioception, joint positions then velocities (as the node).
    """
    state = obs.state
    if config.variant == 'pixels':
        state = np.concatenate([obs.joint_positions, obs.joint_velocities])
    return prepare_observation(state, {'external': obs.external, 'wrist': obs.wrist}, config)


def make_robot(task: str, args: argparse.Namespace, config: DrQConfig, seed: int) -> Any:
    return MetaWorldRobot(SimConfig(
        task=task, render=config.variant == 'pixels', seed=seed,
        max_episode_steps=args.episode_steps, image_width=args.image_size,
        image_height=args.image_size, action_repeat=args.action_repeat))


@dataclasses.dataclass
class Counters:
    """Loop counters the learner node would also keep (and checkpoint)."""

    env_steps: int = 0
    learning_steps: int = 0  # environment steps since the replay became ready
    episodes: int = 0


def run_task(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one agent on ``task`` for ``args.steps`` environment steps; return the record."""
    config, replay_config = build_configs(args)
    rng = np.random.default_rng(args.seed)
    robot = make_robot(task, args, config, args.seed)
    state_dim = observe(robot.reset(seed=0), config)['state'].size
    agent = DrQAgent(config, state_dim, action_dim=4)
    keys = config.image_keys if config.variant == 'pixels' else ()
    replay = ReplayBuffer(replay_config, state_dim, 4, keys, config.image_size, config.n_step,
                          config.discount)
    labels = DelayedLabels(args, rng)
    counters = Counters()
    returns: collections.deque = collections.deque(maxlen=10)
    start = time.monotonic()

    def evaluation(episodes: int) -> dict[str, Any]:
        stats = replay.stats()
        point = {'env_steps': counters.env_steps, 'updates': agent.updates,
                 'eval_episodes': episodes,
                 **evaluate(robot, agent, config, episodes, args.episode_steps),
                 'wall_s': round(time.monotonic() - start, 1),
                 'train_return': float(np.mean(returns)) if returns else 0.0,
                 'labelled_share': stats['labelled_share'],
                 'labels_duplicate': stats['labels_duplicate']}
        print(f'[{task} {config.variant}] ' + ' '.join(
            f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}' for k, v in point.items()),
            flush=True)
        return point

    curve = [evaluation(args.eval_episodes)]   # the untrained policy
    obs = robot.reset(seed=train_seed(args, 0))
    next_eval = args.eval_every
    # whole episodes only, never more than args.steps environment steps (at least one episode)
    while counters.env_steps == 0 or counters.env_steps + args.episode_steps <= args.steps:
        returns.append(run_episode(robot, obs, agent, replay, labels, config, args, counters))
        done = counters.env_steps + args.episode_steps > args.steps
        if counters.env_steps >= next_eval or done:
            next_eval += args.eval_every
            curve.append(evaluation(args.final_eval_episodes if done else args.eval_episodes))
        obs = robot.reset(seed=train_seed(args, counters.episodes))
    robot.close()
    final = curve[-1]
    return {'task': task, 'variant': config.variant, 'env_steps': counters.env_steps,
            'episode_steps': args.episode_steps, 'success_rate': final['success_rate'],
            'eval_episodes': args.final_eval_episodes, 'wall_s': final['wall_s'],
            'action_repeat': args.action_repeat,
            'simulator_steps': counters.env_steps * args.action_repeat,
            'final_progress': final['final_progress'],
            'updates': agent.updates, 'curve': curve, 'replay': replay.stats(),
            'label_delay_steps': args.label_delay, 'label_jitter_steps': args.label_jitter,
            'label_stride': args.label_stride, 'config': dataclasses.asdict(config),
            'replay_config': dataclasses.asdict(replay_config),
            'random_policy_success': random_policy_success(task, args)}


def run_episode(robot: Any, obs: Any, agent: DrQAgent, replay: ReplayBuffer,
                labels: DelayedLabels, config: DrQConfig, args: argparse.Namespace,
                counters: Counters) -> float:
    """One exploring episode (act, store, queue and deliver labels, update); its return."""
    episode, total, progress = counters.episodes, 0.0, 0.0  # progress at reset is 0
    for t in range(args.episode_steps + 1):
        stamp = counters.env_steps * CONTROL_PERIOD_S
        o = observe(obs, config)
        last = t == args.episode_steps
        action = None if last else agent.act(o, explore=True)
        replay.add(episode, t, o, action, stamp)
        labels.send(counters.env_steps, episode, t, progress, stamp, force=last)
        labels.deliver(counters.env_steps, replay)
        if last:
            break
        obs, info = robot.step(action)
        counters.env_steps += 1
        progress = float(info.progress)
        total += progress / 100.0
        if replay.ready():
            counters.learning_steps += 1
            for _ in range(agent.updates_due(counters.learning_steps)):
                agent.update(replay.sample(config.batch_size))
    counters.episodes += 1
    return total


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
    model = platform.processor() or 'unknown'
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            model = next(line.split(':', 1)[1].strip() for line in f
                         if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'cpu_cores': os.cpu_count(), 'cpu_model': model, 'machine': platform.machine(),
            'torch': torch.__version__, 'torch_threads': torch.get_num_threads(),
            'python': sys.version.split()[0]}


def write_table(runs: list[dict[str, Any]], path: Path) -> None:
    lines = ['| task | variant | env steps (action repeat) | success (eval episodes) | '
             'final-step progress | random policy | updates | wall time |',
             '|---|---|---|---|---|---|---|---|']
    for r in runs:
        lines.append(f"| {r['task']} | {r['variant']} | {r['env_steps']} "
                     f"({r.get('action_repeat', 1)}) | {r['success_rate']:.0%} "
                     f"({r['eval_episodes']}) | {r.get('final_progress', float('nan')):.0f} % | "
                     f"{r.get('random_policy_success', float('nan')):.0%} | {r['updates']} | "
                     f"{r['wall_s'] / 60:.1f} min |")
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
    records = [run_task(task, args) for task in args.tasks]
    write_outputs(records, args.out)
    for r in records:
        print(f"{r['task']} {r['variant']}: success {r['success_rate']:.0%} after "
              f"{r['env_steps']} steps in {r['wall_s'] / 60:.1f} min")
    return 0


if __name__ == '__main__':
    sys.exit(main())
