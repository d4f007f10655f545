"""The reward node's bookkeeping, free of ROS: newest pending query per episode, episode state.

Queries of one episode must be answered in order (each quotes the previous answer), so while the
model is busy only the newest query of each episode is kept: an older one would be stale by the
time it ran, and an episode whose query is out is not handed out again until its answer is
recorded (``release``). Queries of different episodes may be handed out together so one backend
call serves several robots. Episode state (first frame, last scored frame, last answer)
survives a deactivation of the node because it lives here, not in the backend.

A camera node restarted mid-episode numbers that episode's frames from 0 again, from a first
frame of its own: its queries are told by that first frame and continue the episode's chain
after its last step (the first frame the model sees stays the episode's own).
"""
from collections import OrderedDict
import dataclasses
import hashlib
import logging
import math
import threading
from typing import Callable

import numpy as np

from sole_r1_ros.reward.episode import EpisodeTracker
from sole_r1_ros.reward.protocol import check_frames, normalize_goal
from sole_r1_ros.reward.query import ProgressQuery, ProgressResult

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class PendingQuery:
    """A decoded RewardQuery waiting for the model."""

    header: object
    episode_id: str
    step: int
    trigger: str
    current_external: np.ndarray
    current_wrist: np.ndarray | None
    first_external_data: bytes
    first_wrist_data: bytes
    privileged_progress: float | None
    received_s: float
    current_erased_external: np.ndarray | None = None
    first_erased_external_data: bytes = b''

    @classmethod
    def from_message(cls, msg, decode: Callable[[bytes], np.ndarray],
                     received_s: float) -> 'PendingQuery':
        """Decode the current tiles now (the first ones only when the episode is new).

        Raises:
            ValueError: no episode id, step 0, or a tile that is not an image.
        """
        if not msg.episode_id:
            raise ValueError('query has no episode_id')
        if msg.step < 1:
            raise ValueError('step 0 is the 0% reference and is never queried')
        if msg.header.stamp.sec < 0:   # rclpy's Time refuses it, after the model's work
            raise ValueError(f'query stamp {msg.header.stamp.sec} s is negative')
        wrist = bytes(msg.current_wrist.data)
        if bool(wrist) != bool(bytes(msg.first_wrist.data)):
            raise ValueError('wrist tile given for only one of first/current frame')
        erased = bytes(msg.current_erased_external.data)
        if bool(erased) != bool(bytes(msg.first_erased_external.data)):
            raise ValueError('erased external tile given for only one of first/current frame')
        truth = float(msg.privileged_progress)
        return cls(header=msg.header, episode_id=msg.episode_id, step=int(msg.step),
                   trigger=msg.trigger, current_external=decode(bytes(msg.current_external.data)),
                   current_wrist=decode(wrist) if wrist else None,
                   first_external_data=bytes(msg.first_external.data),
                   first_wrist_data=bytes(msg.first_wrist.data),
                   privileged_progress=None if math.isnan(truth) else truth,
                   received_s=received_s,
                   current_erased_external=decode(erased) if erased else None,
                   first_erased_external_data=bytes(msg.first_erased_external.data))


HISTORY_LENGTH = 512
'''Answers an episode's curve shows, the newest: an episode the camera node makes up when no
learner announces episodes lasts as long as the node, and rebuilding its whole history on
every answer cost 14 ms at 10,000 answers, under the book's lock.'''


@dataclasses.dataclass
class EpisodeView:
    """What the node shows about an episode after an answer: (step, progress) so far."""

    episode_id: str
    history: list[tuple[int, float]]


class EpisodeBook:
    """Thread-safe: the subscription submits, the inference workers take, record and release.

    Example::

        batch = book.take(1, goal)               # the episode is now out
        try:
            view = book.record(result)           # its answer
        finally:
            book.release([pending.episode_id for pending, _ in batch])
    """

    def __init__(self, max_episodes: int = 64, from_zero: bool = False,
                 on_unusable: Callable[[str], None] | None = None,
                 decode: Callable[[bytes], np.ndarray] | None = None,
                 on_restart: Callable[[str], None] | None = None) -> None:
        if max_episodes < 1:
            raise ValueError(f'max_episodes must be >= 1, got {max_episodes}')
        if decode is None:
            from sole_r1_ros.camera.tiles import decode_tile as decode
        self._decode = decode
        # A query that cannot be made (an undecodable first tile, a view gone mid-episode) is
        # dropped: said here, so the node counts it (default: the log).
        self._on_unusable = on_unusable or logger.error
        self._on_restart = on_restart or logger.warning
        self._max_episodes = max_episodes
        self._from_zero = from_zero
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, PendingQuery] = OrderedDict()
        self._trackers: OrderedDict[str, EpisodeTracker] = OrderedDict()
        self._out: set[str] = set()   # episodes whose query is with the backend
        # Per episode with a tracker: each sender's first frame (digest) -> the step its step
        # 0 is, and the newest stamp taken; a restarted camera node is a new sender.
        self._senders: dict[str, dict[bytes, int]] = {}
        self._newest_ns: dict[str, int] = {}
        self.restarts = 0   # senders that joined an episode mid-way (camera node restarts)
        self.late_finals = 0   # final queries that came after a later frame's, answered
        self.replaced = 0   # queries superseded by a newer one of the same episode
        self.stale = 0      # queries older than what the episode already answered, or of
        # the oldest episode waiting when more than max_episodes wait (each holds its frames)

    def submit(self, query: PendingQuery) -> None:
        with self._lock:
            tracker = self._trackers.get(query.episode_id)
            if tracker is not None:
                query = self._in_chain(query, tracker)
                if (query is not None and query.trigger == 'final'
                        and query.step <= tracker.latest_step):
                    # The episode's last frame, behind a frame from after the end that the
                    # camera node took as the episode's before the end reached it: the
                    # episode's verdict, answered after the chain, not dropped as stale.
                    query = dataclasses.replace(query, step=tracker.latest_step + 1)
                    self.late_finals += 1
                if query is None or query.step <= tracker.latest_step:
                    self.stale += 1
                    return
            if self._pending.pop(query.episode_id, None) is not None:
                self.replaced += 1
            self._pending[query.episode_id] = query
            while len(self._pending) > self._max_episodes:   # a node inactive for a while
                # the oldest waiting query that is not an episode's final one: a final answer
                # is its episode's verdict (an evaluation's), and was dropped first
                victim = next((episode for episode, waiting in self._pending.items()
                               if waiting.trigger != 'final'), None)
                if victim is None:   # all final: the oldest goes, said
                    victim = next(iter(self._pending))
                    self._on_unusable(f'episode {victim}: its final query dropped, more than '
                                      f'max_episodes ({self._max_episodes}) episodes waiting')
                del self._pending[victim]
                self.stale += 1

    def _in_chain(self, query: PendingQuery, tracker: EpisodeTracker) -> PendingQuery | None:
        """The query with its step in the episode's chain; None if it is older than the chain.

        A sender not seen before with a frame newer than the chain's newest is a camera node
        that restarted mid-episode: its step 0 becomes the chain's last step.
        """
        senders = self._senders.setdefault(query.episode_id, {})
        sender = _digest(query.first_external_data)
        if sender not in senders:
            stamp, newest = _stamp_ns(query.header), self._newest_ns.get(query.episode_id)
            if stamp is not None and newest is not None and stamp <= newest:
                return None
            senders[sender] = tracker.latest_step
            self.restarts += 1
            self._on_restart(f'episode {query.episode_id}: queries from another first frame '
                             f'(a camera node restarted?) continue its chain after step '
                             f'{tracker.latest_step}')
        return dataclasses.replace(query, step=query.step + senders[sender])

    def tracker(self, episode_id: str) -> EpisodeTracker | None:
        """The episode's state (first frame, last answer, results), or None if unknown."""
        with self._lock:
            return self._trackers.get(episode_id)

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def ready(self) -> bool:
        """True when ``take`` would hand out a query (one waits and its episode is not out)."""
        with self._lock:
            return any(episode not in self._out for episode in self._pending)

    def take(self, max_queries: int, goal: str) -> list[tuple[PendingQuery, ProgressQuery]]:
        """Pop up to ``max_queries`` episodes' newest queries, longest waiting first.

        Episodes that are out are skipped; the episodes taken are out until ``release``.
        """
        batch = []
        with self._lock:
            ready = [episode for episode in self._pending if episode not in self._out]
            for episode in ready[:max_queries]:
                pending = self._pending.pop(episode)
                try:
                    batch.append((pending, self._make_query(pending, goal)))
                except ValueError as exc:
                    self._on_unusable(f'episode {pending.episode_id} step {pending.step}: {exc}')
                    continue
                self._out.add(episode)
        return batch

    def release(self, episode_ids: list[str]) -> None:
        """The answers of these episodes are recorded (or lost): hand out their next queries."""
        with self._lock:
            self._out.difference_update(episode_ids)

    def _make_query(self, pending: PendingQuery, goal: str) -> ProgressQuery:
        # Frames the engine would refuse are refused here, alone: in a batch they had failed
        # every robot's query beside them, and as an episode's first or previous frame every
        # later batch too.
        _check_views(pending.current_external, pending.current_wrist,
                     pending.current_erased_external)
        tracker = self._trackers.get(pending.episode_id)
        if tracker is None:
            first = [self._decode(data) if data else None for data in (
                pending.first_external_data, pending.first_wrist_data,
                pending.first_erased_external_data)]
            _check_views(*first)
            tracker = EpisodeTracker(pending.episode_id, goal, self._from_zero,
                                     max_results=HISTORY_LENGTH)
            tracker.add_frame(first[0], first[1], step=0, erased_external=first[2])
            self._trackers[pending.episode_id] = tracker
            self._senders[pending.episode_id] = {_digest(pending.first_external_data): 0}
            while len(self._trackers) > self._max_episodes:
                # The least recently queried episode whose answer is not awaited: one with a
                # query at the backend would restart its chain at 0 % when the answer came.
                victim = next((e for e in self._trackers
                               if e not in self._out and e != pending.episode_id), None)
                if victim is None:
                    break
                del self._trackers[victim]
                self._senders.pop(victim, None)
                self._newest_ns.pop(victim, None)
        self._trackers.move_to_end(pending.episode_id)
        stamp = _stamp_ns(pending.header)
        if stamp is not None:
            self._newest_ns[pending.episode_id] = max(
                stamp, self._newest_ns.get(pending.episode_id, stamp))
        tracker.add_frame(pending.current_external, pending.current_wrist, step=pending.step,
                          privileged_progress=pending.privileged_progress,
                          erased_external=pending.current_erased_external)
        # The goal is read at every query, so a changed goal applies from the next answer on.
        return dataclasses.replace(tracker.make_query(), goal=normalize_goal(goal))

    def record(self, result: ProgressResult) -> EpisodeView:
        with self._lock:
            tracker = self._trackers.get(result.episode_id)
            if tracker is None:
                return EpisodeView(result.episode_id, [(0, 0.0), (result.step, result.progress)])
            tracker.record(result)
            kept = tracker.results
            start = [(0, 0.0)] if len(kept) == tracker.recorded else []   # none dropped yet
            return EpisodeView(result.episode_id,
                               start + [(r.step, float(r.progress)) for r in kept])


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _stamp_ns(header) -> int | None:
    stamp = getattr(header, 'stamp', None)
    return None if stamp is None else stamp.sec * 1_000_000_000 + stamp.nanosec


def _check_views(external, wrist, erased_external) -> None:
    """Raise ValueError on a frame of one moment the engine could not letterbox."""
    check_frames(external, external, external, wrist, wrist, wrist)
    if erased_external is not None:
        check_frames(erased_external, erased_external, erased_external)
