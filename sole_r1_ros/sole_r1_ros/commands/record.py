"""``sole-r1 record``: record images, rewards and reasoning to a bag until Ctrl-C (no ros2 CLI)."""
import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='', help='bag folder to create (default: '
                        'bags/sole_r1_<date-time>)')
    parser.add_argument('--namespace', default='', help='namespace of the robot to record')
    parser.add_argument('--topics', nargs='*', metavar='NAME=TYPE',
                        help="topics as 'name=pkg/msg/Type' (default: cameras, progress, "
                        'reward image, episodes, joint states, pose, ground truth, commands)')
    parser.add_argument('--seconds', type=float, default=0.0,
                        help='stop after this long (0: until Ctrl-C)')


def run(args: argparse.Namespace) -> int:
    import time

    import rclpy
    from rclpy.parameter import Parameter

    from sole_r1_ros.nodes.recorder_node import RecorderNode
    from sole_r1_ros.nodes.spin import BackgroundSpinner
    if not args.seconds >= 0:
        raise ValueError(f'--seconds must be >= 0, got {args.seconds}')
    overrides = [Parameter('bag_path', value=args.out)]
    if args.topics:
        overrides.append(Parameter('topics', value=list(args.topics)))
    rclpy.init()
    node = None
    try:
        node = RecorderNode(namespace=args.namespace, parameter_overrides=overrides)
        deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
        with BackgroundSpinner(node):
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None:
            node.destroy_node()   # closes the bag with its metadata
            print(f'wrote {node.writer.count} messages to {node.writer.path}')
        rclpy.try_shutdown()
    return 0
