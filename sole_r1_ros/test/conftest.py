"""Shared fixtures and markers: ROS tests run in a private context on an isolated DDS domain."""
import os
import random

import pytest

# One random domain per test session, localhost only, so parallel CI jobs and other sessions on
# the machine never see each other's topics.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(10, 200)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', os.environ['MUJOCO_GL'])


def pytest_configure(config):
    for marker in ('rostest: needs launch_ros / launch_testing (ROS install or Docker)',
                   'slow: takes more than a few seconds',
                   'linter: static checks (flake8, pep257, copyright, xmllint)'):
        config.addinivalue_line('markers', marker)


def pytest_runtest_logreport(report):
    """Print a failure the moment it happens.

    The summary comes at the end of the run, and a crash later in the run (one fresh-clone
    ``make test`` ended in a segfault right after a failure) would take it along.
    """
    if report.failed:
        import sys
        sys.stderr.write(f'\nFAILED {report.nodeid} ({report.when}):\n{report.longreprtext}\n')
        sys.stderr.flush()


@pytest.fixture
def ros_context():
    """A private rclpy context, shut down after the test (ros2/rclpy test pattern)."""
    import gc

    rclpy = pytest.importorskip('rclpy')
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        # Finalize what the test left in reference cycles now, on this thread, while the
        # context is still up: collected later, a leftover node is finalized on whichever
        # thread the collector interrupts (the segfault of one fresh-clone make test), and
        # finalized after the shutdown, its DDS participant is destroyed from a context that
        # is gone, where Fast DDS waited forever for a discovery callback (the hang of
        # another, 2026-12-02). The learner node freezes the heap when it activates (a
        # collection of its start-up heap stalled the control loop); unfrozen here, or nothing
        # a test left behind would ever be collected.
        gc.unfreeze()
        gc.collect()
        rclpy.try_shutdown(context=context)


class RosGraph:
    """Nodes of one private context spinning on a multi-threaded executor in a thread."""

    def __init__(self, context) -> None:
        import threading

        from rclpy.executors import MultiThreadedExecutor
        self.context = context
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._stop = threading.Event()
        self._nodes = []
        self.error: Exception | None = None

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            # spin_once in a loop that a flag ends, as nodes.spin.BackgroundSpinner does: rclpy's
            # Executor.shutdown does not wait for spin() and destroys the executor's guard
            # condition under it (InvalidHandle in this thread, seen in teardowns).
            while not self._stop.is_set() and self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:  # the context was shut down while spinning
            pass
        except Exception as exc:  # a callback raised: record it so the test can fail on it
            self.error = exc
            raise

    def add(self, node):
        self._nodes.append(node)
        self.executor.add_node(node)
        if not self._thread.is_alive():
            self._thread.start()
        return node

    def probe(self, name: str = 'probe'):
        """A plain node in this context for publishing, subscribing and calling services."""
        from rclpy.node import Node
        return self.add(Node(name, context=self.context))

    def action_client(self, action_type, action_name: str, node_name: str = 'action_probe'):
        """An action client on a node of its own, made before that node spins.

        rclpy's ``ActionClient.__init__`` adds itself to the node's waitables before it sets its
        lock (rclpy/action/client.py, Kilted wheel): made on a node the executor already spins,
        the executor's thread can ask it for its entities first and raise AttributeError
        '_lock' (one CI run, 2026-12-03), which ends the graph's spinning. Fixed upstream
        (ros2/rclpy#1589), not in the wheel we run.
        """
        from rclpy.action import ActionClient
        from rclpy.node import Node
        node = Node(node_name, context=self.context)
        client = ActionClient(node, action_type, action_name)
        self.add(node)
        return client

    @staticmethod
    def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return bool(predicate())

    def call(self, client, request, timeout: float = 30.0):
        """Call a service from the test thread while the executor serves it."""
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'service {client.srv_name} not available')
        future = client.call_async(request)
        if not self.wait_for(future.done, timeout):
            raise TimeoutError(f'service {client.srv_name} did not answer')
        return future.result()

    def shutdown(self) -> None:
        # The spinning thread may still hold the nodes in its wait set; a node destroyed while
        # in use is only destroyed when let go, possibly after the context is shut down.
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30.0)
        # Let the worker threads finish the callbacks already handed to them before the
        # executor destroys its guard condition: Executor.shutdown (Kilted wheel) never waits
        # for them (its wait sits under `if not self._is_shutdown`, just set True), and a
        # callback ending after that raises InvalidHandle from `gc.trigger()` in a task nobody
        # reads ("The following exception was never retrieved: cannot use Destroyable ..." at
        # teardown). Upstream: ros2/rclpy#1666, open.
        self.executor._executor.shutdown(wait=True)
        self.executor.shutdown(timeout_sec=2.0)
        for node in self._nodes:
            node.destroy_node()


@pytest.fixture
def ros_graph(ros_context):
    graph = RosGraph(ros_context)
    try:
        yield graph
    finally:
        graph.shutdown()
    if graph.error is not None:
        raise AssertionError(f'a callback raised while spinning: {graph.error!r}')
