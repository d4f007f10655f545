"""Simulator ground truth dressed as a model reply, to evaluate everything around the model.

Evaluation only: the learner must never train on it unless a privileged-reward baseline is the
point of the run. It answers through the same parser as a real model.
"""
import math
import time
from typing import Sequence

from sole_r1_ros.reward.backends.base import PreparedRequest, RawReply
from sole_r1_ros.reward.config import RewardConfig

ORACLE_REPLY = '<think>simulator ground truth</think><answer>{progress}%</answer>'


class OracleBackend:
    """Reply with each request's ``metadata['privileged_progress']`` (percent, rounded)."""

    model_id = 'oracle'

    @classmethod
    def from_config(cls, config: RewardConfig) -> 'OracleBackend':
        return cls()

    def generate(self, requests: Sequence[PreparedRequest]) -> list[RawReply]:
        """Each request's truth as a reply; one without it fails alone (``RawReply.error``)."""
        start = time.perf_counter()
        texts, errors = [], []
        for request in requests:
            value = request.metadata.get('privileged_progress')
            if value is None or not math.isfinite(value):
                texts.append('')
                errors.append(
                    'oracle backend needs privileged_progress (simulator ground truth) on every '
                    f"query; episode {request.metadata.get('episode_id')!r} step "
                    f"{request.metadata.get('step')} has {value!r}")
            else:
                texts.append(ORACLE_REPLY.format(progress=round(value)))
                errors.append(None)
        latency_s = time.perf_counter() - start
        return [RawReply(text, latency_s, error=error) for text, error in zip(texts, errors)]

    def close(self) -> None:
        """Nothing to free."""
