"""ServerHealth: probe backoff and throttled reports of a server that does not answer."""
import logging

import pytest

from sole_r1_ros.reward.backends.health import ServerHealth


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _health(clock, report_s=10.0):
    return ServerHealth('http://gpu:8000/v1', retry_s=1.0, retry_max_s=4.0, report_s=report_s,
                        clock=clock)


def test_probes_back_off_doubling_up_to_the_maximum():
    clock = _Clock()
    health = _health(clock)
    assert not health.is_down and not health.probe_due()
    health.mark_down('ConnectError')
    health.mark_down('ConnectError')   # a second request of the same batch: no extra backoff
    delays = []
    for _ in range(4):
        start = clock.now
        while not health.probe_due():
            clock.now += 0.25
        delays.append(clock.now - start)
        health.probe_failed('ConnectError')
    assert delays == [1.0, 2.0, 4.0, 4.0]
    health.mark_up()
    assert not health.is_down and not health.probe_due()


def test_down_server_is_reported_once_per_interval_and_recovery_once(caplog):
    clock = _Clock()
    health = _health(clock, report_s=10.0)
    caplog.set_level(logging.INFO, logger='sole_r1_ros.reward.backends.health')
    health.mark_down('ConnectError: connection refused')
    for _ in range(250):   # 25 s of refused requests at 10 per second
        error = health.refuse()
        clock.now += 0.1
    assert 'does not answer (ConnectError: connection refused)' in error
    health.mark_up()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4, messages   # down, two reminders (10 s, 20 s), back
    assert 'does not answer' in messages[0]
    assert 'still does not answer after 10 s' in messages[1] and 'still' in messages[2]
    assert messages[3].startswith('http://gpu:8000/v1 answers again after 25.0 s (250 ')
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 3 + [logging.INFO]


def test_mark_up_of_a_healthy_server_logs_nothing(caplog):
    health = _health(_Clock())
    with caplog.at_level(logging.DEBUG):
        health.mark_up()
    assert caplog.records == []


def test_backoff_limits_are_checked():
    with pytest.raises(ValueError, match='retry_s'):
        ServerHealth('x', retry_s=5.0, retry_max_s=1.0, report_s=1.0)
