"""How evaluation episodes are scored, from the reward model and the simulator. No ROS here.

An evaluation episode's verdict needs the reward model's answer for its last frame, which
arrives after the episode ended (the camera node asks about it when the next episode starts).
``Evaluation`` therefore closes an episode only when that answer came or ``label_wait_s`` passed.
Answers are ordered by the stamp of the frame they score, not by arrival: a slow model's answer
about an earlier frame, still in flight when the episode ended, arrives after it and is not the
episode's last word.
"""
from dataclasses import dataclass
import math
import threading
import time
from typing import Sequence


def in_frame_order(answers: Sequence[tuple[int | None, float]]) -> list[float]:
    """Progress answers ordered by the stamp of the frame each scores (None: earliest).

    Arrival order breaks ties. The last is the episode's final answer, whenever it arrived.
    """
    return [progress for _, progress in sorted(
        answers, key=lambda answer: -1 if answer[0] is None else answer[0])]


@dataclass(frozen=True)
class EpisodeOutcome:
    """One evaluation episode's verdict, from the reward model and (if any) the simulator."""

    episode_id: str
    final_progress: float
    '''The answer about its last frame; NaN when that never came (``scored`` False).'''
    success_progress: bool
    success_ground_truth: bool
    has_ground_truth: bool
    episode_return: float
    scored: bool = True
    '''False when the answer about its last frame did not come within ``label_wait_s``: a
    mid-episode answer, or none, is not the episode's verdict.'''


class Evaluation:
    """Collects progress answers and ground truth of evaluation episodes (thread-safe)."""

    def __init__(self, threshold: float, label_wait_s: float = 10.0,
                 episodes: int | None = None) -> None:
        """``episodes``: how many are wanted (None: until stopped); no more are begun."""
        if not 0.0 <= threshold <= 100.0:
            raise ValueError(f'progress threshold must be in [0, 100], got {threshold}')
        self.threshold = threshold
        self.episodes = episodes
        self._label_wait_s = label_wait_s
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._current: str | None = None
        # (frame stamp or None, progress) of each answer, per episode, as they arrived
        self._progress: dict[str, list[tuple[int | None, float]]] = {}
        self._truth: dict[str, bool] = {}
        # (episode, end time, answers then, stamp of its last frame or None)
        self._closing: list[tuple[str, float, int, int | None]] = []
        self.finished: list[EpisodeOutcome] = []

    @property
    def all_started(self) -> bool:
        """Every wanted episode has begun: the robot holds while the last answers come."""
        with self._lock:
            return self.episodes is not None and len(self._progress) >= self.episodes

    def episode_started(self, episode_id: str) -> None:
        with self._lock:
            self._current = episode_id
            self._progress[episode_id] = []

    def saw_progress(self, episode_id: str, progress: float,
                     stamp_ns: int | None = None, valid: bool = True) -> bool:
        """An answer about the frame stamped ``stamp_ns``; True if the episode is this one's.

        An invalid one (the server failed, the answer did not parse: the reward node carried
        the last progress forward) closes the episode as an answer would, but leaves it
        unscored when it is about the last frame: it measured nothing there.
        """
        with self._changed:
            answers = self._progress.get(episode_id)
            if answers is None:
                return False
            answers.append((None if stamp_ns is None else int(stamp_ns),
                            float(progress) if valid else math.nan))
            self._changed.notify_all()
            return True

    def saw_ground_truth(self, success: bool) -> None:
        with self._lock:
            if self._current is not None:
                self._truth[self._current] = self._truth.get(self._current, False) or success

    def episode_finished(self, last_ns: int | None = None) -> None:
        """The running episode ended on the frame stamped ``last_ns`` (None: unknown).

        It closes when an answer about that frame (or a later one) came; without a stamp,
        when any answer came after the end.
        """
        with self._changed:
            if self._current is not None:
                answers = len(self._progress.get(self._current, []))
                self._closing.append((self._current, time.monotonic(), answers, last_ns))
                self._current = None
                self._changed.notify_all()

    def episode_discarded(self) -> None:
        """Forget the running episode, which a reset cut short: another begins in its place."""
        with self._changed:
            if self._current is not None:
                self._progress.pop(self._current, None)
                self._truth.pop(self._current, None)
                self._current = None

    def wait_episode(self, timeout: float) -> bool:
        """Close the oldest ended episode once its last answer came; True if one closed."""
        with self._changed:
            deadline = time.monotonic() + timeout
            while True:
                if self._closing:
                    episode, ended, answers, last_ns = self._closing[0]
                    given = self._progress[episode]
                    late = (len(given) > answers if last_ns is None else any(
                        stamp is not None and stamp >= last_ns for stamp, _ in given))
                    if late or time.monotonic() - ended > self._label_wait_s:
                        self._closing.pop(0)
                        self.finished.append(self._outcome(episode, scored=late))
                        return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(timeout=min(remaining, 0.1))

    def _outcome(self, episode: str, scored: bool) -> EpisodeOutcome:
        answers = in_frame_order(self._progress.get(episode, []))
        final = answers[-1] if scored else math.nan
        scored = scored and not math.isnan(final)   # the last frame's answer was invalid
        answers = [a for a in answers if not math.isnan(a)]
        return EpisodeOutcome(
            episode_id=episode, final_progress=final,
            success_progress=scored and final >= self.threshold,
            success_ground_truth=self._truth.get(episode, False),
            has_ground_truth=episode in self._truth,
            episode_return=sum(answers) / 100.0, scored=scored)

    def result(self, result_type):
        """Fill an ``Evaluate.Result`` (passed in, so this module needs no ROS).

        The predicted rates count the scored episodes only: an unanswered one was reported
        as a failure at 0 %, and one whose last answer never came at a mid-episode answer.
        """
        done = self.finished
        scored = [o for o in done if o.scored]
        with_truth = [o for o in done if o.has_ground_truth]
        return result_type(
            episodes_done=len(done), episodes_unscored=len(done) - len(scored),
            success_rate_progress=_mean([o.success_progress for o in scored]),
            success_rate_ground_truth=(_mean([o.success_ground_truth for o in with_truth])
                                       if with_truth else math.nan),
            mean_final_progress=_mean([o.final_progress for o in scored]),
            mean_return=_mean([o.episode_return for o in done]),
            final_progress=[o.final_progress for o in done],
            success_progress=[o.success_progress for o in done],
            success_ground_truth=[o.success_ground_truth for o in done])


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else math.nan
