"""Verifiable GRPO rewards for SOLE-R1 replies: a format term and a progress-accuracy term.

Both are TRL reward callables (a batch of completions in, one float each out, unused keyword
columns accepted), written as small classes so they pickle and carry their settings. The
accuracy term reads the answer with the project's ``protocol.parse_answer``, exactly as the reward
engine reads it at run time, so the policy is graded on what the robot learner will see.

The total reward of a reply is ``format_weight * format + accuracy_weight * accuracy`` (TRL's
``reward_weights``); both terms are in [0, 1].
"""
from dataclasses import dataclass
import math
import re
from typing import Any, Sequence

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.reward import protocol

KERNELS = ('exp', 'linear')

# The reply shape the system prompt asks for: one think block, then one answer holding an
# integer percentage, with nothing but whitespace around them.
_REPLY = re.compile(r'\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*',
                    re.DOTALL)
_PERCENT = re.compile(r'[+-]?\d+%')
_TAGS = ('<think>', '</think>', '<answer>', '</answer>')


@dataclass(frozen=True)
class ProgressRewardConfig:
    """Weights and shape of the two reward terms."""

    format_weight: float = option(0.2, 'weight of the format term (1 for a well-formed reply, '
                                  'else 0)', range=(0.0, None))
    accuracy_weight: float = option(1.0, 'weight of the accuracy term (1 at the label, falling '
                                    'with the distance)', range=(0.0, None))
    kernel: str = option('exp', "'exp': exp(-|pred - label| / tau); 'linear': max(0, 1 - "
                         '|pred - label| / max_distance)', choices=KERNELS)
    tau: float = option(10.0, "decay length of the 'exp' kernel [percentage points]: 10 points "
                        'off gives 0.37', range=(1e-9, None))
    max_distance: float = option(50.0, "distance at which the 'linear' kernel reaches 0 "
                                 '[percentage points]', range=(1e-9, None))

    def __post_init__(self) -> None:
        validate(self)
        if self.format_weight + self.accuracy_weight <= 0:
            raise ValueError('format_weight and accuracy_weight are both 0: nothing to learn')

    @property
    def weights(self) -> list[float]:
        """[format_weight, accuracy_weight], in the order of ``make_reward_functions``."""
        return [self.format_weight, self.accuracy_weight]


def completion_text(completion: Any) -> str:
    """Return the reply text of a TRL completion: a string, or a list of assistant messages."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        content = message.get('content') or ''
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(part.get('text') or '' for part in content if part.get('type') == 'text')
    return ''.join(parts)


def format_score(text: str) -> float:
    """1.0 when ``text`` is ``<think>…</think><answer>N%</answer>`` with N in [-100, 100].

    Exactly one of each tag, a non-empty think block, and an integer with a single ``%`` (an
    optional sign, no decimals, no spaces inside); whitespace around the blocks is allowed.

    >>> format_score('<think>The drawer is half shut.</think><answer>55%</answer>')
    1.0
    >>> format_score('<think>x</think><answer>55</answer>')
    0.0
    """
    if any(text.count(tag) != 1 for tag in _TAGS):
        return 0.0
    match = _REPLY.fullmatch(text)
    if match is None or not match.group('think').strip():
        return 0.0
    answer = match.group('answer').strip()
    if not _PERCENT.fullmatch(answer):
        return 0.0
    value = int(answer[:-1])
    return 1.0 if protocol.PROGRESS_MIN <= value <= protocol.PROGRESS_MAX else 0.0


def accuracy_score(text: str, label: float, config: ProgressRewardConfig) -> float:
    """Closeness of the parsed answer to ``label`` in [0, 1]; 0 when nothing parses.

    The answer is read by ``protocol.parse_answer`` (first answer, ``%`` dropped, clamped to
    [-100, 100]), so '150%' counts as 100 here while the format term rejects it.

    >>> accuracy_score('<answer>40%</answer>', 40, ProgressRewardConfig())
    1.0
    >>> round(accuracy_score('<answer>30</answer>', 40, ProgressRewardConfig()), 3)
    0.368
    """
    parsed = protocol.parse_answer(text)
    if not parsed.valid:
        return 0.0
    distance = abs(parsed.progress - float(label))
    if config.kernel == 'exp':
        return math.exp(-distance / config.tau)
    return max(0.0, 1.0 - distance / config.max_distance)


def progress_reward(text: str, label: float, config: ProgressRewardConfig) -> float:
    """The weighted total of both terms for one reply (what GRPO optimises)."""
    return (config.format_weight * format_score(text)
            + config.accuracy_weight * accuracy_score(text, label, config))


class FormatReward:
    """TRL reward function: ``format_score`` of each completion."""

    def __init__(self) -> None:
        self.__name__ = 'progress_format'  # TRL names the logged metric after this

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float]:
        return [format_score(completion_text(c)) for c in completions]


class AccuracyReward:
    """TRL reward function: ``accuracy_score`` against the dataset's ``progress`` column."""

    def __init__(self, config: ProgressRewardConfig) -> None:
        self.config = config
        self.__name__ = 'progress_accuracy'

    def __call__(self, completions: Sequence[Any], progress: Sequence[float],
                 **kwargs: Any) -> list[float]:
        if len(progress) != len(completions):
            raise ValueError(f'{len(completions)} completions but {len(progress)} labels')
        return [accuracy_score(completion_text(c), label, self.config)
                for c, label in zip(completions, progress)]


def make_reward_functions(config: ProgressRewardConfig
                          ) -> tuple[list[Any], list[float]]:
    """Return ([format, accuracy] reward callables, their weights) for ``GRPOTrainer``."""
    return [FormatReward(), AccuracyReward(config)], config.weights
