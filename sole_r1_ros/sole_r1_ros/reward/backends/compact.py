"""The compact progress model as a reward backend: SOLE-R1's query in, SOLE-R1's reply out.

A 0.4 M-parameter CNN trained on synthetic Meta-World videos (``sole-r1 train compact``) reads the
composite image and the prompt the engine prepared for SOLE-R1, so it drops in wherever the real
model would run (CPU, a few milliseconds per query). ``RewardConfig.model`` is a checkpoint
path; '' means the one shipped in the package. torch loads only when this backend is made.
"""
import time
from typing import Any, Sequence

from sole_r1_ros.reward.backends.base import BackendError, PreparedRequest, RawReply
from sole_r1_ros.reward.config import RewardConfig

_INSTALL_HINT = "the compact backend needs torch: pip install 'sole_r1_ros[model]'"


class CompactBackend:
    """Answer every request of a batch with one forward pass of the compact network."""

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor
        self.model_id = predictor.name
        self.robot_erased = predictor.robot_erased
        self.erased_beside = predictor.erased_beside

    @classmethod
    def from_config(cls, config: RewardConfig) -> 'CompactBackend':
        """Load ``config.model`` ('' = shipped), paired as ``erased_model`` and ``pair_join`` say.

        Raises:
            ImportError: torch is missing.
            FileNotFoundError: the checkpoint file does not exist.
            ValueError: the file is not a compact checkpoint, or the two do not make a pair.
        """
        try:
            from sole_r1_ros.compact.model import CheckpointError
            from sole_r1_ros.compact.predictor import CompactPredictor
        except ImportError as exc:
            raise ImportError(f'{_INSTALL_HINT}: {exc}') from exc
        try:
            return cls(CompactPredictor.load(config.model, erased=config.erased_model,
                                             join=config.pair_join))
        except CheckpointError as exc:
            raise ValueError(str(exc)) from exc

    def goal_coverage(self, goal: str) -> Any:
        """``compact.coverage.GoalCoverage`` of ``goal`` for this checkpoint (None: unknown)."""
        return self._predictor.goal_coverage(goal)

    def generate(self, requests: Sequence[PreparedRequest]) -> list[RawReply]:
        start = time.perf_counter()
        try:
            texts = self._predictor.answer(requests)
        except ValueError as exc:
            raise BackendError(f'compact backend cannot read the query: {exc}') from exc
        latency_s = time.perf_counter() - start
        return [RawReply(text, latency_s) for text in texts]

    def close(self) -> None:
        """Drop the network; the backend is unusable afterwards."""
        self._predictor = None
