"""Send SIGINT to a node in a slow start-up, again and again, with the CPUs busy.

Reproduces CI's timeout in ``test_spin`` (the kernel handed the signal to a DDS thread, and the
main thread's 30 s sleep ran to its end) and checks the fix, ``run_node``'s re-send to the main
thread: every stop must come within seconds. Usage, after ``. ./env.sh``::

    python tools/signal_during_start_up.py --runs 80
    git show bca98ff:sole_r1_ros/sole_r1_ros/nodes/spin.py > /tmp/spin_old.py
    python tools/signal_during_start_up.py --runs 80 --spin /tmp/spin_old.py   # before: 3-5 of 80
"""
import argparse
import os
import signal
import subprocess
import sys
import textwrap

from spin_under_test import LOAD_SPIN   # beside this file

_NODE = LOAD_SPIN + textwrap.dedent('''
    import time
    from rclpy.node import Node

    def make():
        print('starting', flush=True)
        time.sleep(30)                  # a slow configure: a model loading
        return Node('never')

    spin.run_node(make)
    print('returned', flush=True)
''')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=80)
    parser.add_argument('--busy', type=int, default=3, help='busy-looping processes beside it')
    parser.add_argument('--timeout', type=float, default=8.0, help='seconds a stop may take')
    parser.add_argument('--spin', default='', help='a spin.py to test instead of ours')
    args = parser.parse_args()
    env = dict(os.environ, ROS_DOMAIN_ID='150', ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               PYTHONUNBUFFERED='1')
    busy = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
            for _ in range(args.busy)]
    hung = 0
    try:
        for run in range(args.runs):
            node = subprocess.Popen([sys.executable, '-c', _NODE, args.spin], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert node.stdout.readline().strip() == 'starting'
            node.send_signal(signal.SIGINT)
            try:
                node.communicate(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                hung += 1
                node.kill()
                node.communicate()
            print(f'\r{run + 1} stops, {hung} took longer than {args.timeout:g} s', end='',
                  flush=True)
    finally:
        for process in busy:
            process.kill()
    print()
    sys.exit(1 if hung else 0)


if __name__ == '__main__':
    main()
