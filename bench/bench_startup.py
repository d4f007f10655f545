"""How long ``sole-r1 learn`` takes to start and to stop, against importing what it imports.

Rows (medians over rounds; the rows take turns within each round, so that other load on a
shared machine hits them alike):

- ``learn``: ``sole-r1 learn`` on the demo's parameters (``config/demo.yaml``: drawer-close-v3,
  the shipped compact reward, pixels, the bag recorded), from the command to its nodes
  reporting (``learning`` on the terminal), to the first environment step counted, and from a
  Ctrl-C two seconds later to its exit;
- ``learn (TREE)``: the same from another checkout (``--tree``: its package first on the path
  of the runner and of every node, and its ``config/demo.yaml``; the message interfaces are
  the sourced install's), to compare a change with the code before it in one run;
- ``bare imports``: one process per node, started together, each importing only the libraries
  its node loads while it starts (``BARE``): the floor that a start of separate node
  processes cannot go under without sharing one interpreter.

    python bench/bench_startup.py                       # 3 rounds, about 2 minutes
    python bench/bench_startup.py --tree /tmp/wt-base   # and another checkout's start

Writes ``bench/results/startup.json`` and ``startup.md`` and prints the table.
"""
import argparse
import os
from pathlib import Path
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import results_io

RESULTS = Path(__file__).resolve().parent / 'results'
ROOT = Path(__file__).resolve().parents[1]
COMMAND = ['-m', 'sole_r1_ros.cli', 'learn', '--goal', 'close the drawer', '--sim',
           'drawer-close-v3', '--steps', '100000', '--baseline-episodes', '0',
           '--eval-episodes', '0']   # and the tree's --params-file config/demo.yaml
# What each node process imports before it reports (a py-spy profile of a start, 2026-12-07)
BARE = {
    'runner': 'import rclpy, yaml',
    'learner_node': 'import rclpy, torch, torch._dynamo, cv2',
    'reward_node': 'import rclpy, torch, cv2',
    'camera_node': 'import rclpy, cv2',
    'sim_robot_node': 'import rclpy, mujoco, metaworld',
    'recorder_node': 'import rclpy, rosbags.rosbag2',
}
_STEPS = re.compile(r'(\d+)/\d+ steps')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=3, help='rounds (median)')
    parser.add_argument('--tree', type=Path, default=None,
                        help='another checkout whose learn is timed too (its package first '
                             'on PYTHONPATH), e.g. a git worktree of the commit before')
    parser.add_argument('--out', type=Path, default=RESULTS)
    return parser.parse_args(argv)


def time_learn(tree: Path) -> dict:
    """One start, first step and Ctrl-C of ``sole-r1 learn`` from ``tree``'s package."""
    env = dict(os.environ, PYTHONUNBUFFERED='1',
               PYTHONPATH=os.pathsep.join([str(tree / 'sole_r1_ros'),
                                           os.environ.get('PYTHONPATH', '')]))
    with tempfile.TemporaryDirectory(prefix='bench_startup_') as folder:
        start = time.monotonic()
        params = tree / 'sole_r1_ros' / 'config' / 'demo.yaml'
        process = subprocess.Popen([sys.executable, *COMMAND, '--params-file', str(params),
                                    '--run-dir', f'{folder}/run'],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seen: dict[str, float] = {}
        lines: list[str] = []
        reader = threading.Thread(target=_read, args=(process, start, seen, lines),
                                  daemon=True)
        reader.start()
        deadline = start + 240
        while 'first_step' not in seen and process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                break
            time.sleep(0.05)
        if 'first_step' not in seen:
            process.wait()
            raise RuntimeError('sole-r1 learn took no step:\n' + '\n'.join(lines[-20:]))
        time.sleep(2.0)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stopped = time.monotonic() - sent
        reader.join(timeout=5)
        if process.returncode != 128 + signal.SIGINT:
            raise RuntimeError(f'sole-r1 learn exited {process.returncode} on Ctrl-C, not 130:\n'
                               + '\n'.join(lines[-20:]))
    return {'reported_s': seen['reported'], 'first_step_s': seen['first_step'],
            'stop_s': stopped, 'exit': process.returncode}


def _read(process: subprocess.Popen, start: float, seen: dict, lines: list) -> None:
    """Note when the terminal first says ``learning`` and first counts a step."""
    text = ''
    while True:
        chunk = process.stdout.read1(4096)
        if not chunk:
            return
        now = time.monotonic() - start
        text += chunk.decode(errors='replace')
        *done, text = re.split(r'[\r\n]', text)
        for line in done:
            lines.append(line)
            if line.startswith('learning'):
                seen.setdefault('reported', now)
                steps = _STEPS.search(line)
                if steps and int(steps.group(1)) > 0:
                    seen.setdefault('first_step', now)


def time_bare() -> dict:
    """The node processes' imports, all started together as the runner starts its nodes."""
    start = time.monotonic()
    children = [subprocess.Popen([sys.executable, '-c', code]) for code in BARE.values()]
    if any(child.wait() for child in children):
        raise RuntimeError('an import of BARE failed')
    return {'reported_s': time.monotonic() - start}


def _commit(tree: Path) -> str:
    """The commit a checkout is at (its path where it is not a git checkout)."""
    done = subprocess.run(['git', '-C', str(tree), 'rev-parse', '--short', 'HEAD'],
                          capture_output=True, text=True)
    return done.stdout.strip() or str(tree)


def table(doc: dict) -> str:
    lines = [f"`sole-r1 learn` start and stop, medians of {doc['rounds']} rounds "
             f"({doc['hardware']['cpu_cores']} cores, {doc['hardware']['cpu_model']})", '',
             '| row | nodes report s | first step s | Ctrl-C to exit s |', '|---|---|---|---|']
    for name, row in doc['rows'].items():
        cells = [f'{row[k]:.2f}' if k in row else '' for k in ('reported_s', 'first_step_s',
                                                               'stop_s')]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ways = {'learn': lambda: time_learn(ROOT), 'bare imports': time_bare}
    if args.tree is not None:
        ways[f'learn ({_commit(args.tree)})'] = lambda: time_learn(args.tree.resolve())
    load_before = results_io.load_average()
    runs: dict[str, list[dict]] = {name: [] for name in ways}
    for number in range(args.rounds):
        for name, way in ways.items():
            runs[name].append(way())
            print(f'round {number + 1}/{args.rounds} {name}: {runs[name][-1]}', flush=True)
    rows = {name: {key: statistics.median(r[key] for r in done) for key in done[0]
                   if key != 'exit'} for name, done in runs.items()}
    doc = {'hardware': results_io.hardware(), 'command': ' '.join([sys.executable] + sys.argv),
           'learn': ' '.join(['python', *COMMAND]), 'bare': BARE, 'rounds': args.rounds,
           'rows': rows, 'runs': runs, 'loadavg_before': load_before,
           'loadavg_after': results_io.load_average()}
    results_io.write_doc_and_table(args.out, 'startup', doc, table(doc))
    return 0


if __name__ == '__main__':
    sys.exit(main())
