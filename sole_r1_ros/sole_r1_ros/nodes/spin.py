"""The one ``main`` every node shares: init, build, (auto-)activate, spin, clean up."""
import signal
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_node(make_node: Callable, args: list[str] | None = None,
             on_exit: Callable | None = None) -> None:
    """Spin the node ``make_node()`` builds on a multi-threaded executor until shutdown.

    A lifecycle node whose ``autostart`` parameter is true is configured and activated first
    (launch files set it false and drive the transitions themselves). SIGINT and SIGTERM end
    the spin while the context is still valid, so ``on_exit(node)`` can still publish - stop a
    robot - and write a checkpoint before the node is destroyed. (rclpy's own handler would
    shut the context down first, and a last command could no longer be sent.)
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    node = None
    try:
        node = make_node()
        if node.has_parameter('autostart') and node.get_parameter('autostart').value:
            node.trigger_configure()
            node.trigger_activate()
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.2)   # back in Python often enough for signals
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not cut cleanup
        if node is not None:
            if on_exit is not None:
                on_exit(node)
            node.destroy_node()
        rclpy.try_shutdown()
