"""No exception leaves a callback: reject, count, log once per cause, and publish the counts.

Every subscription, service and timer callback of our nodes runs through ``Firewall.guard``. A
message that cannot be used (malformed, NaN, the wrong size) is rejected with a reason; an
exception from deeper down is rejected the same way. Each cause is logged at most once per
``throttle_s`` with its message cut to ``max_chars`` (a 4M-element command must not log 20 MB),
counted, and published with the node's other counters as ``diagnostic_msgs/DiagnosticArray`` on
``/diagnostics`` (the standard topic; ``rqt_runtime_monitor`` shows it).
"""
import functools
import threading
import time
import traceback
from typing import Any, Callable, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


class Firewall:
    """Reject counters and throttled logs of one node."""

    def __init__(self, node, throttle_s: float = 5.0, max_chars: int = 300) -> None:
        self._node = node
        self._throttle_s = throttle_s
        self._max_chars = max_chars
        self._lock = threading.Lock()
        self._last_logged: dict[tuple[str, str], float] = {}
        self.rejected: dict[str, int] = {}
        self.listeners: list[Callable[[str, str], None]] = []   # each gets (source, reason)

    def reject(self, source: str, reason: str) -> None:
        """Count a rejected input of ``source`` and log the cause (throttled, bounded)."""
        reason = str(reason)
        if len(reason) > self._max_chars:
            reason = reason[:self._max_chars] + f'... ({len(reason)} characters)'
        cause = (source, reason.split(':', 1)[0][:80])
        now = time.monotonic()
        with self._lock:
            self.rejected[source] = self.rejected.get(source, 0) + 1
            count = self.rejected[source]
            due = now - self._last_logged.get(cause, -1e9) >= self._throttle_s
            if due:
                self._last_logged[cause] = now
        if due:
            self._node.get_logger().error(f'rejected {source} (#{count}): {reason}')
        for listener in self.listeners:
            listener(source, reason)

    def guard(self, source: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap ``callback`` so that any exception becomes a counted, logged rejection.

        A callback may also return a string: the reason it rejected its input.
        """
        @functools.wraps(callback)
        def guarded(*args: Any) -> Any:
            try:
                result = callback(*args)
            except Exception as exc:  # noqa: BLE001 (the firewall: nothing escapes)
                self.reject(source, f'{type(exc).__name__}: {exc}')
                return None
            if isinstance(result, str):
                self.reject(source, result)
                return None
            return result
        return guarded


MAX_EPISODE_ID_CHARS = 128
'''Longer episode ids are refused: ids go into logs, bags, file names and JSON lines.'''


def check_episode_id(episode_id: str) -> str:
    """Return ``episode_id`` if a node may key on and log it; raise ValueError otherwise.

    Our ids are 'episode-' and 8 hex digits; another publisher's may be anything printable up
    to ``MAX_EPISODE_ID_CHARS`` characters. '' (no episode) is allowed.
    """
    if len(episode_id) > MAX_EPISODE_ID_CHARS:
        raise ValueError(f'episode id of {len(episode_id)} characters (at most '
                         f'{MAX_EPISODE_ID_CHARS})')
    if not episode_id.isprintable():
        raise ValueError(f'episode id {episode_id!r} has control characters')
    return episode_id


def status_message(node, values: Mapping[str, Any], level: bytes = DiagnosticStatus.OK,
                   message: str = 'ok') -> DiagnosticArray:
    """One ``DiagnosticArray`` with the node's counters as key/values."""
    status = DiagnosticStatus(level=level, name=node.get_fully_qualified_name(),
                              message=message, hardware_id=node.get_name())
    status.values = [KeyValue(key=str(k), value=_text(v)) for k, v in values.items()]
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    return array


def read_status(array: DiagnosticArray, name: str) -> dict[str, str] | None:
    """The key/values of the status called ``name`` in ``array``, or None."""
    for status in array.status:
        if status.name == name:
            return {kv.key: kv.value for kv in status.values}
    return None


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)


def logged_transition(method: Callable) -> Callable:
    """Log a lifecycle transition's exception, then let rclpy turn it into ERROR.

    rclpy catches it and logs nothing: the node went to its error handling with no word of
    the cause (on_error can only say that a transition failed).
    """
    @functools.wraps(method)
    def transition(node, state):
        try:
            return method(node, state)
        except Exception:
            node.get_logger().error(f'{method.__name__} raised:\n{traceback.format_exc()}')
            raise
    return transition
