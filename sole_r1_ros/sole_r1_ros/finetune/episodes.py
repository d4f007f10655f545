"""Labelled episodes -> SOLE-R1 training examples, query by query as the reward engine asks.

The one writer of the fine-tuning format: ``sole-r1 finetune prepare`` (episode folders, bags)
and ``sole-r1 synth --export-sole-r1`` (with reasoning from simulator state) both call
``write_dataset``.

An episode's queries follow ``reward.offline_query_steps`` (as ``sole-r1 score`` does); query k
shows the first, the previous queried and the current frame, and quotes the *label* of the
previous query as the previous progress. That is the prompt a perfect model would have produced
for itself at run time; previous-progress dropout (``finetune.dropout``) trains on noisier ones.
"""
from dataclasses import asdict, dataclass
import logging
import re
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from sole_r1_ros.configuration import option, validate
from sole_r1_ros.finetune import examples as examples_format
from sole_r1_ros.finetune.examples import DatasetWriter, TrainingExample
from sole_r1_ros.labelled import LabelledEpisode
from sole_r1_ros.reward import offline_query_steps, protocol

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r'[^A-Za-z0-9_.-]')


@dataclass(frozen=True)
class QuerySchedule:
    """Which frames of an episode become training queries, and in which prompt variant."""

    num_queries: int | None = option(None, 'N evenly spaced queries ending at the last frame; '
                                     "10 (as the authors' roboreason) when neither this nor "
                                     'stride is set', range=(1, None))
    stride: int | None = option(None, 'query every K-th frame plus the last instead',
                                range=(1, None))
    from_zero: bool = option(False, 'build from-zero examples (first | current) instead of '
                             'first | previous | current')
    use_wrist: bool = option(True, 'use the wrist view where the episode has one; False builds '
                             'external-only examples')

    def __post_init__(self) -> None:
        validate(self)
        if self.num_queries is not None and self.stride is not None:
            raise ValueError('give at most one of num_queries and stride, got '
                             f'{self.num_queries} and {self.stride}')

    def steps(self, num_frames: int) -> list[int]:
        """Queried frame indices of an episode of ``num_frames`` frames."""
        if self.stride is not None:
            return offline_query_steps(num_frames, stride=self.stride)
        return offline_query_steps(num_frames, num_queries=self.num_queries or 10)


Reasoning = Callable[[LabelledEpisode, int, int], 'str | None']
'''(episode, previous step, step) -> the SFT reasoning of that query; None: the template.'''


def _frame(frames: Any, index: int, episode: LabelledEpisode, view: str) -> np.ndarray:
    try:
        return frames[index]
    except (KeyError, IndexError) as exc:
        raise ValueError(f'episode {episode.episode_id}: {view} frame {index} is missing'
                         ) from exc


def episode_examples(episode: LabelledEpisode, schedule: QuerySchedule,
                     reasoning: Reasoning | None = None
                     ) -> Iterator[tuple[TrainingExample, np.ndarray]]:
    """Yield (example, composite before the final resize) for each query of ``episode``.

    Labels are rounded to integer percentages, as the model answers.

    Raises:
        ValueError: a needed frame is missing, or the episode is shorter than 2 frames.
    """
    goal = protocol.normalize_goal(episode.goal)
    wrist = episode.wrist if schedule.use_wrist else None
    previous_step = 0
    for step in schedule.steps(episode.num_frames):
        views = [0, previous_step, step]
        external = [_frame(episode.external, i, episode, 'external') for i in views]
        wrists = ([_frame(wrist, i, episode, 'wrist') for i in views] if wrist is not None
                  else [None] * 3)
        composite = protocol.build_composite(*external, *wrists, from_zero=schedule.from_zero)
        # Episode ids from bags may hold any text; the id is also a file name.
        example_id = f"{_UNSAFE.sub('_', episode.episode_id)}-{step:06d}"
        yield TrainingExample(
            example_id=example_id, episode_id=episode.episode_id, step=step,
            previous_step=previous_step, image=examples_format.image_path(example_id),
            goal=goal, previous_progress=round(float(episode.progress[previous_step])),
            progress=round(float(episode.progress[step])), from_zero=schedule.from_zero,
            external_only=wrist is None,
            reasoning=reasoning(episode, previous_step, step) if reasoning else None), composite
        previous_step = step


def write_dataset(episodes: Iterable[LabelledEpisode], root: str, schedule: QuerySchedule,
                  source: dict | None = None, reasoning: Reasoning | None = None) -> int:
    """Write every query of every episode into a new dataset folder; return the count.

    Raises:
        ValueError: no episode yielded an example, or two episodes share an id.
    """
    seen: set[str] = set()
    with DatasetWriter(root, {**(source or {}), 'schedule': asdict(schedule)}) as writer:
        for episode in episodes:
            if episode.episode_id in seen:
                raise ValueError(f'episode id {episode.episode_id!r} appears twice')
            seen.add(episode.episode_id)
            if episode.num_frames < 2:   # nothing to query; it had ended the whole prepare
                logger.warning('episode %s: %d frame(s), nothing to query: skipped',
                               episode.episode_id, episode.num_frames)
                continue
            before = writer.count
            for example, composite in episode_examples(episode, schedule, reasoning):
                writer.add(example, composite)
            logger.info('episode %s: %d frames -> %d examples', episode.episode_id,
                        episode.num_frames, writer.count - before)
        if writer.count == 0:
            raise ValueError('no training examples: the source has no episodes')
        return writer.count
