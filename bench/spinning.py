"""How a bench spins the nodes it measures: as launched, or all on one multi-threaded executor."""
import contextlib
import threading

HOW = ('per-node', 'shared-multi')
HELP = ('per-node: each node on its own single-threaded executor, as launched (each node a '
        'process, nodes.spin); shared-multi: all on one MultiThreadedExecutor, as the benches '
        'did before 2026-12-06 (its spinning thread keeps a core busy: ros2/rclpy#1223)')


def spin(nodes, how: str, context=None) -> contextlib.ExitStack:
    """Start spinning ``nodes`` in background threads; close the returned stack to stop."""
    from rclpy.executors import MultiThreadedExecutor

    from sole_r1_ros.nodes.spin import BackgroundSpinner
    spinning = contextlib.ExitStack()
    if how == 'per-node':
        for node in nodes:
            spinning.enter_context(BackgroundSpinner(node, context=context))
    elif how == 'shared-multi':
        executor = MultiThreadedExecutor(num_threads=4, context=context)
        for node in nodes:
            executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        spinning.callback(executor.shutdown)
    else:
        raise ValueError(f'spin how {how!r}: one of {HOW}')
    return spinning
