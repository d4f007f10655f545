"""``sole-r1 learn``: the whole loop in one process, for machines without ``ros2 launch``.

The same nodes and YAML as ``sim_learn.launch.py`` / ``real_robot_learn.launch.py``; a progress
bar with a live summary; a run directory with checkpoints, a bag, learning curves, evaluation
results and a video of the final policy. ``--resume`` continues a run; Ctrl-C stops the robot,
saves a checkpoint and exits cleanly.
"""
import argparse
import json
from pathlib import Path
import time

_SHARE = Path(__file__).resolve().parents[2] / 'config'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--goal', required=True, help='the task in words')
    where = parser.add_mutually_exclusive_group()
    where.add_argument('--sim', metavar='TASK', help='Meta-World task id (default '
                       'drawer-close-v3 unless --real)')
    where.add_argument('--real', action='store_true', help='a real robot on this ROS graph')
    parser.add_argument('--reward', help='reward backend: compact (CPU default), transformers '
                        '(SOLE-R1-8B), openai (vllm serve), oracle (simulator ground truth, '
                        'evaluation only)')
    parser.add_argument('--model', help='checkpoint folder / served model name')
    parser.add_argument('--steps', type=int, default=20000, help='environment steps to learn')
    parser.add_argument('--minutes', type=float, default=0.0,
                        help='stop learning after this long even if --steps is not reached '
                        '(0: no time limit)')
    parser.add_argument('--run-dir', default='runs/learn', help='everything of the run goes here')
    parser.add_argument('--resume', action='store_true', help='continue the run in --run-dir')
    parser.add_argument('--params-file', help='YAML (default: config/sim_learn.yaml or '
                        'config/real_robot_learn.yaml)')
    parser.add_argument('--eval-episodes', type=int, default=10,
                        help='deterministic episodes at the end (0: none)')
    parser.add_argument('--no-record', action='store_true', help='do not write a bag')
    parser.add_argument('--namespace', default='')
    parser.add_argument('--set', nargs='*', default=[], metavar='NODE.PARAM=VALUE',
                        help='override a parameter, e.g. learner_node.episode_length=50')


def _parse_value(text: str):
    import yaml
    return yaml.safe_load(text)


def _params(args: argparse.Namespace) -> dict:
    from sole_r1_ros.bringup import load_params
    default = 'real_robot_learn.yaml' if args.real else 'sim_learn.yaml'
    params = load_params(args.params_file or str(_SHARE / default))
    run_dir = Path(args.run_dir)
    params.setdefault('reward_node', {})['goal'] = args.goal
    params.setdefault('learner_node', {})['run_dir'] = str(run_dir)
    params['learner_node']['resume'] = bool(args.resume)
    if not args.real:
        params.setdefault('sim_robot_node', {})['task'] = args.sim or 'drawer-close-v3'
    if args.reward:
        params['reward_node']['backend'] = args.reward
        if args.reward == 'oracle':
            params.setdefault('camera_node', {})['use_ground_truth'] = True
    if args.model is not None:
        params['reward_node']['model'] = args.model
    for item in args.set:
        key, _, value = item.partition('=')
        node, _, name = key.partition('.')
        if not node or not name or not _:
            raise ValueError(f'--set wants NODE.PARAM=VALUE, got {item!r}')
        params.setdefault(node, {})[name] = _parse_value(value)
    return params


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from tqdm import tqdm

    from sole_r1_ros.bringup import Graph
    from sole_r1_ros.nodes.run_monitor import RunMonitorNode
    run_dir = Path(args.run_dir)
    if (run_dir / 'checkpoints').exists() and not args.resume:
        raise ValueError(f'{run_dir} already holds a run: pass --resume to continue it, or '
                         'choose a new --run-dir (nothing is overwritten)')
    params = _params(args)
    run_dir.mkdir(parents=True, exist_ok=True)
    session = 1 + len(list(run_dir.glob('bag-*')))
    (run_dir / f'params-{session:03d}.json').write_text(json.dumps(params, indent=2))
    record = None if args.no_record else str(run_dir / f'bag-{session:03d}')
    # Our own Ctrl-C handling: rclpy's handler would shut the context down before the robot
    # is stopped and the checkpoint written.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    graph = Graph(params, sim=not args.real, record_path=record, namespace=args.namespace)
    monitor = RunMonitorNode(run_dir / 'episodes.jsonl', namespace=args.namespace)
    graph.add(monitor)
    interrupted, return_code = False, 0
    try:
        graph.start()
        learner = graph.learner.learner
        start_steps = learner.env_steps
        if start_steps:
            print(f'resumed {run_dir}: {start_steps} steps, {learner.episodes_done} episodes')
        with tqdm(total=args.steps, initial=min(start_steps, args.steps), unit='step',
                  desc='learning', dynamic_ncols=True) as bar:
            deadline = time.monotonic() + 60.0 * args.minutes if args.minutes > 0 else None
            while learner.env_steps < args.steps and (deadline is None
                                                      or time.monotonic() < deadline):
                time.sleep(0.5)
                bar.update(min(learner.env_steps, args.steps) - bar.n)
                bar.set_postfix_str(monitor.summary(learner), refresh=False)
        graph.learner.save_checkpoint()
        if args.eval_episodes > 0:
            _evaluate(graph, monitor, run_dir, args.eval_episodes)
    except RuntimeError as exc:   # a node failed to configure; the reason is logged above
        print(f'sole-r1 learn: error: {exc}')
        return_code = 2
    except KeyboardInterrupt:
        interrupted = True
        print('\ninterrupted: stopping the robot and saving a checkpoint')
    finally:
        graph.stop()
        monitor.close()
        rclpy.try_shutdown()
        _plot(run_dir, args.goal)
    print(f'run directory: {run_dir}')
    return 130 if interrupted else return_code


def _evaluate(graph, monitor, run_dir: Path, episodes: int) -> None:
    from rclpy.action import ActionClient

    from sole_r1_interfaces.action import Evaluate
    client = ActionClient(monitor, Evaluate, 'learner_node/evaluate')
    if not client.wait_for_server(timeout_sec=10.0):
        print('evaluation skipped: the learner offers no evaluate action')
        return
    monitor.start_video(run_dir / 'final_policy.mp4')
    goal = client.send_goal_async(Evaluate.Goal(episodes=episodes, progress_threshold=90.0))
    while not goal.done():
        time.sleep(0.1)
    result_future = goal.result().get_result_async()
    while not result_future.done():
        time.sleep(0.2)
    monitor.stop_video()
    result = result_future.result().result
    report = {'episodes': result.episodes_done,
              'success_rate_progress': result.success_rate_progress,
              'success_rate_ground_truth': result.success_rate_ground_truth,
              'mean_final_progress': result.mean_final_progress,
              'final_progress': list(result.final_progress),
              'success_ground_truth': list(result.success_ground_truth)}
    (run_dir / 'evaluation.json').write_text(json.dumps(report, indent=2))
    print(f'evaluation over {result.episodes_done} episodes: success '
          f'{100 * result.success_rate_ground_truth:.0f}% (simulator), '
          f'{100 * result.success_rate_progress:.0f}% (predicted progress >= 90%), '
          f'mean final progress {result.mean_final_progress:.0f}%')


def _plot(run_dir: Path, goal: str) -> None:
    from sole_r1_ros.viz.curves import plot_learning_curves
    if plot_learning_curves(run_dir / 'episodes.jsonl', run_dir / 'logs' / 'metrics.jsonl',
                            run_dir / 'learning_curves.png', title=goal):
        print(f"learning curves: {run_dir / 'learning_curves.png'}")
