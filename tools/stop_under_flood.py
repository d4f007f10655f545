"""Stop a spinning node with SIGINT, again and again, while a publisher floods it.

Reproduces the learner's exit 1 at the end of a demo (a signal handled inside rclpy's
``take_message``) and checks the fix: every stop must exit 0. Usage, after ``. ./env.sh``::

    python tools/stop_under_flood.py --runs 40
    git show 9a573fd:sole_r1_ros/sole_r1_ros/nodes/spin.py > /tmp/spin_old.py
    python tools/stop_under_flood.py --runs 40 --spin /tmp/spin_old.py   # before the fix: 4 of 40
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

from spin_under_test import LOAD_SPIN   # beside this file

_PUBLISHER = textwrap.dedent('''
    import rclpy
    from sensor_msgs.msg import JointState
    rclpy.init()
    node = rclpy.create_node('flood')
    publisher = node.create_publisher(JointState, 'flood', 1000)
    message = JointState(name=[f'j{i}' for i in range(7)], position=[0.0] * 7)
    while rclpy.ok():
        try:
            publisher.publish(message)
        except Exception:    # 'cannot publish data' while a subscriber goes away: go on
            pass
''')

_SUBSCRIBER = LOAD_SPIN + textwrap.dedent('''
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    def make():
        node = Node('flooded')
        node.taken = 0

        def count(message):
            node.taken += 1
        node.subscription = node.create_subscription(JointState, 'flood', count, 1000)
        return node

    spin.run_node(make, args=[], on_exit=lambda node: print('taken', node.taken, flush=True))
''')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=40, help='stops to try')
    parser.add_argument('--spin', default='', help='a spin.py to test instead of ours')
    args = parser.parse_args()
    env = dict(os.environ, ROS_DOMAIN_ID=str(os.getpid() % 100 + 101))
    publisher = subprocess.Popen([sys.executable, '-c', _PUBLISHER], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failed = flowing = 0
    try:
        for run in range(args.runs):
            node = subprocess.Popen([sys.executable, '-c', _SUBSCRIBER, args.spin], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(3.0 + random.random())        # start-up, discovery, then messages flow
            node.send_signal(signal.SIGINT)
            output, _ = node.communicate(timeout=30)
            flowing += 'taken 0' not in output and 'taken' in output
            if node.returncode != 0:
                failed += 1
                print(f'run {run}: exit {node.returncode}: {output.strip().splitlines()[-1]}')
    finally:
        publisher.kill()
    print(f'exit != 0 in {failed} of {args.runs} stops ({flowing} with messages flowing)')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
