"""Previous-progress dropout: train some prompts without, or with a wrong, previous value.

At run time the previous progress in the prompt is the model's own earlier answer, which can be
wrong; a model that copies it compounds its errors. Dropout shows a fraction of the examples
either the from-zero variant (first | current, no previous value) or a jittered previous value.
Both variants are built by ``reward.protocol``, so every prompt stays byte-exact.

The choice is drawn once per example, from the seed and the example id, not on every access:
GRPO compares the completions of one prompt, so all of them must see the same prompt, and a run
is reproducible.
"""
from dataclasses import dataclass, replace
import hashlib

import numpy as np

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.finetune.examples import TrainingExample
from sole_r1_ros.reward import protocol


@dataclass(frozen=True)
class PreviousDropoutConfig:
    """How often each dropout variant replaces the recorded prompt."""

    from_zero_p: float = option(0.0, 'probability of the from-zero variant (its composite is '
                                'cut from the stored one)', range=(0.0, 1.0))
    jitter_p: float = option(0.0, 'probability of a previous value shifted by a uniform integer '
                             'in [-jitter_max, jitter_max] (never 0), clamped to [-100, 100]',
                             range=(0.0, 1.0))
    jitter_max: int = option(10, 'largest shift of a jittered previous value [percentage '
                             'points]', range=(1, 200))
    seed: int = option(0, 'seed of the per-example draw', range=(0, None))

    def __post_init__(self) -> None:
        validate(self)
        if self.from_zero_p + self.jitter_p > 1.0:
            raise ValueError(f'from_zero_p + jitter_p must be <= 1, got '
                             f'{self.from_zero_p} + {self.jitter_p}')

    @property
    def active(self) -> bool:
        return self.from_zero_p > 0 or self.jitter_p > 0


def _generator(example_id: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f'{seed}\x00{example_id}'.encode('utf-8')).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], 'little'))


def apply_dropout(example: TrainingExample, config: PreviousDropoutConfig) -> TrainingExample:
    """Return ``example`` or its from-zero / jittered variant (from-zero examples stay as is).

    A from-zero result keeps the stored three-column image path; ``from_zero_composite`` cuts
    the two-column composite from it when the image is loaded.
    """
    if example.from_zero or not config.active:
        return example
    rng = _generator(example.example_id, config.seed)
    draw = rng.random()
    if draw < config.from_zero_p:
        # the stored reasoning speaks of the previous frame, which a from-zero prompt lacks:
        # the template's from-zero reasoning instead
        return replace(example, from_zero=True, reasoning=None)
    if draw < config.from_zero_p + config.jitter_p and example.previous_step > 0:
        # (the first query's previous frame is the first frame, at 0 % by definition: a
        # jittered "previous 6 %" beside the 0 % frame is a prompt the reward node never sends)
        shift = int(rng.integers(1, config.jitter_max + 1)) * (1 if rng.random() < 0.5 else -1)
        previous = min(protocol.PROGRESS_MAX,
                       max(protocol.PROGRESS_MIN, example.previous_progress + shift))
        return replace(example, previous_progress=previous)
    return example


def from_zero_composite(composite: np.ndarray) -> np.ndarray:
    """Cut the first | current composite out of a first | previous | current one.

    Each view is letterboxed into its own tile independently of its column, so dropping the
    middle tile and its gap gives exactly what ``protocol.build_composite(from_zero=True)``
    builds from the same frames.

    Raises:
        ValueError: ``composite`` is not a three-column composite before the final resize.
    """
    tile, gap = protocol.TILE_PX, protocol.GAP_PX
    width = 3 * tile + 2 * gap
    heights = (tile, 2 * tile + gap)
    if composite.ndim != 3 or composite.shape[1] != width or composite.shape[0] not in heights:
        raise ValueError(f'expected a three-column composite of width {width} and height '
                         f'{heights}, got shape {composite.shape}')
    first = composite[:, :tile + gap]
    current = composite[:, width - tile:]
    return np.ascontiguousarray(np.hstack([first, current]))
