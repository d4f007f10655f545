"""The learning loop's speed: the full ROS graph against the same parts called in one loop.

``graph``: the demo's graph as ``sole-r1 demo`` runs it (one process per node: simulator,
camera, reward with the compact model, learner, recorder), with config/demo.yaml; environment
steps per second are read from the learner's own counters on /diagnostics. ``bare``: the same
parts called directly in one loop with no ROS (``sim_loop``: the simulator, the camera node's
tiles and query schedule, the reward engine with the compact model, ``rl.ControlLoop`` and the
learner) and no recorder: the speed limit of the parts. Both run with learning off (updates
never start) and on (updates at the demo's update-to-data ratio). The policy acts from the first
step (no random seed steps), so every step pays for the network.

    python bench/bench_loop.py                      # both modes, learning off and on
    python bench/bench_loop.py --modes bare --seconds 30

Writes bench/results/loop.json (keys graph/bare x learning off/on, plus the ratios) and
bench/results/loop.md, and prints the table; a run of fewer modes or settings writes
loop_partial.json and .md instead (the ratios are of modes run side by side only). Each graph
run's folder (bag, checkpoints, logs; about 185 MB) is removed unless ``--keep``.
"""
import argparse
import datetime
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import results_io
from sole_r1_ros.bringup import check_params, config_dir, load_params, node_sections

RESULTS = Path(__file__).resolve().parent / 'results'
sys.path.insert(0, str(Path(__file__).resolve().parent))


def demo_params(task: str, learning: bool) -> dict:
    """config/demo.yaml with the bench's changes: no random seed steps, learning on or off."""
    params = load_params(config_dir() / 'demo.yaml')
    params['sim_robot_node']['task'] = task
    params['learner_node'].update({
        'agent.seed_steps': 0, 'checkpoint_every_s': 86400.0,
        'replay.min_labelled': 200 if learning else 10**9})
    return check_params(params)


def _config(node: str, section: str, params: dict):
    from sole_r1_ros.configuration import from_mapping, specs
    cls, prefix = node_sections(node)[section]
    names = {s.name for s in specs(cls)}
    values = {k[len(prefix):]: v for k, v in params.get(node, {}).items()
              if k.startswith(prefix) and k[len(prefix):] in names}
    return from_mapping(cls, values)


def run_bare(task: str, learning: bool, seconds: float, warmup_steps: int) -> dict:
    """The parts in one loop; steps/s after ``warmup_steps``."""
    import torch

    from sim_loop import DirectRewarder, DirectSimRobot
    from sole_r1_ros.allocator import keep_freed_memory
    from sole_r1_ros.reward import make_backend, RewardEngine
    from sole_r1_ros.rl import ControlLoop, OnlineLearner, prepare_observation
    from sole_r1_ros.sim import MetaWorldRobot, TASK_GOALS
    torch.set_num_threads(1)
    keep_freed_memory()   # as the learner and reward nodes do
    params = demo_params(task, learning)
    get = lambda node, section: _config(node, section, params)  # noqa: E731
    loop_config, agent = get('learner_node', 'loop'), get('learner_node', 'agent')
    sensing = get('learner_node', 'sensing')
    learner = OnlineLearner(agent, get('learner_node', 'replay'), sensing.state_dim(),
                            get('learner_node', 'command').action_dim)
    reward_config = get('reward_node', 'reward')
    rewarder = DirectRewarder(RewardEngine(make_backend(reward_config), reward_config),
                              TASK_GOALS[task], learner, get('camera_node', 'schedule'))
    robot = DirectSimRobot(MetaWorldRobot(get('sim_robot_node', 'sim')),
                           get('learner_node', 'command'), get('learner_node', 'safety'),
                           1.0 / loop_config.control_rate_hz, on_step=rewarder.frame)
    loop = ControlLoop(learner, robot, loop_config,
                       lambda s: prepare_observation(s.state, s.views, agent))
    start = None
    while True:
        loop.step()
        if learning:
            loop.learn()
        if start is None and learner.env_steps >= warmup_steps:
            start = (time.perf_counter(), learner.env_steps, learner.agent.updates)
        elif start is not None and time.perf_counter() - start[0] >= seconds:
            break
    elapsed = time.perf_counter() - start[0]
    robot.robot.close()
    return {'steps_per_s': round((learner.env_steps - start[1]) / elapsed, 2),
            'updates_per_s': round((learner.agent.updates - start[2]) / elapsed, 2),
            'seconds': round(elapsed, 1), 'reward_queries': rewarder.queries}


def run_graph(task: str, learning: bool, seconds: float, warmup_steps: int,
              keep: bool = False) -> dict:
    """The demo's graph, one process per node; steps/s from the learner's counters."""
    import shutil
    import rclpy

    from sole_r1_ros.bringup import NodeProcesses, write_params_file
    from sole_r1_ros.nodes.run_monitor import RunMonitorNode
    from sole_r1_ros.nodes.spin import BackgroundSpinner
    from sole_r1_ros.sim import TASK_GOALS
    run_dir = Path(tempfile.mkdtemp(prefix='bench_loop_'))
    params = demo_params(task, learning)
    params['learner_node']['run_dir'] = str(run_dir)
    params['reward_node']['goal'] = TASK_GOALS[task]
    params['recorder_node'] = {'bag_path': str(run_dir / 'bag')}
    write_params_file(run_dir / 'params.yaml', params)
    rclpy.init()
    monitor = RunMonitorNode(run_dir / 'episodes.jsonl')
    graph = NodeProcesses(['sim_robot_node', 'camera_node', 'reward_node', 'learner_node',
                           'recorder_node'], run_dir / 'params.yaml', run_dir / 'logs')
    steps = lambda: monitor.counter('learner_node', 'env_steps')  # noqa: E731
    updates = lambda: monitor.counter('learner_node', 'updates')  # noqa: E731
    try:
        with BackgroundSpinner(monitor):
            graph.start()
            try:
                deadline = time.monotonic() + 300
                while steps() < warmup_steps:
                    if graph.exited() or time.monotonic() > deadline:
                        raise RuntimeError(f'graph failed: {graph.exited()}\n'
                                           f"{graph.log_tail('learner_node')}")
                    time.sleep(0.2)
                first = (time.perf_counter(), steps(), updates())
                end = time.monotonic() + seconds
                while time.monotonic() < end:   # a node that dies in the window fails the run
                    if graph.exited():
                        raise RuntimeError(f'a node ended during the timed window: '
                                           f'{graph.exited()}\n{graph.log_tail("learner_node")}')
                    time.sleep(0.2)
                last = (time.perf_counter(), steps(), updates())
            finally:
                graph.stop()
    except BaseException:
        keep = True   # every node's log, not only the learner's tail the error quotes
        print(f'bench_loop: the graph run failed; its folder is kept: {run_dir}',
              file=sys.stderr)
        raise
    finally:
        monitor.close()
        monitor.destroy_node()
        rclpy.try_shutdown()
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    elapsed = last[0] - first[0]
    result = {'steps_per_s': round((last[1] - first[1]) / elapsed, 2),
              'updates_per_s': round((last[2] - first[2]) / elapsed, 2),
              'seconds': round(elapsed, 1)}
    return {**result, 'run_dir': str(run_dir)} if keep else result


def write_table(doc: dict, path: Path) -> str:
    # updates per step beside the rates: with learning on the graph's learner thread falls
    # behind the demo's ratio while the bare loop pays it in full, so steps/s alone flatters it
    lines = ['| loop | learning | env steps/s | updates/s | updates per step | graph / bare '
             '(steps/s) |', '|---|---|---|---|---|---|']
    for learning in ('off', 'on'):
        for mode in ('graph', 'bare'):
            entry = doc.get(f'{mode}_learning_{learning}')
            if entry:
                ratio = doc.get(f'ratio_learning_{learning}')
                per_step = (entry['updates_per_s'] / entry['steps_per_s']
                            if entry['steps_per_s'] else 0.0)
                lines.append(f"| {mode} | {learning} | {entry['steps_per_s']} | "
                             f"{entry['updates_per_s']} | {per_step:.2f} | "
                             f"{'' if mode == 'bare' or ratio is None else f'{ratio:.0%}'} |")
    lines.append('')
    lines.append(f"{doc['date']}, {doc['hardware']['cpu_cores']}-core "
                 f"{doc['hardware']['cpu_model']}, load average at start "
                 f"{doc['load_average_start']}, task {doc['task']}, config/demo.yaml with "
                 'seed_steps 0; graph: 5 processes, recorder on; bare: no ROS, no recorder.')
    text = '\n'.join(lines) + '\n'
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', default='drawer-close-v3')
    parser.add_argument('--modes', default='graph,bare')
    parser.add_argument('--learning', default='off,on')
    parser.add_argument('--seconds', type=float, default=60.0, help='timed seconds per run')
    parser.add_argument('--warmup-steps', type=int, default=400)
    parser.add_argument('--out', type=Path, default=RESULTS)
    parser.add_argument('--keep', action='store_true',
                        help="keep each graph run's folder (bag, checkpoints, logs) in /tmp")
    args = parser.parse_args(argv)
    os.environ.setdefault('MUJOCO_GL', 'egl')
    doc = {'date': datetime.datetime.now().isoformat(timespec='minutes'), 'task': args.task,
           'hardware': results_io.hardware(), 'load_average_start': os.getloadavg()[0],
           'git_commit': subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True,
                                        text=True).stdout.strip()}
    for learning in args.learning.split(','):
        for mode in args.modes.split(','):
            print(f'{mode}, learning {learning} ...', flush=True)
            doc[f'{mode}_learning_{learning}'] = (
                run_graph(args.task, learning == 'on', args.seconds, args.warmup_steps,
                          args.keep) if mode == 'graph' else
                run_bare(args.task, learning == 'on', args.seconds, args.warmup_steps))
            print(doc[f'{mode}_learning_{learning}'], flush=True)
        graph, bare = doc.get(f'graph_learning_{learning}'), doc.get(f'bare_learning_{learning}')
        if graph and bare:
            doc[f'ratio_learning_{learning}'] = round(graph['steps_per_s'] / bare['steps_per_s'],
                                                      3)
    for key, name in (('graph_steps_per_s', 'graph_learning_off'),
                      ('bare_steps_per_s', 'bare_learning_off'),
                      ('graph_steps_per_s_learning', 'graph_learning_on'),
                      ('bare_steps_per_s_learning', 'bare_learning_on')):
        if name in doc:
            doc[key] = doc[name]['steps_per_s']
    args.out.mkdir(parents=True, exist_ok=True)
    # The README cites loop.json: a run of some modes or settings went over it whole.
    whole = (set(args.modes.split(',')) == {'graph', 'bare'}
             and set(args.learning.split(',')) == {'off', 'on'})
    name = 'loop' if whole else 'loop_partial'
    (args.out / f'{name}.json').write_text(json.dumps(doc, indent=2))
    print(write_table(doc, args.out / f'{name}.md'))
    print(f"wrote {args.out / f'{name}.json'} and {args.out / f'{name}.md'}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
