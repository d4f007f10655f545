"""Backends with controlled failure modes for the reward-node tests (real backends otherwise).

They wrap the real oracle backend and add a delay, a hang or an exception, and record the size
of every batch, so tests can see batching and timeouts without a GPU.
"""
import threading
import time

from sole_r1_ros.reward.backends.base import BackendError
from sole_r1_ros.reward.backends.oracle import OracleBackend

BATCH_SIZES: list[int] = []
RELEASE = threading.Event()


class SlowOracleBackend(OracleBackend):
    """The oracle, taking 0.4 s per call (a busy GPU), recording batch sizes."""

    model_id = 'slow-oracle'

    def generate(self, requests):
        BATCH_SIZES.append(len(requests))
        time.sleep(0.4)
        return super().generate(requests)


class HangingBackend(OracleBackend):
    """Hangs until ``RELEASE`` is set (a dead GPU server), far past any timeout."""

    model_id = 'hanging'

    def generate(self, requests):
        RELEASE.wait(timeout=30.0)
        return super().generate(requests)


class RaisingBackend(OracleBackend):
    """Fails every call, as a crashed server would."""

    model_id = 'raising'

    def generate(self, requests):
        raise BackendError('CUDA error: device-side assert triggered (simulated)')
