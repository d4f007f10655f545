"""One labelled episode: camera frames, a goal and the progress of every frame.

The same class carries every source of labels through the offline pipeline: synthetic episodes
(``sole-r1 synth``, simulator truth), SOLE-R1's own answers (``sole-r1 score --labelled-out``,
``score-bag --labelled-out``) and hand labels. Evaluation compares a reward model with it,
``finetune`` turns it into SOLE-R1 training examples and ``compact.train`` distils it into the
compact model.
"""
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

# An episode whose labels say nothing about success counts as successful when it ends this high.
SUCCESS_PCT = 95.0

Frames = Sequence[np.ndarray] | Mapping[int, np.ndarray]


@dataclass(frozen=True, eq=False)
class LabelledEpisode:
    """Frames of one episode and the progress label of every frame.

    Frames are indexed by frame number; a reader may keep only the frames asked for (a
    mapping), so ``num_frames`` counts labels, not stored frames.
    """

    episode_id: str
    goal: str
    '''The task in words, as a user would type it.'''
    progress: Sequence[float]
    '''Label of every frame [%] in [-100, 100]; frame 0 is 0 (the prompt says so).'''
    external: Frames
    '''External-camera frames, HxWx3 uint8 RGB, by frame index.'''
    wrist: Frames | None = None
    '''Wrist-camera frames by the same indices, or None (external-only).'''
    task: str = ''
    '''Grouping id (a Meta-World task id for synthetic data); '' means the goal text.'''
    success: bool | None = None
    '''The episode ends successful; None: judged from the last label (>= 95 %).'''
    behaviour: str = 'expert'
    '''How the robot acted ('expert' counts towards value-order correlation).'''
    split: str = ''
    '''One of 'train', 'val' (synthetic data holds some episodes of every task out) or '' (not
    split: every split filter takes it, and training trains on it).'''
    paraphrases: tuple[str, ...] = ()
    '''Other phrasings of the goal that training may ask with.'''
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    '''Further per-frame arrays (synthetic data: ``state``, ``approach``).'''
    meta: Mapping[str, Any] = field(default_factory=dict)
    '''Everything else the labels file says (source, fps, simulator settings, ...).'''

    @property
    def num_frames(self) -> int:
        return len(self.progress)

    @property
    def task_id(self) -> str:
        return self.task or self.goal

    @property
    def succeeded(self) -> bool:
        if self.success is not None:
            return bool(self.success)
        return bool(len(self.progress) and self.progress[-1] >= SUCCESS_PCT)

    def truth(self) -> np.ndarray:
        """The labels as float64 [%]."""
        return np.asarray(self.progress, dtype=np.float64)
