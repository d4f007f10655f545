"""``sole-r1 record``: record images, rewards and reasoning to a bag until Ctrl-C (no ros2 CLI)."""
import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='', help='bag folder to create (default: '
                        'bags/sole_r1_<date-time>)')
    parser.add_argument('--namespace', default='', help='namespace of the robot to record')
    parser.add_argument('--topics', nargs='*', metavar='NAME=TYPE',
                        help="topics as 'name=pkg/msg/Type' (default: cameras, progress, "
                        'reward image, episodes, joint states, pose, ground truth, commands)')
    parser.add_argument('--params-file', metavar='YAML',
                        help="a learning run's parameters (e.g. real_robot_joint.yaml, a "
                        'package config name or a path): its recorder_node.extra_topics and the '

                        "learner's command and gripper topics are recorded too, as the launch "
                        'files and sole-r1 learn record them')
    parser.add_argument('--seconds', type=float, default=0.0,
                        help='stop after this long (0: until Ctrl-C)')


def run(args: argparse.Namespace) -> int:
    """Record until the time is up, Ctrl-C or SIGTERM (docker stop, systemd), then close the bag.

    rclpy's own SIGTERM handler shut its context down and left this loop waiting for good,
    the bag without its metadata; the signals are this command's own here.
    """
    import signal
    import time

    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from sole_r1_ros.nodes.recorder_node import RecorderNode
    from sole_r1_ros.nodes.spin import BackgroundSpinner
    if not args.seconds >= 0:
        raise ValueError(f'--seconds must be >= 0, got {args.seconds}')
    from sole_r1_ros.commands.learn import check_namespace
    namespace = check_namespace(args.namespace)
    overrides = [Parameter('bag_path', value=args.out)]
    if args.topics:
        overrides.append(Parameter('topics', value=list(args.topics)))
    if args.params_file:   # a joint trajectory or a gripper controller's commands were missed
        from sole_r1_ros.bringup import config_dir
        from sole_r1_ros.launch_utils import recorder_extra_topics
        path = args.params_file
        if not os.path.isfile(path) and os.path.isfile(config_dir() / path):
            path = str(config_dir() / path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'--params-file {args.params_file!r}: no such file, nor a '
                                    f'config file of the package ({config_dir()})')
        topics = recorder_extra_topics(path, namespace=namespace, root_anywhere=True)
        overrides.append(Parameter('extra_topics', value=topics))
    stop = []
    previous = {s: signal.signal(s, lambda signum, _: stop.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        # not recorder_node: beside a run's own recorder in this namespace, two nodes of one
        # name, and the run's monitor read the other's bag status as its own
        node = RecorderNode(node_name='bag_recorder', namespace=namespace,
                            parameter_overrides=overrides)
        deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
        with BackgroundSpinner(node):
            while not stop and (deadline is None or time.monotonic() < deadline):
                time.sleep(0.1)
    finally:
        if node is not None:
            node.destroy_node()   # closes the bag with its metadata
            print(f'wrote {node.writer.count} messages to {node.writer.path}')
        rclpy.try_shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
