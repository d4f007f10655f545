"""Replay buffer whose rewards wait for progress labels that arrive late from the reward model.

Frames (one observation, the action taken from it, its camera stamp) are stored once, keyed by
``(episode_id, step)``; a transition t is frame t plus frame t+1 of the same episode, so images
are never stored twice. A frame's progress p_t [%] comes from ``label`` (a scored query frame) or
from the fill rule between two labelled frames of the same episode; rewards are computed from
progress at sampling time (``progress_to_reward``). Only n-step windows whose frames all carry
progress are sampled.

Label handling, in the order ``label`` checks it:

- progress outside [0, 100] or not finite: ``ValueError`` (the reward node never sends that).
- frame not stored yet but expected (a newer episode, or a later step of an open episode): the
  label waits in a bounded queue and is applied when the frame is inserted (``EARLY``).
- frame unknown otherwise (evicted, a step past the episode's end, an older episode): ``DROPPED``.
- ``stamp`` given and more than ``stamp_tolerance_s`` from the frame's stamp: ``MISMATCH``.
- frame already labelled by a query label: ``DUPLICATE`` (ignored; a label is never applied
  twice, also not after a checkpoint round trip, since labels are part of the saved state).
- otherwise ``APPLIED``; a frame that only had filled progress takes the label, and the segments
  on both sides are filled again.

A label that never comes leaves its frames pending until a later label of the same episode
arrives; the fill rule then bridges the wider gap (up to ``max_fill_gap`` steps). Frames with no
labelled neighbour on one side (the end of an episode whose labels stopped, or a gap too wide)
stay pending and every window over them is never sampled; ``pending_age`` grows, so the learner
can pause learning while control carries on. ``labels_early`` counts labels that waited for
their frame; each is counted again when its frame arrives (applied or mismatch) or when the
full queue drops it. The fill rule is ``ReplayConfig.fill``: 'linear' (default) interpolates
between the two labels, 'hold' repeats the earlier one.

Human interventions: ``add(..., intervened=True)`` flags a frame whose action was a human's
(the action taken, not the policy's proposal). With ``ReplayConfig.intervention_ratio`` > 0 a
share of every batch is drawn from windows that start at an intervened frame, as HIL-SERL and
RLPD sample a separate demonstration buffer; the rest is drawn from all windows, intervened or
not. Flags are labelled and filled like any other frame and saved in checkpoints; a checkpoint
written before the flag existed loads with every frame unflagged.

Checkpoints (``checkpoint_state``): the images, nearly all of a buffer's bytes, are saved in
segments of ``SEGMENT_FRAMES`` slots, each named anew when a frame is written into it, so a
checkpoint copies and writes only the segments written since the last one and the others are
shared between checkpoints. Everything else is small and saved whole.
"""
import collections
import enum
import logging
import math
import os
import re
import secrets
import threading
from typing import Any, Container, Mapping, NamedTuple

import numpy as np

from sole_r1_ros.rl.config import ReplayConfig
from sole_r1_ros.rl.shaping import progress_to_reward

_LOG = logging.getLogger(__name__)

STATE_KEY = 'state'
_NO_SLOT = -1
# Arrays added after the first checkpoint format: older checkpoints load them empty.
_ADDED_ARRAYS = frozenset({'intervened'})
# Slots per image segment of a checkpoint: 1,024 frames of two 64 px views are 25 MB, and a
# minute of frames at 10-40 Hz touches two or three of them.
SEGMENT_FRAMES = 1024
_IMAGE_PREFIX = 'image/'


class LabelOutcome(enum.Enum):
    """What ``ReplayBuffer.label`` did with a label."""

    APPLIED = 'applied'
    EARLY = 'early'
    DUPLICATE = 'duplicate'
    DROPPED = 'dropped'
    MISMATCH = 'mismatch'


def _segments_of(frames: int) -> int:
    """How many image segments ``frames`` slots take (the last one may be part full)."""
    return -(-int(frames) // SEGMENT_FRAMES)


class CheckpointState(NamedTuple):
    """``ReplayBuffer.checkpoint_state``: what a checkpoint of the buffer writes."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    segments: dict[str, np.ndarray]
    written: np.ndarray   # for ``mark_saved``


class Batch(NamedTuple):
    """B sampled transitions with n-step returns (numpy; the agent moves them to torch).

    - ``state``: B x D float32, proprioception / simulator state s_t.
    - ``images``: B x V x 3 x H x W uint8 camera views at t (V = len(image_keys)), or None when
      the buffer stores no images.
    - ``action``: B x A float32, a_t in [-1, 1].
    - ``reward``: B float32, R_t = sum_{i<m} gamma^i r_{t+i} with m = n, or less at an episode end.
    - ``discount``: B float32, gamma^m, or 0 when frame t+m is terminal.
    - ``next_state``: B x D float32, s_{t+m}.
    - ``next_images``: like ``images``, at t+m.
    - ``intervened``: B bool, a_t was a human's action (None when built by hand).
    """

    state: np.ndarray
    images: np.ndarray | None
    action: np.ndarray
    reward: np.ndarray
    discount: np.ndarray
    next_state: np.ndarray
    next_images: np.ndarray | None
    intervened: np.ndarray | None = None


def replay_bytes(capacity: int, state_dim: int, action_dim: int, views: int,
                 image_size: int) -> int:
    """What a full buffer takes in memory: its frames, states, actions and bookkeeping."""
    per_slot = (4 * (state_dim + action_dim) + 3 + 8 * 4 + 4 * 2
                + views * 3 * image_size * image_size)
    return int(capacity) * per_slot


def check_memory(capacity: int, state_dim: int, action_dim: int, views: int,
                 image_size: int) -> None:
    """Refuse a buffer that cannot fit this machine's memory; warn of one that barely does.

    ``np.zeros`` reserves lazily: a capacity past the memory was accepted at once and the run
    was killed hours later, when the buffer filled. A checkpoint copies only the image segments
    written since the last one, and a resume reads them one at a time, so the full buffer is
    about all it takes; the margin is for the rest of the learner.

    Raises:
        ValueError: the full buffer needs more than 80 % of the machine's memory.
    """
    needed = replay_bytes(capacity, state_dim, action_dim, views, image_size)
    try:
        total = os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):   # not a POSIX system: nothing to say
        return
    if needed > 0.8 * total:
        raise ValueError(
            f'replay.capacity {capacity} needs {needed / 1e9:.1f} GB when full ({views} views '
            f'of {image_size} px per frame), and this machine has {total / 1e9:.1f} GB: lower '
            'replay.capacity (or the views or image size)')
    available = _available_bytes()
    if available is not None and 1.2 * needed > available:
        _LOG.warning('replay.capacity %d needs %.1f GB when full, and %.1f GB are available '
                     'now: the run may be killed for memory when the buffer fills',
                     capacity, needed / 1e9, available / 1e9)


def _available_bytes() -> int | None:
    """The memory available now (MemAvailable of /proc/meminfo, Linux), or None."""
    try:
        with open('/proc/meminfo', encoding='ascii') as stream:
            for line in stream:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class ReplayBuffer:
    """Ring buffer of frames with pending progress labels; one lock around every operation."""

    def __init__(self, config: ReplayConfig, state_dim: int, action_dim: int,
                 image_keys: tuple[str, ...] = (), image_size: int = 64, n_step: int = 3,
                 discount: float = 0.99) -> None:
        """Allocate storage for ``config.capacity`` frames.

        Args:
            config: capacity, fill rule, shaping and the rest of the buffer's settings.
            state_dim: length of the state vector per frame.
            action_dim: length of an action.
            image_keys: camera views stored per frame, each 3 x image_size x image_size uint8.
            image_size: side of the stored views [px].
            n_step: n of the sampled n-step returns (from ``DrQConfig``).
            discount: gamma of the sampled n-step returns (from ``DrQConfig``).
        """
        if state_dim < 1 or action_dim < 1 or n_step < 1 or not 0.0 < discount <= 1.0:
            raise ValueError(f'bad replay shape: state_dim={state_dim}, action_dim={action_dim}, '
                             f'n_step={n_step}, discount={discount}')
        self.config = config
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.image_keys, self.image_size = tuple(image_keys), int(image_size)
        self.n_step, self.discount = int(n_step), float(discount)
        cap = config.capacity
        check_memory(cap, self.state_dim, self.action_dim, len(self.image_keys), self.image_size)
        self._arrays: dict[str, np.ndarray] = {
            STATE_KEY: np.zeros((cap, self.state_dim), np.float32),
            'action': np.zeros((cap, self.action_dim), np.float32),
            'has_action': np.zeros(cap, bool),
            'terminal': np.zeros(cap, bool),
            'intervened': np.zeros(cap, bool),
            'episode': np.full(cap, -1, np.int64),
            'step': np.full(cap, -1, np.int64),
            'stamp': np.zeros(cap, np.float64),
            'label': np.full(cap, np.nan, np.float32),      # query label, NaN = none
            'progress': np.full(cap, np.nan, np.float32),   # label or filled, NaN = pending
            'next': np.full(cap, _NO_SLOT, np.int64),
        }
        for key in self.image_keys:
            self._arrays[f'image/{key}'] = np.zeros((cap, 3, image_size, image_size), np.uint8)
        # A view's part of a segment's file name: its position, '_' and its key in safe
        # characters (two keys alike once cleaned cannot share files), no '-' (it separates
        # the parts).
        self._view_names = [f'{i}_{re.sub(r"[^A-Za-z0-9_]", "_", key)}'
                            for i, key in enumerate(self.image_keys)]
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(config.seed)
        self._reset_bookkeeping()

    def _reset_bookkeeping(self) -> None:
        self._cursor = 0
        self._size = 0
        self._index: dict[tuple[int, int], int] = {}
        # episode id -> [newest step, frames stored, ended (0/1)]
        self._episodes: dict[int, list[int]] = {}
        self._max_episode = -1
        self._early: collections.OrderedDict[tuple[int, int], tuple[float, float]] = (
            collections.OrderedDict())
        self._counts = {outcome.value: 0 for outcome in LabelOutcome}
        self._counts['inserted'] = 0
        self._newest_label_stamp = -math.inf
        # Which slots start a sampleable window, kept up to date by slot: a frame written,
        # evicted or given progress marks the windows over it (``_mark_windows``), and only
        # those are checked again. Checking all of them at the first draw or poll after a
        # change took 3-5 ms at 100,000 frames, once per frame added.
        self._window_ok = np.zeros(self.config.capacity, bool)
        self._stale_windows: set[int] = set()
        self._all_windows_stale = True
        # Image segments: the insertion count of each one's last write (-1: none since a
        # load), that count when a checkpoint last wrote it, and the name a loaded checkpoint
        # gave it. A segment is named by its last write and this buffer's token, drawn anew at
        # each load, so a name never stands for two contents.
        segments = _segments_of(self.config.capacity)
        self._last_write = np.full(segments, -1, np.int64)
        self._saved_write = np.full(segments, -1, np.int64)
        self._loaded_names: list[str | None] = [None] * segments
        self._token = secrets.token_hex(6)

    # ----------------------------------------------------------------------------- insert

    def add(self, episode_id: int, step: int, obs: Mapping[str, np.ndarray],
            action: np.ndarray | None, stamp: float, terminal: bool = False,
            intervened: bool = False) -> None:
        """Store frame ``step`` of ``episode_id`` and the action taken from it.

        Args:
            obs: ``'state'`` (D float) and one 3 x S x S uint8 array per image key
                (see ``preprocess.prepare_image``).
            action: a_t (A floats in [-1, 1]); None marks the episode's last frame.
            stamp: the frame's camera stamp [s]; labels may quote it.
            terminal: the last frame is a true terminal state (no bootstrapping past it);
                False means the episode was truncated (time limit, reset).
            intervened: ``action`` was a human's (teleoperation), not the policy's.

        Raises:
            ValueError: wrong shapes or non-finite values, a frame stored twice, a gap in the
                steps of an episode, an episode id lower than an earlier one, or ``terminal``
                with an action.
        """
        episode_id, step = int(episode_id), int(step)
        state = self._check_obs(obs)
        if action is not None:
            action = np.asarray(action, np.float32).reshape(-1)
            if action.shape != (self.action_dim,) or not np.all(np.isfinite(action)):
                raise ValueError(f'action must be {self.action_dim} finite values, got {action}')
        if terminal and action is not None:
            raise ValueError('a terminal frame is the last one: pass action=None')
        with self._lock:
            self._check_order(episode_id, step)
            slot = self._cursor
            if self._arrays['episode'][slot] >= 0:
                self._evict(slot)
            self._write(slot, episode_id, step, state, obs, action, float(stamp), terminal)
            self._arrays['intervened'][slot] = bool(intervened)
            early = self._early.pop((episode_id, step), None)
            if early is not None:
                outcome = self._label_locked(episode_id, step, *early)
                self._counts[outcome.value] += 1

    def _check_obs(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        state = np.asarray(obs[STATE_KEY], np.float32).reshape(-1)
        if state.shape != (self.state_dim,) or not np.all(np.isfinite(state)):
            raise ValueError(f'obs[{STATE_KEY!r}] must be {self.state_dim} finite values, '
                             f'got shape {state.shape}')
        shape = (3, self.image_size, self.image_size)
        for key in self.image_keys:
            image = obs.get(key)
            if image is None or image.shape != shape or image.dtype != np.uint8:
                got = None if image is None else (image.shape, image.dtype)
                raise ValueError(f'obs[{key!r}] must be a {shape} uint8 array, got {got}')
        return state

    def _check_order(self, episode_id: int, step: int) -> None:
        if episode_id < 0 or step < 0:
            raise ValueError(f'episode_id and step must be >= 0, got {episode_id}, {step}')
        info = self._episodes.get(episode_id)
        if info is None:
            if episode_id <= self._max_episode:
                raise ValueError(f'episode ids must increase: {episode_id} after '
                                 f'{self._max_episode}')
        elif info[2]:
            raise ValueError(f'episode {episode_id} already ended at step {info[0]}')
        elif step != info[0] + 1:
            raise ValueError(f'episode {episode_id}: step {step} does not follow {info[0]}')

    def _write(self, slot: int, episode_id: int, step: int, state: np.ndarray,
               obs: Mapping[str, np.ndarray], action: np.ndarray | None, stamp: float,
               terminal: bool) -> None:
        a = self._arrays
        a[STATE_KEY][slot] = state
        for key in self.image_keys:
            a[f'image/{key}'][slot] = obs[key]
        a['has_action'][slot] = action is not None
        a['action'][slot] = 0.0 if action is None else action
        a['terminal'][slot] = terminal
        a['episode'][slot], a['step'][slot], a['stamp'][slot] = episode_id, step, stamp
        a['label'][slot] = a['progress'][slot] = np.nan
        a['next'][slot] = _NO_SLOT
        self._last_write[slot // SEGMENT_FRAMES] = self._counts['inserted']
        previous = self._index.get((episode_id, step - 1))
        if previous is not None:
            a['next'][previous] = slot
        self._index[(episode_id, step)] = slot
        self._mark_windows(episode_id, step, step)
        info = self._episodes.setdefault(episode_id, [step, 0, 0])
        info[0], info[1], info[2] = step, info[1] + 1, int(action is None)
        self._max_episode = max(self._max_episode, episode_id)
        self._cursor = (slot + 1) % self.config.capacity
        self._size = min(self._size + 1, self.config.capacity)
        self._counts['inserted'] += 1

    def _evict(self, slot: int) -> None:
        a = self._arrays
        episode_id, step = int(a['episode'][slot]), int(a['step'][slot])
        self._mark_windows(episode_id, step, step)
        del self._index[(episode_id, step)]
        previous = self._index.get((episode_id, step - 1))
        if previous is not None:
            a['next'][previous] = _NO_SLOT
        info = self._episodes[episode_id]
        info[1] -= 1
        if info[1] == 0 and info[2]:
            del self._episodes[episode_id]
        a['episode'][slot] = -1

    # ------------------------------------------------------------------------------ label

    def label(self, episode_id: int, step: int, progress: float,
              stamp: float | None = None, overwrite: bool = False) -> LabelOutcome:
        """Give frame ``step`` of ``episode_id`` the progress [%] the reward model answered.

        See the module docstring for late, early, duplicated and mismatched labels.
        ``overwrite`` replaces a label the frame already has (a person's verdict over the
        model's answer) instead of counting a duplicate.

        Raises:
            ValueError: ``progress`` not finite or outside [0, 100].
        """
        progress = float(progress)
        if not math.isfinite(progress) or not 0.0 <= progress <= 100.0:
            raise ValueError(f'progress must be in [0, 100], got {progress}')
        episode_id, step = int(episode_id), int(step)
        stamp_value = math.nan if stamp is None else float(stamp)
        with self._lock:
            outcome = self._label_locked(episode_id, step, progress, stamp_value, overwrite)
            self._counts[outcome.value] += 1
        if outcome in (LabelOutcome.DROPPED, LabelOutcome.MISMATCH):
            _LOG.debug('label %s: episode %d step %d', outcome.value, episode_id, step)
        return outcome

    def _label_locked(self, episode_id: int, step: int, progress: float,
                      stamp: float, overwrite: bool = False) -> LabelOutcome:
        slot = self._index.get((episode_id, step))
        if slot is None:
            return self._hold_early(episode_id, step, progress, stamp)
        if (not math.isnan(stamp)
                and abs(stamp - self._arrays['stamp'][slot]) > self.config.stamp_tolerance_s):
            return LabelOutcome.MISMATCH
        if not math.isnan(self._arrays['label'][slot]) and not overwrite:
            return LabelOutcome.DUPLICATE
        self._apply_label(slot, progress, stamp)
        return LabelOutcome.APPLIED

    def _hold_early(self, episode_id: int, step: int, progress: float,
                    stamp: float) -> LabelOutcome:
        info = self._episodes.get(episode_id)
        expected = (episode_id > self._max_episode
                    or (info is not None and not info[2] and step > info[0]))
        if not expected or self.config.max_early_labels == 0:
            return LabelOutcome.DROPPED
        key = (episode_id, step)
        if key in self._early:
            return LabelOutcome.DUPLICATE
        if len(self._early) >= self.config.max_early_labels:
            self._early.popitem(last=False)
            self._counts[LabelOutcome.DROPPED.value] += 1
        self._early[key] = (progress, stamp)
        return LabelOutcome.EARLY

    def _apply_label(self, slot: int, progress: float, stamp: float) -> None:
        a = self._arrays
        a['label'][slot] = a['progress'][slot] = progress
        frame_stamp = float(a['stamp'][slot])
        self._newest_label_stamp = max(self._newest_label_stamp, frame_stamp)
        episode_id, step = int(a['episode'][slot]), int(a['step'][slot])
        self._mark_windows(episode_id, step, step)
        for direction in (-1, 1):
            self._fill_towards(episode_id, step, slot, direction)

    def _fill_towards(self, episode_id: int, step: int, slot: int, direction: int) -> None:
        """Fill the frames between ``slot`` and the nearest labelled frame in ``direction``."""
        a = self._arrays
        between = []
        k = step + direction
        while (episode_id, k) in self._index:
            other = self._index[(episode_id, k)]
            if not math.isnan(a['label'][other]):
                break
            between.append(other)
            k += direction
        else:
            return  # no labelled neighbour (yet): the frames stay pending
        if self.config.max_fill_gap and abs(k - step) > self.config.max_fill_gap:
            return  # too far apart to bridge: the frames stay pending
        (s_a, p_a), (s_b, p_b) = sorted([(step, float(a['label'][slot])),
                                         (k, float(a['label'][other]))])
        steps = a['step'][between].astype(np.float64)
        if self.config.fill == 'linear':
            values = p_a + (p_b - p_a) * (steps - s_a) / (s_b - s_a)
        else:
            values = np.full(len(between), p_a)
        a['progress'][between] = values
        self._mark_windows(episode_id, min(step, k) + 1, max(step, k) - 1)

    # ----------------------------------------------------------------------------- sample

    def _mark_windows(self, episode_id: int, first: int, last: int) -> None:
        """Steps ``first``..``last`` of an episode changed: check the windows over them again.

        A window starting at step t reads frames t..t+n, so those of the n frames before
        ``first`` are marked too. Called before an evicted frame leaves the index.
        """
        for step in range(first - self.n_step, last + 1):
            slot = self._index.get((episode_id, step))
            if slot is not None:
                self._stale_windows.add(slot)

    def _windows_complete(self, starts: np.ndarray) -> np.ndarray:
        """Whether each slot of ``starts`` starts a window of stored frames that carry progress."""
        a = self._arrays
        ok = (a['episode'][starts] >= 0) & a['has_action'][starts]
        if self.config.reward_mode == 'delta':
            ok &= ~np.isnan(a['progress'][starts])
        cur = starts
        done = np.zeros(len(starts), bool)
        for _ in range(self.n_step):
            nxt = a['next'][cur]
            safe = np.where(nxt >= 0, nxt, 0)
            linked = ((nxt >= 0) & (a['episode'][safe] == a['episode'][cur])
                      & (a['step'][safe] == a['step'][cur] + 1))
            ok &= done | (linked & ~np.isnan(a['progress'][safe]))
            cur = np.where(done, cur, safe)
            done |= ~a['has_action'][cur]
        return ok

    def _sampleable_mask(self) -> np.ndarray:
        """Slots that start an n-step window whose frames are all stored and carry progress.

        A view of the buffer's own array, good while the caller holds the lock.
        """
        size = self._size
        if self._all_windows_stale:
            self._window_ok[:] = False
            self._window_ok[:size] = self._windows_complete(np.arange(size))
        elif self._stale_windows:
            starts = np.fromiter(self._stale_windows, np.int64, len(self._stale_windows))
            self._window_ok[starts] = self._windows_complete(starts)
        self._stale_windows.clear()
        self._all_windows_stale = False
        return self._window_ok[:size]

    def sample(self, batch_size: int) -> Batch:
        """Draw ``batch_size`` windows (with replacement) from the sampleable ones.

        With ``intervention_ratio`` r > 0, k = round(r * batch_size) windows come from those
        starting at an intervened frame, but never more than there are such windows (too few:
        the rest fills the batch); the other batch_size - k are uniform over all windows.
        r = 0 is plain uniform sampling.

        Raises:
            RuntimeError: nothing is sampleable yet (check ``ready()`` first).
        """
        with self._lock:
            mask = self._sampleable_mask()
            candidates = np.flatnonzero(mask)
            if candidates.size == 0:
                raise RuntimeError('no fully labelled n-step window to sample; check ready()')
            ratio = self.config.intervention_ratio
            if ratio == 0.0:
                start = candidates[self._rng.integers(0, candidates.size, size=batch_size)]
                return self._gather(start)
            human = np.flatnonzero(mask & self._arrays['intervened'][:self._size])
            k = min(int(round(ratio * batch_size)), human.size)
            start = np.concatenate([
                human[self._rng.integers(0, human.size, size=k)],
                candidates[self._rng.integers(0, candidates.size, size=batch_size - k)]])
            return self._gather(start)

    def _gather(self, start: np.ndarray) -> Batch:
        a, cfg = self._arrays, self.config
        cur = start.copy()
        ret = np.zeros(len(start), np.float64)
        gamma_m = np.ones(len(start), np.float64)
        done = np.zeros(len(start), bool)
        for _ in range(self.n_step):
            nxt = np.where(done, cur, a['next'][cur])
            # r_{t+i} from p_{t+i+1} and p_{t+i}; the n-step return R_t = sum_i gamma^i r_{t+i}.
            r = progress_to_reward(a['progress'][nxt], a['progress'][cur], cfg.reward_mode,
                                   cfg.reward_scale, cfg.success_bonus, cfg.success_progress)
            ret += np.where(done, 0.0, gamma_m * np.nan_to_num(r))
            gamma_m = np.where(done, gamma_m, gamma_m * self.discount)
            cur = nxt
            done |= ~a['has_action'][cur]
        discount = gamma_m * ~a['terminal'][cur]
        images = next_images = None
        if self.image_keys:
            images = np.stack([a[f'image/{k}'][start] for k in self.image_keys], axis=1)
            next_images = np.stack([a[f'image/{k}'][cur] for k in self.image_keys], axis=1)
        return Batch(state=a[STATE_KEY][start], images=images, action=a['action'][start],
                     reward=ret.astype(np.float32), discount=discount.astype(np.float32),
                     next_state=a[STATE_KEY][cur], next_images=next_images,
                     intervened=a['intervened'][start])

    # ------------------------------------------------------------------------------ stats

    def __len__(self) -> int:
        return self._size

    def ready(self) -> bool:
        """Whether learning may start: enough sampleable windows and labelled share."""
        stats = self.stats()
        return (stats['sampleable'] >= max(1, self.config.min_labelled)
                and stats['labelled_share'] >= self.config.min_labelled_share)

    def stats(self) -> dict[str, float]:
        """Sizes and label counters, for logging and for pausing learning."""
        with self._lock:
            size = self._size
            labelled = int(np.count_nonzero(~np.isnan(self._arrays['progress'][:size])))
            mask = self._sampleable_mask()
            human = self._arrays['intervened'][:size] & (self._arrays['episode'][:size] >= 0)
            stats = {'size': size, 'labelled': labelled, 'pending': size - labelled,
                     'labelled_share': labelled / size if size else 0.0,
                     'sampleable': int(np.count_nonzero(mask)),
                     'intervened': int(np.count_nonzero(human)),
                     'intervened_sampleable': int(np.count_nonzero(mask & human)),
                     'early_waiting': len(self._early)}
            stats.update({f'labels_{name}': count for name, count in self._counts.items()
                          if name != 'inserted'})
            stats['inserted'] = self._counts['inserted']
        return stats

    def episode_stamps(self, episode_id: int) -> dict[int, int]:
        """The stored frames of ``episode_id``: stamp [ns] -> step (to match late labels)."""
        with self._lock:
            a, size = self._arrays, self._size
            slots = np.flatnonzero(a['episode'][:size] == int(episode_id))
            return {int(round(stamp * 1e9)): int(step)
                    for stamp, step in zip(a['stamp'][slots].tolist(), a['step'][slots].tolist())}

    def pending_age(self, now: float) -> float:
        """Seconds the newest frames have waited for a label.

        ``now`` minus the stamp of the newest labelled frame (or of the oldest stored frame while
        none is labelled); 0 for an empty buffer. It grows without bound when labels stop coming,
        so a learner can pause updates above a threshold.
        """
        with self._lock:
            if self._size == 0:
                return 0.0
            if math.isfinite(self._newest_label_stamp):
                return max(0.0, now - self._newest_label_stamp)
            occupied = self._arrays['episode'][:self._size] >= 0
            return max(0.0, now - float(self._arrays['stamp'][:self._size][occupied].min()))

    # ------------------------------------------------------------------------- checkpoint

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (for ``np.savez``) and JSON-able metadata that ``load_state_dict`` restores."""
        with self._lock:
            return self._state_locked(with_images=True)

    def checkpoint_state(self, saved: Container[str] = ()) -> 'CheckpointState':
        """What a checkpoint writes: ``state_dict`` with the images in named segments.

        Args:
            saved: file names of image segments already on disk; those are not copied.

        Returns:
            The arrays without images, the metadata (``image_segments`` names every segment's
            file per view, in slot order), a copy of each segment not in ``saved`` by file name
            (``.npy``), and what ``mark_saved`` takes once the checkpoint is on disk.
        """
        with self._lock:
            arrays, meta = self._state_locked(with_images=False)
            size, files, new = self._size, {key: [] for key in self.image_keys}, {}
            count = _segments_of(size)
            for segment in range(count):
                base = self._segment_name(segment)
                rows = slice(segment * SEGMENT_FRAMES, min(size, (segment + 1) * SEGMENT_FRAMES))
                for key, view in zip(self.image_keys, self._view_names):
                    name = f'{view}-{base}.npy'
                    files[key].append(name)
                    if name not in saved:
                        new[name] = self._arrays[_IMAGE_PREFIX + key][rows].copy()
            meta.update(image_segments=files, segment_frames=SEGMENT_FRAMES)
            return CheckpointState(arrays, meta, new, self._last_write[:count].copy())

    def mark_saved(self, written: np.ndarray) -> None:
        """A checkpoint of ``checkpoint_state``'s ``written`` is on disk: its segments are saved.

        A segment written to since that state stays unsaved.
        """
        with self._lock:
            count = len(written)
            same = self._last_write[:count] == written
            self._saved_write[:count][same] = written[same]

    def unsaved_frames(self) -> int:
        """Image slots the next checkpoint writes: segments written since one was saved."""
        with self._lock:
            if not self.image_keys:
                return 0
            return sum(min(SEGMENT_FRAMES, self._size - segment * SEGMENT_FRAMES)
                       for segment in range(_segments_of(self._size))
                       if self._last_write[segment] != self._saved_write[segment])

    def _segment_name(self, segment: int) -> str:
        """A segment's file name but its view's part; the caller holds the lock."""
        written = int(self._last_write[segment])
        if written < 0 and self._loaded_names[segment] is not None:
            return self._loaded_names[segment]   # not written to since it was loaded
        return f'{segment:06d}-{max(written, 0):012d}-{self._token}'

    def _state_locked(self, with_images: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The saved state; the caller holds the lock."""
        size = self._size
        arrays = {name: value[:size].copy() for name, value in self._arrays.items()
                  if with_images or not name.startswith(_IMAGE_PREFIX)}
        early = list(self._early.items())
        arrays['early/episode'] = np.array([k[0] for k, _ in early], np.int64)
        arrays['early/step'] = np.array([k[1] for k, _ in early], np.int64)
        arrays['early/progress'] = np.array([v[0] for _, v in early], np.float64)
        arrays['early/stamp'] = np.array([v[1] for _, v in early], np.float64)
        meta = {'cursor': self._cursor, 'size': size, 'counts': dict(self._counts),
                'episodes': [[e] + list(v) for e, v in self._episodes.items()],
                'max_episode': self._max_episode,
                'newest_label_stamp': (self._newest_label_stamp
                                       if math.isfinite(self._newest_label_stamp) else None),
                'rng': self._rng.bit_generator.state, 'capacity': self.config.capacity,
                'state_dim': self.state_dim, 'action_dim': self.action_dim,
                'image_keys': list(self.image_keys), 'image_size': self.image_size}
        return arrays, meta

    def load_state_dict(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any],
                        segments: Mapping[str, np.ndarray] | None = None,
                        evict: Container[str] = ()) -> int:
        """Restore what ``state_dict`` or ``checkpoint_state`` returned into a like buffer.

        Args:
            arrays: the saved arrays.
            meta: the saved metadata.
            segments: with ``checkpoint_state``'s metadata, each image segment by file name
                (read one at a time: a memory map of the file does, so the buffer is never
                held twice).
            evict: image segments' file names that are lost (damaged on disk): the frames of
                their slots are dropped, as if evicted, and the slots wait to be written again.

        Returns:
            The frames dropped for ``evict``.

        Raises:
            ValueError: the saved buffer has another capacity, shape or set of views.
            KeyError: an array or an image segment is missing.
        """
        mine = {'capacity': self.config.capacity, 'state_dim': self.state_dim,
                'action_dim': self.action_dim, 'image_keys': list(self.image_keys),
                'image_size': self.image_size}
        theirs = {key: meta[key] for key in mine}
        if mine != theirs:
            raise ValueError(f'replay checkpoint does not fit this buffer: {theirs} vs {mine}')
        with self._lock:
            self._reset_bookkeeping()
            size = int(meta['size'])
            in_segments, lost = self._load_segments(meta, segments or {}, size, evict)
            for name, value in self._arrays.items():
                if name in in_segments:
                    value[size:] = self._empty_value(value)
                    continue
                if name in arrays:
                    value[:size] = arrays[name]
                elif name in _ADDED_ARRAYS:   # a checkpoint older than this array
                    value[:size] = self._empty_value(value)
                else:
                    raise KeyError(f'replay checkpoint lacks the array {name!r}')
                value[size:] = self._empty_value(value)
            self._cursor, self._size = int(meta['cursor']), size
            self._counts.update(meta['counts'])
            self._episodes = {int(e[0]): [int(x) for x in e[1:]] for e in meta['episodes']}
            self._max_episode = int(meta['max_episode'])
            stamp = meta['newest_label_stamp']
            self._newest_label_stamp = -math.inf if stamp is None else float(stamp)
            self._rng.bit_generator.state = meta['rng']
            occupied = np.flatnonzero(self._arrays['episode'][:size] >= 0)
            keys = zip(self._arrays['episode'][occupied].tolist(),
                       self._arrays['step'][occupied].tolist())
            self._index = dict(zip(keys, occupied.tolist()))
            for e, s, p, t in zip(arrays['early/episode'].tolist(), arrays['early/step'].tolist(),
                                  arrays['early/progress'].tolist(),
                                  arrays['early/stamp'].tolist()):
                self._early[(e, s)] = (p, t)
            evicted = sum(self._drop_segment(segment) for segment in lost)
        return evicted

    def _drop_segment(self, segment: int) -> int:
        """Evict the frames of a lost image segment; returns how many; the caller holds the lock.

        Its slots keep their place in the ring and are written again when the cursor comes
        round; windows that cross them are not sampleable (their frames' links are cut), and a
        label for one of their frames is dropped.
        """
        rows = range(segment * SEGMENT_FRAMES,
                     min(self._size, (segment + 1) * SEGMENT_FRAMES))
        occupied = [slot for slot in rows if self._arrays['episode'][slot] >= 0]
        for slot in occupied:
            self._evict(slot)
        for key in self.image_keys:
            self._arrays[_IMAGE_PREFIX + key][rows.start:rows.stop] = 0
        # a new name (the load's token, write count 0, which no write after a load gives),
        # unsaved until a checkpoint writes it
        self._loaded_names[segment] = None
        self._saved_write[segment] = -2
        return len(occupied)

    def _load_segments(self, meta: Mapping[str, Any], segments: Mapping[str, np.ndarray],
                       size: int, evict: Container[str] = ()) -> tuple[set[str], set[int]]:
        """Copy the image segments ``meta`` names into the arrays.

        Keeps their names, so the next checkpoint shares the segments nothing was written to;
        images given otherwise (``state_dict``'s, format 1's) are written by the next one.

        Returns:
            The arrays filled, and the segments (as this buffer cuts them) one of whose views'
            files is in ``evict``.
        """
        files = meta.get('image_segments')
        ours = _segments_of(size)
        if files is None or int(meta['segment_frames']) != SEGMENT_FRAMES:
            self._saved_write[:ours] = -2   # not on disk as this buffer cuts them
        if files is None:   # images in arrays
            return set(), set()
        per = int(meta['segment_frames'])
        count = -(-size // per)
        lost: set[int] = set()
        for key in self.image_keys:
            names = files[key]
            if len(names) != count:
                raise ValueError(f'{len(names)} image segments of {key!r} for {size} frames')
            for segment, name in enumerate(names):
                rows = slice(segment * per, min(size, (segment + 1) * per))
                if name in evict:
                    lost.update(range(rows.start // SEGMENT_FRAMES,
                                      _segments_of(rows.stop)))
                    continue
                data = segments[name]
                if data.shape != self._arrays[_IMAGE_PREFIX + key][rows].shape:
                    raise ValueError(f'image segment {name} has shape {data.shape}')
                self._arrays[_IMAGE_PREFIX + key][rows] = data
        if per == SEGMENT_FRAMES and self.image_keys:   # kept where segments are cut alike
            bases = [name.split('-', 1)[1][:-len('.npy')] for name in files[self.image_keys[0]]]
            self._loaded_names[:len(bases)] = bases
        return {_IMAGE_PREFIX + key for key in self.image_keys}, lost

    @staticmethod
    def _empty_value(value: np.ndarray) -> Any:
        if value.dtype.kind == 'f':
            return 0.0 if value.ndim > 1 else np.nan
        return -1 if value.dtype == np.int64 else 0
