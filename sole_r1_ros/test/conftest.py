"""Shared fixtures and markers: ROS tests run in a private context on an isolated DDS domain."""
import os
import random
import shutil
import tempfile

import pytest


def _domains() -> tuple[int, int]:
    """This test process's ROS domain, and the domain of the runs its tests start.

    One random domain per test session (or the ROS_DOMAIN_ID given), localhost only, so that
    parallel CI jobs and other sessions on the machine never see each other's topics. Under
    pytest-xdist each worker takes one of the next ones up (the session's is inherited), and
    the processes a test starts (``sole-r1 learn``, a launch) 101 away from their worker's, so
    that no two of one session share a graph. All are 1-232, the domains ROS 2 takes on Linux.
    """
    given = os.environ.get('ROS_DOMAIN_ID', '').strip()
    if given and not (given.isdigit() and int(given) <= 232):
        raise SystemExit(f'ROS_DOMAIN_ID must be a number from 0 to 232, got {given!r}')
    session = int(given) if given else random.Random(os.getpid()).randint(10, 110)
    worker = os.environ.get('PYTEST_XDIST_WORKER', '')   # 'gw0', 'gw1', ... under pytest -n
    own = 1 + (session + int(worker[2:])) % 232 if worker.startswith('gw') else session
    return own, own + 101 if own + 101 <= 232 else own - 101


DOMAIN_ID, CHILD_DOMAIN_ID = _domains()
os.environ['ROS_DOMAIN_ID'] = str(DOMAIN_ID)
os.environ['SOLE_R1_TEST_CHILD_DOMAIN_ID'] = str(CHILD_DOMAIN_ID)   # read by _child_env()s
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', os.environ['MUJOCO_GL'])
# rcl's log files of the test processes and the runs they start go to one folder of this
# session, removed at its end: in ~/.ros/log they were never removed (6,987 files on this
# machine, 2026-12-08). xdist's workers inherit it from the controller, which removes it.
_OWN_ROS_LOG_DIR = None
if not os.environ.get('ROS_LOG_DIR'):
    _OWN_ROS_LOG_DIR = os.environ['ROS_LOG_DIR'] = tempfile.mkdtemp(prefix='sole_r1_ros_rcl_')


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
    if report.failed and not os.environ.get('PYTEST_XDIST_WORKER'):   # the controller says it
        import sys
        sys.stderr.write(f'\nFAILED {report.nodeid} ({report.when}):\n{report.longreprtext}\n')
        sys.stderr.flush()


_WORKER_ERRORS: list[str] = []


def pytest_internalerror(excrepr, excinfo):
    """Keep a pytest-xdist worker's internal error, whose cause its report prints first.

    The controller prints the worker's traceback and then its own, longer one; a log cut to
    its last lines (CI's) kept neither the worker's exception nor where it was raised.
    """
    text = str(excinfo.value)
    if not os.environ.get('PYTEST_XDIST_WORKER') and text.startswith('Traceback'):
        _WORKER_ERRORS.append(text)


def pytest_unconfigure(config):
    """Print the last lines of each worker's internal error as the run's last words."""
    import sys
    for text in _WORKER_ERRORS:
        lines = text.rstrip().splitlines()
        if lines and lines[-1].strip() == 'assert False':   # xdist re-raises it as an assert
            lines.pop()
        tail = '\n'.join(line.removeprefix('  ') for line in lines[-30:])
        sys.stderr.write(f'\nA test worker stopped on an internal error, whose last lines '
                         f'were:\n{tail}\n')
    sys.stderr.flush()
    if _OWN_ROS_LOG_DIR and not os.environ.get('PYTEST_XDIST_WORKER'):
        shutil.rmtree(_OWN_ROS_LOG_DIR, ignore_errors=True)


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
    """Nodes of one private context, each spinning on its own single-threaded executor.

    As in a launched graph, where every node is a process with a single-threaded executor
    (``nodes.spin``): a node's callbacks run one at a time, and a node that blocks in one
    holds up no other. One ``MultiThreadedExecutor`` for all nodes, as this class had before,
    starved the simulator's physics thread: its spinning thread (rclpy, Kilted wheel) kept
    one core busy and the sim's 20 Hz ticks came with gaps of 1-3 s (2026-12-06; a
    single-threaded executor: none over 0.06 s), the flaky 10 Hz test's cause.
    """

    def __init__(self, context) -> None:
        self.context = context
        self._spinners = {}   # node -> (executor, thread, stop event), in the order added
        self.error: Exception | None = None

    def _spin(self, executor, stop) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            # spin_once in a loop that a flag ends, as nodes.spin.BackgroundSpinner does: rclpy's
            # Executor.shutdown does not wait for spin() and destroys the executor's guard
            # condition under it (InvalidHandle in this thread, seen in teardowns).
            while not stop.is_set() and self.context.ok():
                executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:  # the context was shut down while spinning
            pass
        except Exception as exc:  # a callback raised: record it so the test can fail on it
            self.error = exc
            raise

    def add(self, node):
        import threading

        from rclpy.executors import SingleThreadedExecutor
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(node)
        stop = threading.Event()
        thread = threading.Thread(target=self._spin, args=(executor, stop), daemon=True,
                                  name=f'spin {node.get_name()}')
        self._spinners[node] = (executor, thread, stop)
        thread.start()
        return node

    def remove(self, node) -> None:
        """Stop spinning ``node`` (its callbacks no longer run); the test destroys it."""
        executor, thread, stop = self._spinners.pop(node)
        stop.set()
        thread.join(timeout=30.0)
        executor.shutdown(timeout_sec=2.0)

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
        # A spinning thread may still hold its node in its wait set; a node destroyed while
        # in use is only destroyed when let go, possibly after the context is shut down.
        for _, _, stop in self._spinners.values():
            stop.set()
        for executor, thread, _ in self._spinners.values():
            if thread.is_alive():
                thread.join(timeout=30.0)
            executor.shutdown(timeout_sec=2.0)
        for node in self._spinners:
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
