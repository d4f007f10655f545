"""What the reward engine is asked (``ProgressQuery``) and what it answers (``ProgressResult``)."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ProgressQuery:
    """One progress question about one timestep of one episode.

    Frames are HxWx3 uint8 RGB (HxW grey is accepted). Without wrist frames the query uses the
    external-only variant of the protocol. Compared by identity: frames are arrays.
    """

    episode_id: str
    '''Joins the answer to its episode (e.g. ``'robot0/ep17'``).'''
    step: int
    '''Index of the current frame within the episode; >= 1 (step 0 is the reference, 0%).'''
    goal: str
    '''Task in words, e.g. 'Close the drawer'; a trailing period is dropped.'''
    first_external: np.ndarray
    '''External view at step 0.'''
    previous_external: np.ndarray
    '''External view at the previous *queried* step (step 0 for the first query).'''
    current_external: np.ndarray
    '''External view at ``step``.'''
    first_wrist: np.ndarray | None = None
    previous_wrist: np.ndarray | None = None
    current_wrist: np.ndarray | None = None
    first_erased_external: np.ndarray | None = None
    '''External view at step 0 with the robot erased (``camera.robot_eraser``), beside the
    picture, for a reward that also reads erased frames (a compact pair); None otherwise.'''
    previous_erased_external: np.ndarray | None = None
    current_erased_external: np.ndarray | None = None
    previous_progress: int = 0
    '''Answer of the previous query in [-100, 100] (its carried-forward value if invalid).'''
    from_zero: bool = False
    '''Ask for progress from the first frame alone (no previous column, no previous value).'''
    privileged_progress: float | None = None
    '''Simulator ground-truth progress [%] at ``step``; read only by the oracle backend.'''

    @property
    def external_only(self) -> bool:
        """True when no wrist view is given, so only the external row is shown."""
        return all(frame is None for frame in
                   (self.first_wrist, self.previous_wrist, self.current_wrist))

    @property
    def has_erased_external(self) -> bool:
        """True when the external view also comes with the robot erased."""
        return self.first_erased_external is not None


@dataclass(frozen=True)
class ProgressResult:
    """The engine's answer to one ``ProgressQuery``; never missing, even when the backend fails."""

    episode_id: str
    step: int
    progress: int
    '''Percentage in [-100, 100]; the query's ``previous_progress`` when not ``valid``.'''
    valid: bool
    '''False when the reply did not parse or the backend failed (see ``error``).'''
    reasoning: str
    '''The model's ``<think>`` text ('' on backend failure).'''
    raw_text: str
    '''The model's whole reply ('' on backend failure).'''
    latency_s: float
    '''Wall time of the backend call that answered this query [s].'''
    model_id: str
    '''Which model answered (checkpoint folder name, served model name, 'oracle', ...).'''
    prompt_hash: str
    '''Short hash of the exact system + user text (``protocol.prompt_hash``).'''
    error: str | None = None
    '''None on success; 'timeout' or the backend's error message otherwise.'''
    cut_off: bool = False
    '''The reply did not parse and used every one of ``max_new_tokens``: the reasoning was
    cut off before its answer (raise ``max_new_tokens``), not a wrong model or prompt.'''
