"""Whether a reward server answers at all: probe backoff and throttled log lines, ROS-free.

A network backend marks its server down when a request could not even connect after its
retries. From then on its requests fail at once, without being sent, until a probe is due; each
failed probe doubles the delay to the next one, up to a maximum. The log gets one warning when
the server goes down, at most one per ``report_s`` while it stays down, and one line when it
answers again: a dead server neither floods the log nor stalls the reward node, which keeps
publishing carried-forward progress for every query.
"""
import logging
import time
from typing import Callable

logger = logging.getLogger(__name__)


class ServerHealth:
    """Up/down state of one server; used from one thread (the backend's event loop).

    Example::

        health = ServerHealth('http://gpu:8000/v1', retry_s=1.0, retry_max_s=30.0,
                              report_s=60.0)
        if health.is_down and not health.probe_due():
            error = health.refuse()          # fail this request without sending it
    """

    def __init__(self, name: str, retry_s: float, retry_max_s: float, report_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < retry_s <= retry_max_s:
            raise ValueError(f'need 0 < retry_s <= retry_max_s, got {retry_s}, {retry_max_s}')
        self._name = name
        self._retry_s = retry_s
        self._retry_max_s = retry_max_s
        self._report_s = report_s
        self._clock = clock
        self._down_since: float | None = None
        self._reason = ''
        self._delay_s = retry_s
        self._next_probe = 0.0
        self._last_report = 0.0
        self._refused = 0

    @property
    def is_down(self) -> bool:
        return self._down_since is not None

    def probe_due(self) -> bool:
        """True when the server is down and the next probe may be sent now."""
        return self._down_since is not None and self._clock() >= self._next_probe

    def mark_up(self) -> None:
        """The server answered (any HTTP status): log the recovery once."""
        if self._down_since is None:
            return
        logger.info('%s answers again after %.1f s (%d requests failed without being sent)',
                    self._name, self._clock() - self._down_since, self._refused)
        self._down_since = None
        self._delay_s = self._retry_s

    def mark_down(self, reason: str) -> None:
        """A request could not connect after its retries; a no-op when already down."""
        if self._down_since is not None:
            return
        now = self._clock()
        self._down_since, self._last_report, self._refused = now, now, 0
        self._reason, self._delay_s = reason, self._retry_s
        self._next_probe = now + self._delay_s
        logger.warning('%s does not answer (%s); its requests now fail at once, next probe in '
                       '%.1f s', self._name, reason, self._delay_s)

    def probe_failed(self, reason: str) -> None:
        """A due probe got no answer: back off (doubling, capped) and maybe report."""
        if self._down_since is None:
            self.mark_down(reason)
            return
        now = self._clock()
        self._reason = reason
        self._delay_s = min(2.0 * self._delay_s, self._retry_max_s)
        self._next_probe = now + self._delay_s
        self._report(now)

    def refuse(self) -> str:
        """Count one request failed without being sent; return its error text."""
        now = self._clock()
        self._refused += 1
        self._report(now)
        return (f'{self._name} does not answer ({self._reason}); next probe in '
                f'{max(0.0, self._next_probe - now):.1f} s')

    def _report(self, now: float) -> None:
        if now - self._last_report < self._report_s:
            return
        self._last_report = now
        logger.warning('%s still does not answer after %.0f s (%s); %d requests failed without '
                       'being sent; next probe in %.1f s', self._name, now - self._down_since,
                       self._reason, self._refused, max(0.0, self._next_probe - now))
