"""Episode state for SOLE-R1 queries: streaming (one frame at a time) and batch (whole videos).

Each query shows the episode's first frame, the previous *queried* frame and the current frame,
and quotes the previous query's answer, so queries within an episode are sequential; only
different episodes can share a backend call. ``EpisodeTracker`` keeps that state for one episode
(what the reward node holds per robot); ``score_episodes`` runs many recorded episodes, batching
across episodes at each query index.
"""
import collections
from dataclasses import dataclass
import logging
from typing import Callable, Mapping, Sequence

import numpy as np

from sole_r1_ros.reward import protocol
from sole_r1_ros.reward.engine import RewardEngine
from sole_r1_ros.reward.query import ProgressQuery, ProgressResult

logger = logging.getLogger(__name__)

# external, wrist, erased external
_Views = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


class EpisodeTracker:
    """Keyframes and last answer of one episode, fed frame by frame.

    Only three frames are kept (first, last queried, latest), never the whole video. Step 0 is
    the reference frame with progress 0 and is never queried.

    Example::

        tracker = EpisodeTracker('ep0', 'Close the drawer')
        tracker.add_frame(external0, wrist0)          # step 0
        tracker.add_frame(external5, wrist5, step=5)
        result = tracker.score(engine)                # queries step 5
    """

    def __init__(self, episode_id: str, goal: str, from_zero: bool = False,
                 max_results: int | None = None) -> None:
        """Track one episode; ``max_results`` keeps only the newest answers (None: all).

        A node's episode can last as long as the node (no learner announcing episodes), so
        the node bounds what it keeps; an offline score of a video keeps every answer.
        """
        if not isinstance(episode_id, str) or not episode_id:
            raise ValueError(f'episode_id must be a non-empty string, got {episode_id!r}')
        self._episode_id = episode_id
        self._goal = protocol.normalize_goal(goal)
        self._from_zero = from_zero
        self._first: _Views | None = None
        self._latest: _Views | None = None
        self._latest_step = -1
        self._latest_privileged: float | None = None
        self._previous: _Views | None = None
        self._previous_step = 0
        self._progress = 0
        self._pending: tuple[int, _Views] | None = None
        self._results: collections.deque[ProgressResult] = collections.deque(maxlen=max_results)
        self._recorded = 0

    @property
    def episode_id(self) -> str:
        return self._episode_id

    @property
    def latest_step(self) -> int:
        """Step of the newest frame (-1 before the first frame)."""
        return self._latest_step

    @property
    def progress(self) -> int:
        """Answer of the last recorded query (0 before any)."""
        return self._progress

    @property
    def last_query_step(self) -> int:
        """Step of the last recorded query (0: none yet, the reference frame)."""
        return self._previous_step

    @property
    def results(self) -> list[ProgressResult]:
        """Every recorded result (the newest ``max_results``), oldest first."""
        return list(self._results)

    @property
    def recorded(self) -> int:
        """How many results were recorded, those no longer kept included."""
        return self._recorded

    def add_frame(self, external: np.ndarray, wrist: np.ndarray | None = None,
                  step: int | None = None, privileged_progress: float | None = None,
                  erased_external: np.ndarray | None = None) -> int:
        """Store the newest frame and return its step (default: one after the last).

        ``erased_external`` is the external frame with the robot erased, for a reward that
        reads it beside the picture (a compact pair).

        Raises:
            ValueError: a malformed frame, a step that does not increase (the first must be 0),
                or wrist (or erased) frames given for some steps but not others.
        """
        step = self._latest_step + 1 if step is None else step
        if self._first is None and step != 0:
            raise ValueError(f'episode {self._episode_id}: the first frame must be step 0, '
                             f'got {step}')
        if step <= self._latest_step:
            raise ValueError(f'episode {self._episode_id}: step {step} does not follow '
                             f'step {self._latest_step}')
        if self._first is not None and (wrist is None) != (self._first[1] is None):
            raise ValueError(f'episode {self._episode_id}: give a wrist frame at every step '
                             'or at none')
        if self._first is not None and (erased_external is None) != (self._first[2] is None):
            raise ValueError(f'episode {self._episode_id}: give an erased external frame at '
                             'every step or at none')
        # Copies: a camera driver may reuse its buffers after the callback returns.
        views = (protocol.as_rgb_frame(external, 'external').copy(),
                 None if wrist is None else protocol.as_rgb_frame(wrist, 'wrist').copy(),
                 None if erased_external is None
                 else protocol.as_rgb_frame(erased_external, 'erased external').copy())
        if self._first is None:
            self._first = self._previous = views
        self._latest, self._latest_step = views, step
        self._latest_privileged = privileged_progress
        return step

    def make_query(self) -> ProgressQuery:
        """Ask about the newest frame; replaces any query still waiting for its result.

        Raises:
            ValueError: no frame after step 0 yet.
        """
        if self._latest is None or self._latest_step == 0:
            raise ValueError(f'episode {self._episode_id}: nothing to query before a frame '
                             'after step 0 (step 0 is the 0% reference)')
        self._pending = (self._latest_step, self._latest)
        first, previous, current = self._first, self._previous, self._latest
        return ProgressQuery(
            episode_id=self._episode_id, step=self._latest_step, goal=self._goal,
            first_external=first[0], previous_external=previous[0],
            current_external=current[0], first_wrist=first[1], previous_wrist=previous[1],
            current_wrist=current[1], first_erased_external=first[2],
            previous_erased_external=previous[2], current_erased_external=current[2],
            previous_progress=self._progress,
            from_zero=self._from_zero, privileged_progress=self._latest_privileged)

    def record(self, result: ProgressResult) -> bool:
        """Accept the result of the pending query.

        Its frame becomes the 'previous' column, unless the backend failed (see below).

        Returns:
            False (and changes nothing) for a result of another episode or a stale query.
        """
        if (result.episode_id != self._episode_id or self._pending is None
                or result.step != self._pending[0]):
            logger.debug('episode %s: ignoring result for %s step %d', self._episode_id,
                         result.episode_id, result.step)
            return False
        if result.error is None:
            self._previous_step, self._previous = self._pending
        # After a backend failure the model never saw this frame, so the carried progress
        # still belongs to the old 'previous' frame, which stays.
        self._pending = None
        self._progress = result.progress
        self._results.append(result)
        self._recorded += 1
        return True

    def score(self, engine: RewardEngine) -> ProgressResult:
        """Query the newest frame now and record the answer (one backend call)."""
        [result] = engine.score([self.make_query()])
        self.record(result)
        return result


@dataclass(frozen=True, eq=False)
class EpisodeFrames:
    """A recorded episode to score offline."""

    episode_id: str
    goal: str
    external: Sequence[np.ndarray]
    '''All frames of the external camera, HxWx3 uint8.'''
    query_steps: Sequence[int]
    '''Increasing frame indices to query, each >= 1 (see ``offline_query_steps``).'''
    wrist: Sequence[np.ndarray] | None = None
    '''Wrist frames, same length as ``external``; None for the external-only variant.'''
    from_zero: bool = False
    privileged_progress: Sequence[float] | None = None
    '''Per-frame ground truth [%] for the oracle backend.'''
    erased_external: Sequence[np.ndarray] | None = None
    '''External frames with the robot erased, same length, for a reward that reads them
    beside the pictures (a compact pair); None otherwise.'''


def score_episodes(engine: RewardEngine, episodes: Sequence[EpisodeFrames],
                   on_batch: Callable[[list[ProgressResult]], None] | None = None,
                   answered: Mapping[tuple[str, int], ProgressResult] | None = None
                   ) -> list[list[ProgressResult]]:
    """Score recorded episodes: one backend batch per query index, across episodes.

    ``answered``: results of an interrupted run, by (episode id, step); they are taken as
    they are and only the other queries asked, each quoting the same previous answers as
    before, so a resumed run ends where the whole one would. ``on_batch`` gets each round's
    results, the taken ones included.

    Returns:
        Per episode, one result per query step, in order.

    Raises:
        ValueError: malformed episodes (lengths differ, query steps out of range or not
            increasing, bad frames, empty goal).
    """
    trackers = []
    for episode in episodes:
        _check_episode(episode)
        tracker = EpisodeTracker(episode.episode_id, episode.goal, episode.from_zero)
        external, wrist, erased = _frame(episode, 0)
        tracker.add_frame(external, wrist, step=0, erased_external=erased)
        trackers.append(tracker)
    rounds = max((len(e.query_steps) for e in episodes), default=0)
    asked: set[str] = set()   # episodes with a query asked anew in this run
    for k in range(rounds):
        active = [(e, t) for e, t in zip(episodes, trackers) if k < len(e.query_steps)]
        for episode, tracker in active:
            step = episode.query_steps[k]
            external, wrist, erased = _frame(episode, step)
            tracker.add_frame(external, wrist, step=step, erased_external=erased,
                              privileged_progress=_truth(episode, step))
        queries = [tracker.make_query() for _, tracker in active]
        # a kept answer counts only while every earlier one of its episode was kept too: once
        # one is asked again, the later ones quoted another previous answer than it now has
        known = [None if q.episode_id in asked else (answered or {}).get((q.episode_id, q.step))
                 for q in queries]
        asked.update(q.episode_id for q, a in zip(queries, known) if a is None)
        fresh = iter(engine.score([q for q, a in zip(queries, known) if a is None])
                     if any(a is None for a in known) else [])
        batch = [a if a is not None else next(fresh) for a in known]
        for (_, tracker), result in zip(active, batch):
            tracker.record(result)
        if on_batch is not None:
            on_batch(batch)
    return [tracker.results for tracker in trackers]


def _frame(episode: EpisodeFrames, step: int) -> _Views:
    wrist = None if episode.wrist is None else episode.wrist[step]
    erased = None if episode.erased_external is None else episode.erased_external[step]
    return episode.external[step], wrist, erased


def _truth(episode: EpisodeFrames, step: int) -> float | None:
    return None if episode.privileged_progress is None else episode.privileged_progress[step]


def _check_episode(episode: EpisodeFrames) -> None:
    name, count = episode.episode_id, len(episode.external)
    if count == 0:
        raise ValueError(f'episode {name}: no frames')
    if episode.wrist is not None and len(episode.wrist) != count:
        raise ValueError(f'episode {name}: {count} external frames but '
                         f'{len(episode.wrist)} wrist frames')
    if episode.erased_external is not None and len(episode.erased_external) != count:
        raise ValueError(f'episode {name}: {count} external frames but '
                         f'{len(episode.erased_external)} erased external frames')
    if episode.privileged_progress is not None and len(episode.privileged_progress) != count:
        raise ValueError(f'episode {name}: {count} frames but '
                         f'{len(episode.privileged_progress)} privileged_progress values')
    steps = list(episode.query_steps)
    if any(not 1 <= s < count for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f'episode {name}: query_steps must increase within [1, {count - 1}], '
                         f'got {steps}')


def offline_query_steps(num_frames: int, num_queries: int | None = None,
                        stride: int | None = None) -> list[int]:
    """Pick the frames to query in a recorded video; the last frame is always one of them.

    ``num_queries`` N spreads N queries evenly: the frames form N+1 evenly spaced points from
    the first (the unqueried 0% reference) to the last frame, rounded and de-duplicated, so
    short videos get fewer. ``stride`` K queries every K-th frame, plus the last.

    >>> offline_query_steps(11, num_queries=5)
    [2, 4, 6, 8, 10]
    >>> offline_query_steps(10, stride=4)
    [4, 8, 9]
    """
    if num_frames < 2:
        raise ValueError(f'need at least 2 frames to query progress, got {num_frames}')
    if (num_queries is None) == (stride is None):
        raise ValueError('give exactly one of num_queries and stride')
    last = num_frames - 1
    if stride is not None:
        if stride < 1:
            raise ValueError(f'stride must be >= 1, got {stride}')
        steps = list(range(stride, last + 1, stride))
        return steps if steps and steps[-1] == last else steps + [last]
    if num_queries < 1:
        raise ValueError(f'num_queries must be >= 1, got {num_queries}')
    points = np.rint(np.linspace(0, last, num_queries + 1)).astype(int)[1:]
    return sorted(set(int(p) for p in points if p >= 1))
