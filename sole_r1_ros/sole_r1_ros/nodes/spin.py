"""The one ``main`` every node shares: init, build, (auto-)activate, spin, clean up.

SIGINT and SIGTERM end the spin while the context is still valid, so ``on_exit(node)`` can still
publish (stop a robot) and write a checkpoint before the node is destroyed; rclpy's own handler
would shut the context down first. A second signal during that clean-up is ignored: the hold,
the checkpoint and a bag's metadata are never cut short.

While spinning, a signal only sets a flag that the loop reads between ``spin_once`` calls (at
most 0.2 s later). Raising from the handler there would land in whatever Python code runs at
that instant, e.g. a message's ``__init__`` called from rclpy's C++ ``take_message``, which
turns it into ``RuntimeError: Unable to convert call argument '0'`` (4 stops in 40 under a
message flood, ``tools/stop_under_flood.py``; a demo's learner exited 1 after a good run).
Before the spin loop (a slow configure), the handler still raises so start-up can be cut short.

The kernel hands a process's signal to any of its threads that does not block it, and rclpy's
and the DDS threads do not; Python then runs the handler only when the main thread next runs
bytecode. ``_WakeMainThread`` re-sends such a signal to the main thread, so a blocking call
there (a sleep, a wait in a slow configure) returns at once instead of running to its end.
"""
import contextlib
import logging
import os
import signal
import threading
import time
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

_LOG = logging.getLogger(__name__)


class Stop(BaseException):
    """Raised by our signal handler to leave the spin loop.

    A BaseException, like KeyboardInterrupt, so no callback's ``except Exception`` swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopRequest:
    """The SIGINT/SIGTERM handler: raise ``Stop`` before spinning, set a flag while spinning."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.raise_now = True

    def __call__(self, signum, frame) -> None:
        # Ignore further signals from here on: a second one must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.signum = signum
        if self.raise_now:
            raise Stop(signum)


class _WakeMainThread:
    """Re-send the first SIGINT/SIGTERM to the main thread, whichever thread the kernel chose.

    CPython writes the number of each signal it catches to the wakeup fd; this thread reads the
    first and ``pthread_kill``s the main thread with it, whose blocking system call then returns
    with EINTR and runs the handler. Measured before: a SIGINT during a 30 s sleep in start-up
    went to a DDS thread (strace) in 3 and 5 of 80 tries (two runs) on 2 busy cores, and the
    sleep ran to its end; 0 of 80 after (``tools/signal_during_start_up.py``). One re-send is
    enough: the handler ignores every signal after the first.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._forward, name='signal_forwarder',
                                        daemon=True)
        self._thread.start()

    def _forward(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        first = os.read(self._read, 1)
        if first:
            signal.pthread_kill(self._main, first[0])

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        os.close(self._write)               # a forwarder still reading gets b'' and ends
        self._thread.join(timeout=1.0)
        os.close(self._read)


class RosLogHandler(logging.Handler):
    """The ROS-free modules' Python ``logging`` into a node's ROS logger (rosout, the console).

    The algorithms log with ``logging`` (no ROS there); without this, their lines (a reward
    server down, then answering again) reached neither ``/rosout`` nor the ROS log files, and
    the INFO ones nowhere at all.
    """

    def __init__(self, node) -> None:
        super().__init__(logging.INFO)
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f'[{record.name}] {record.getMessage()}'
            if record.exc_info:
                text += '\n' + logging.Formatter().formatException(record.exc_info)
            if record.levelno >= logging.ERROR:
                self._logger.error(text)
            elif record.levelno >= logging.WARNING:
                self._logger.warning(text)
            else:
                self._logger.info(text)
        except Exception:  # a log line must never take the node down
            self.handleError(record)


@contextlib.contextmanager
def package_logs_to(node):
    """Send ``sole_r1_ros.*`` Python logs at INFO and above to ``node``'s ROS logger."""
    package = logging.getLogger('sole_r1_ros')
    handler = RosLogHandler(node)
    level, propagate = package.level, package.propagate
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    package.propagate = False   # not a second, bare copy on stderr
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        package.propagate = propagate


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_node(make_node: Callable, args: list[str] | None = None,
             on_exit: Callable | None = None) -> None:
    """Spin the node ``make_node()`` builds until SIGINT/SIGTERM/SIGHUP or shutdown.

    A lifecycle node whose ``autostart`` parameter is true is configured and activated first
    (launch files set it false and drive the transitions themselves). The executor is
    single-threaded, the cheapest per callback (measured: twice the round trips per second of
    the multi-threaded one), so no callback may block: slow work runs on the nodes' own threads
    and long actions are coroutines.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = _StopRequest()
    # SIGHUP too (a closed terminal, a dropped SSH session under ros2 launch): it killed the
    # node at once, the arm's last velocity command in force and no checkpoint written.
    for signum in _STOP_SIGNALS:
        signal.signal(signum, stop)
    wake = _WakeMainThread()
    logs = contextlib.ExitStack()
    node = executor = None
    try:
        node = make_node()
        logs.enter_context(package_logs_to(node))
        if node.has_parameter('autostart') and node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise SystemExit(f'{node.get_name()} failed to configure (see the log above)')
            # An activation that failed left a process spinning an inactive node, nothing said
            # to the launch file: exit as a failed configure does.
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                raise SystemExit(f'{node.get_name()} failed to activate (see the log above)')
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        stop.raise_now = False
        # A lifecycle node shut down (finalized) ends the process, as a ROS 2 C++ one does.
        while rclpy.ok() and stop.signum is None and not getattr(node, 'finalized', False):
            executor.spin_once(timeout_sec=0.2)   # back in Python often enough for signals
    except (Stop, KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for signum in _STOP_SIGNALS:   # a second signal must not cut clean-up
            signal.signal(signum, signal.SIG_IGN)
        if node is not None:
            if on_exit is not None:
                on_exit(node)
            if executor is not None:
                _settle(executor, node)
            node.destroy_node()   # its clean-up may log: to the console still, not rosout
        logs.close()
        rclpy.try_shutdown()
        wake.close()


_SETTLE_S = 1.0


def _settle(executor, node) -> None:
    """Spin while the node says it has answers to send (``settling()``), at most 1 s.

    An action goal ended by the stop sends its result from the executor: destroyed at once,
    the node left the client waiting for ever (an ``~/evaluate`` after a Ctrl-C).
    """
    settling = getattr(node, 'settling', None)
    if settling is None:
        return
    deadline = time.monotonic() + _SETTLE_S
    spun_after = 0
    while time.monotonic() < deadline and spun_after < 5:
        spun_after = 0 if settling() else spun_after + 1   # a few more for the result
        executor.spin_once(timeout_sec=0.02)


def set_torch_threads(threads: int) -> None:
    """Limit torch's CPU threads in this process (0 leaves torch's default)."""
    if threads > 0:
        import torch
        torch.set_num_threads(threads)


class BackgroundSpinner:
    """Spin nodes on a single-threaded executor in a daemon thread.

    For programs whose main thread does other work: the runner's monitor, ``sole-r1 record``,
    benchmarks.

    Example::

        with BackgroundSpinner(monitor):
            ...   # callbacks run meanwhile
    """

    def __init__(self, *nodes, context=None) -> None:
        self._executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            self._executor.add_node(node)
        self._context = context
        self._spinning = False
        self._thread = threading.Thread(target=self._spin, name='spinner', daemon=True)

    def _spin(self) -> None:
        """Spin until stopped; a callback's exception is logged, not the end of the thread.

        A callback that raised (a full disk under a file it writes) ended the thread, and
        every callback of its nodes with it: the runner's monitor went deaf, and the run
        never reached its step count.
        """
        last_logged: dict[str, float] = {}
        while self._spinning and rclpy.ok(context=self._context):
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except ExternalShutdownException:
                return
            except Exception as exc:
                cause = f'{type(exc).__name__}: {exc}'[:200]
                if time.monotonic() - last_logged.get(cause, -1e9) > 10.0:
                    last_logged[cause] = time.monotonic()
                    _LOG.exception('a callback failed (spinning on): %s', cause)

    def __enter__(self) -> 'BackgroundSpinner':
        self._spinning = True
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._spinning = False
        self._thread.join(timeout=2.0)
        self._executor.shutdown(timeout_sec=1.0)
