"""The online learner, free of ROS: agent, replay, stamp-matched labels, learning, checkpoints.

Rewards arrive late and name the scored camera frame by episode id and stamp. This class keeps,
for each recent episode, which of its own steps saw which frame stamp, so a ``ProgressReward``
becomes a label of exactly one stored transition (the nearest frame within a tolerance when the
reward model scored a camera frame the actor did not use). An answer can also come *before* the
actor records its frame: the camera node queries a frame as it arrives, a fast model (the
compact one: milliseconds) answers, and an actor paced at 10 Hz records that frame up to a
control period later. Such an answer is held until the frame is recorded (before 2026-12-06
it was dropped as unmatched: 9 in 10 answers of a 10 Hz run). Step 0 of every episode is labelled
0% here: the protocol defines it so and never queries it. The control loop (``rl.loop``) drives
it; the learner node and the benchmarks share both.
"""
from collections import OrderedDict
import dataclasses
import json
import logging
import math
import os
from pathlib import Path
import threading
import time
from typing import Any, Callable, Mapping

import numpy as np

from sole_r1_ros.allocator import release_freed_memory
from sole_r1_ros.rl.checkpoint import (
    CheckpointError, list_checkpoints, load_latest, recheck_segments, restore, saved_segments,
    snapshot, write_checkpoint)
from sole_r1_ros.rl.config import DrQConfig, ReplayConfig
from sole_r1_ros.rl.replay import LabelOutcome, ReplayBuffer

logger = logging.getLogger(__name__)

_KEPT_EPISODES = 32   # episodes whose stamp -> step tables are kept for late labels
# Image copies of a checkpoint above which their memory is given back once it is written (a
# periodic checkpoint copies one to three segments, 25 MB each at the demo's shapes; the first
# one after some resumes copies the whole replay, 2.5 GB, which a thread's malloc arena would
# keep for good: allocator.keep_freed_memory).
RELEASE_AFTER_BYTES = 256 << 20
_MAX_EARLY = 64       # answers held for frames of the running episode not recorded yet


class OnlineLearner:
    """Agent + replay + episode/stamp bookkeeping + checkpoints, shared by the node and benches.

    Thread-safety: ``record``/``label`` may run on different threads from ``learn``; the replay
    buffer locks itself and the agent's acting copy is separate from the one being trained.
    """

    def __init__(self, agent_config: DrQConfig, replay_config: ReplayConfig, state_dim: int,
                 action_dim: int, checkpoint_dir: str | os.PathLike | None = None,
                 stamp_tolerance_s: float = 0.05, keep_checkpoints: int = 3,
                 meaning: dict[str, Any] | None = None) -> None:
        """Build the agent and replay; ``meaning`` says what the run's data mean.

        ``meaning`` (the goal, the action layout, ... JSON-able) is kept in every checkpoint
        beside the counters, and a resume with another is refused.
        """
        from sole_r1_ros.rl.drq import DrQAgent   # torch loads here, not at import
        self.meaning = dict(meaning or {})
        self.agent = DrQAgent(agent_config, state_dim, action_dim)
        image_keys = agent_config.image_keys if agent_config.variant == 'pixels' else ()
        # The buffer compares our stamps (seconds) with labels; matching happens here already.
        replay_config = _with_tolerance(replay_config, 1e-6)
        self.replay = ReplayBuffer(replay_config, state_dim, action_dim, image_keys,
                                   agent_config.image_size, agent_config.n_step,
                                   agent_config.discount)
        self._checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self._keep = keep_checkpoints
        self.last_saved_frames = 0   # frames the last checkpoint wrote (its new image segments)
        self.evicted_frames = 0   # frames a resume dropped: their image segments were damaged
        self._recheck_from = 0       # the next saved image segment whose checksum is checked
        self._tolerance_ns = int(stamp_tolerance_s * 1e9)
        self._lock = threading.Lock()
        self._names: OrderedDict[str, tuple[int, dict[int, int]]] = OrderedDict()
        self._early: list[tuple[int, float]] = []   # (stamp, progress) not recorded yet
        self._newest_ns = -1                        # the running episode's newest recorded stamp
        self._ended = False                         # its last frame (no action) is recorded
        self.episode_index = -1
        self.episode_name: str | None = None
        self.step = 0
        self.env_steps = 0
        self.episodes_done = 0
        self.learning_steps = 0   # environment steps since the buffer first became ready
        self.unmatched_labels = 0
        self.rejected_labels = 0  # non-finite progress
        self.last_label_s = time.monotonic()

    # -- episodes and transitions ---------------------------------------------------------
    def start_episode(self, name: str) -> int:
        """Begin episode ``name``; returns its integer index in the replay buffer."""
        with self._lock:
            self.episode_index += 1
            self.episode_name, self.step = name, 0
            self.unmatched_labels += len(self._early)   # ahead of the last frame: none came
            self._early, self._newest_ns, self._ended = [], -1, False
            self._names[name] = (self.episode_index, {})
            while len(self._names) > _KEPT_EPISODES:
                self._names.popitem(last=False)
            return self.episode_index

    def record(self, obs: Mapping[str, np.ndarray], action: np.ndarray | None,
               stamp_ns: int, intervened: bool = False) -> int:
        """Store the current frame and the action taken from it (None ends the episode).

        ``intervened`` marks an action a human took (teleoperation) instead of the policy.
        """
        with self._lock:
            if self.episode_name is None:
                raise RuntimeError('start_episode() before record()')
            index, stamps = self._names[self.episode_name]
            step = self.step
            self.replay.add(index, step, obs, action, stamp=stamp_ns * 1e-9,
                            intervened=intervened)
            stamps[int(stamp_ns)] = step
            self._newest_ns = max(self._newest_ns, int(stamp_ns))
            self.step += 1
            if action is not None:
                self.env_steps += 1
                if self.learning_steps or self.replay.ready():   # ready() scans the buffer
                    self.learning_steps += 1
            else:
                self.episodes_done += 1
                self._ended = True
            due = self._take_early(int(stamp_ns))
            if self._ended:   # no frame comes after the last one
                self.unmatched_labels += len(self._early)
                self._early = []
        if step == 0:   # the 0% reference frame: defined by the protocol, never queried
            self.replay.label(index, 0, 0.0, stamp=stamp_ns * 1e-9)
        for progress in due:   # answers that came before this frame was recorded
            self.replay.label(index, step, progress, stamp=stamp_ns * 1e-9)
        return step

    def _take_early(self, stamp_ns: int) -> list[float]:
        """Held answers for the frame just recorded; those for a frame passed over are dropped."""
        due, waiting = [], []
        for early_ns, progress in self._early:
            if abs(early_ns - stamp_ns) <= self._tolerance_ns:
                due.append(progress)
                self.last_label_s = time.monotonic()
            elif early_ns < stamp_ns:
                self.unmatched_labels += 1   # a frame the actor skipped
            else:
                waiting.append((early_ns, progress))
        self._early = waiting
        return due

    def label(self, name: str, stamp_ns: int, progress: float,
              overwrite: bool = False) -> LabelOutcome | None:
        """Apply a reward-model answer for the frame stamped ``stamp_ns`` of episode ``name``.

        Negative progress (legal in SOLE-R1) is clipped to 0. Returns None when the episode or
        frame is unknown (another robot's episode, or older than what is kept) or the progress
        is not a finite number (counted in ``rejected_labels``; never raised, since a label
        comes from a message callback). ``LabelOutcome.EARLY``: the answer is for a frame of the
        running episode newer than any recorded, and is applied when that frame is.
        """
        if not isinstance(progress, (int, float)) or not math.isfinite(progress):
            with self._lock:
                self.rejected_labels += 1
            return None
        with self._lock:
            entry = self._names.get(name)
            if entry is None:
                self.unmatched_labels += 1
                return None
            index, stamps = entry
            step = stamps.get(int(stamp_ns))
            stamp = int(stamp_ns)
            if step is None and stamps:
                stamp = min(stamps, key=lambda s: abs(s - stamp_ns))
                step = stamps[stamp] if abs(stamp - stamp_ns) <= self._tolerance_ns else None
            if (step is None and name == self.episode_name and not self._ended
                    and stamp_ns > self._newest_ns):
                if len(self._early) >= _MAX_EARLY:
                    self._early.pop(0)
                    self.unmatched_labels += 1
                self._early.append((int(stamp_ns), float(np.clip(progress, 0.0, 100.0))))
                self.last_label_s = time.monotonic()
                return LabelOutcome.EARLY
            if step is None:
                self.unmatched_labels += 1
                return None
            self.last_label_s = time.monotonic()
        return self.replay.label(index, step, float(np.clip(progress, 0.0, 100.0)),
                                 stamp=stamp * 1e-9, overwrite=overwrite)

    # -- learning ---------------------------------------------------------------------------
    def learn(self, max_updates: int = 1,
              keep_going: Callable[[], bool] = lambda: True) -> dict[str, float] | None:
        """Run the updates the update-to-data ratio owes, at most ``max_updates``.

        Stops early once ``keep_going()`` is false, so a shutdown waits for one update, not a
        round.
        """
        if not self.replay.ready():
            return None
        due = min(max_updates, self.agent.updates_due(self.learning_steps))
        metrics = None
        for _ in range(due):
            if not keep_going():
                break
            metrics = self.agent.update(self.replay.sample(self.agent.config.batch_size))
        return metrics

    # -- checkpoints ------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        return {'episode_index': self.episode_index, 'env_steps': self.env_steps,
                'episodes_done': self.episodes_done, 'learning_steps': self.learning_steps}

    def save(self) -> Path | None:
        """Write a checkpoint (atomic; the last ``keep_checkpoints`` are kept).

        Only the replay's images written since the last checkpoint are copied and written
        (``last_saved_frames`` of them); the others are on disk already.
        """
        if self._checkpoint_dir is None:
            return None
        # outside the lock: reads manifests, and checks a few segments' content each time
        saved, self._recheck_from = recheck_segments(
            self._checkpoint_dir, saved_segments(self._checkpoint_dir), 4, self._recheck_from)
        with self._lock:   # a consistent copy in memory; the actor waits only for that
            state = snapshot(self.agent, self.replay, {
                **self.counters(), 'meaning': self.meaning,
                'episode_names': [[name, index] for name, (index, _) in self._names.items()]},
                saved)
        views = max(1, len(self.replay.image_keys))
        frames = sum(len(a) for a in state.replay_segments.values()) // views
        copied = sum(a.nbytes for a in state.replay_segments.values())
        written = state.replay_written
        try:
            path = write_checkpoint(self._checkpoint_dir, state, keep=self._keep)
        finally:
            del state
            if copied >= RELEASE_AFTER_BYTES:   # a whole replay's copy: not kept for good
                release_freed_memory()
        self.replay.mark_saved(written)   # only now: a failed write saved nothing
        self.last_saved_frames = frames
        return path

    def unsaved_frames(self) -> int:
        """About the frames the next checkpoint writes (whole segments of the replay)."""
        return self.replay.unsaved_frames()

    def resume(self) -> bool:
        """Restore the newest valid checkpoint; False when there is none to restore.

        The episode that was running when the checkpoint was written is closed: the next
        ``start_episode`` gets a new index, so no transition is stored or labelled twice. The
        recent episodes' names are restored with their frames' stamps, so the reward model's
        answers that were still on their way are applied, not dropped. When
        no checkpoint verifies in full because image segments they share are damaged, the
        newest is restored without those segments' frames (``evicted_frames`` says how many).

        Raises:
            CheckpointError: checkpoints exist but none can be read or fits this learner.
                Starting fresh then would silently throw a run away, so the caller decides.
        """
        if self._checkpoint_dir is None or not list_checkpoints(self._checkpoint_dir):
            return False
        checkpoint = load_latest(self._checkpoint_dir, evict_damaged=True)
        self._check_meaning(checkpoint.counters.get('meaning') or {})
        counters = restore(checkpoint, self.agent, self.replay)
        self.evicted_frames = checkpoint.evicted_frames
        self.episode_index = int(counters['episode_index'])
        self.env_steps = int(counters['env_steps'])
        self.episodes_done = int(counters['episodes_done'])
        self.learning_steps = int(counters['learning_steps'])
        self.episode_name, self.step = None, 0
        # late answers for the episodes before the stop still find their frames
        self._names = OrderedDict(
            (name, (int(index), self.replay.episode_stamps(int(index))))
            for name, index in counters.get('episode_names') or [])
        return True

    def _check_meaning(self, saved: dict[str, Any]) -> None:
        """Refuse a run that learnt another goal or actions (sizes alike load silently)."""
        for name, now in self.meaning.items():
            before = saved.get(name)
            if before in (None, '') or now in (None, ''):
                continue   # not said then or now: nothing to compare
            if _plain(before) != _plain(now):
                raise CheckpointError(
                    f'{self._checkpoint_dir.parent} learnt with {name} {before!r}, not {now!r}: '
                    'its policy and replay would serve another task. Give this run another '
                    'run_dir, or move that one aside (sole-r1 learn --fresh does)')

    def stats(self) -> dict[str, float]:
        stats = dict(self.replay.stats())
        stats.update(self.counters(), updates=self.agent.updates,
                     unmatched_labels=self.unmatched_labels,
                     rejected_labels=self.rejected_labels)
        return stats


def _plain(value: Any) -> Any:
    """A value as JSON gives it back (tuples are lists), words without edge spaces."""
    value = json.loads(json.dumps(value))
    return value.strip() if isinstance(value, str) else value


def _with_tolerance(config: ReplayConfig, tolerance_s: float) -> ReplayConfig:
    return dataclasses.replace(config, stamp_tolerance_s=max(config.stamp_tolerance_s,
                                                             tolerance_s))
