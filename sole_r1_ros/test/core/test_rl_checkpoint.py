"""Checkpoints: bit-exact round trip, no double labelling after resume, corrupt ones skipped."""
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from sole_r1_ros.rl.checkpoint import (  # noqa: E402
    CheckpointError, list_checkpoints, load_checkpoint, load_latest, lock_directory, restore,
    save_checkpoint, saved_segments)
from sole_r1_ros.rl.config import DrQConfig, ReplayConfig  # noqa: E402
from sole_r1_ros.rl.drq import DrQAgent  # noqa: E402
from sole_r1_ros.rl.replay import LabelOutcome, ReplayBuffer  # noqa: E402

torch.set_num_threads(1)
KEYS = ('external', 'wrist')
CONFIG = DrQConfig(variant='pixels', hidden_dim=16, feature_dim=8, batch_size=8, seed_steps=2,
                   image_size=16, encoder_channels=4, encoder_strides=(2, 1, 1), image_keys=KEYS)


def build(seed: int = 0) -> tuple[DrQAgent, ReplayBuffer]:
    agent = DrQAgent(CONFIG, state_dim=3, action_dim=2)
    replay = ReplayBuffer(ReplayConfig(capacity=50, min_labelled=1, seed=seed), 3, 2, KEYS, 16,
                          n_step=2, discount=0.9)
    return agent, replay


def fill(agent: DrQAgent, replay: ReplayBuffer, episodes: int = 2, length: int = 12) -> None:
    """Fill a buffer with episodes of frames, labels and a few updates.

    Labels for every other frame of all but the last 4 steps, one early label.
    """
    rng = np.random.default_rng(0)
    for episode in range(episodes):
        for t in range(length + 1):
            obs = {'state': rng.normal(size=3).astype(np.float32)}
            for key in KEYS:
                obs[key] = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
            action = None if t == length else agent.act(obs, explore=True)
            replay.add(episode, t, obs, action, stamp=episode * 100.0 + t)
    for episode in range(episodes):
        for t in range(0, length - 3, 2):
            replay.label(episode, t, 5.0 * t, stamp=episode * 100.0 + t)
    replay.label(episodes, 0, 1.0)   # early: its frame is not stored yet
    for _ in range(3):
        agent.update(replay.sample(8))


def assert_same_replay(a: ReplayBuffer, b: ReplayBuffer) -> None:
    arrays_a, meta_a = a.state_dict()
    arrays_b, meta_b = b.state_dict()
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    assert meta_a == meta_b
    assert a.stats() == b.stats()


def assert_same_agent(a: DrQAgent, b: DrQAgent) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    for name in ('encoder', 'actor', 'critic', 'critic_target'):
        for key, value in state_a[name].items():
            assert torch.equal(value, state_b[name][key]), f'{name}.{key}'
    for name in ('encoder_opt', 'actor_opt', 'critic_opt'):
        for index, slots in state_a[name]['state'].items():
            for key, value in slots.items():
                assert torch.equal(value, state_b[name]['state'][index][key]), f'{name}.{key}'
    assert state_a['counters'] == state_b['counters']


def test_round_trip_restores_replay_labels_counters_and_parameters_bit_exactly(tmp_path):
    agent, replay = build()
    fill(agent, replay)
    counters = {'env_steps': 24, 'learning_steps': 10, 'episodes': 2, 'next_episode_id': 2}
    path = save_checkpoint(tmp_path, agent, replay, counters)
    assert path.name == 'ckpt-00000000'
    agent2, replay2 = build(seed=7)
    assert restore(load_latest(tmp_path), agent2, replay2) == counters
    assert_same_agent(agent, agent2)
    assert_same_replay(replay, replay2)
    assert replay2.stats()['early_waiting'] == 1
    # the same RNG states: identical next samples and updates
    batch, batch2 = replay.sample(8), replay2.sample(8)
    for x, y in zip(batch, batch2):
        np.testing.assert_array_equal(x, y)
    assert agent.update(batch) == agent2.update(batch2)


def test_after_resume_labelling_an_already_labelled_step_is_a_noop(tmp_path):
    agent, replay = build()
    fill(agent, replay)
    save_checkpoint(tmp_path, agent, replay, {})
    agent2, replay2 = build()
    restore(load_latest(tmp_path), agent2, replay2)
    before = replay2.stats()
    assert replay2.label(0, 2, 99.0, stamp=2.0) is LabelOutcome.DUPLICATE
    assert replay2.label(2, 0, 1.0) is LabelOutcome.DUPLICATE   # the early label was kept
    arrays, _ = replay2.state_dict()
    slot = int(np.flatnonzero((arrays['episode'] == 0) & (arrays['step'] == 2))[0])
    assert arrays['progress'][slot] == 10.0
    assert replay2.stats()['labels_applied'] == before['labels_applied']
    assert replay2.stats()['labels_duplicate'] == before['labels_duplicate'] + 2
    # a label that was still pending when saved is applied exactly once after resume
    assert replay2.label(0, 10, 50.0) is LabelOutcome.APPLIED
    assert replay2.label(0, 10, 50.0) is LabelOutcome.DUPLICATE


def _full_disk_once(monkeypatch, before_each=lambda: None) -> None:
    """Make np.savez (a checkpoint's replay.npz) fail with ENOSPC once, then write."""
    import errno
    savez, calls = np.savez, []

    def full_once(*args, **kwargs):
        before_each()
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return savez(*args, **kwargs)
    monkeypatch.setattr(np, 'savez', full_once)


def _two_checkpoints(tmp_path: Path) -> tuple[Path, Path]:
    agent, replay = build()
    fill(agent, replay)
    first = save_checkpoint(tmp_path, agent, replay, {'env_steps': 1})
    second = save_checkpoint(tmp_path, agent, replay, {'env_steps': 2})
    return first, second


def test_flipped_bytes_in_the_latest_checkpoint_fall_back_to_the_previous(tmp_path):
    first, second = _two_checkpoints(tmp_path)
    data = bytearray((second / 'replay.npz').read_bytes())
    data[len(data) // 2] ^= 0xFF
    (second / 'replay.npz').write_bytes(bytes(data))
    checkpoint = load_latest(tmp_path)
    assert checkpoint.path == first and checkpoint.counters == {'env_steps': 1}


def _replant(checkpoint: Path, name: str, content: bytes) -> None:
    """Replace one file of a checkpoint and its manifest entry, so it verifies as written."""
    (checkpoint / name).write_bytes(content)
    manifest = json.loads((checkpoint / 'manifest.json').read_text())
    manifest[name] = {'size': len(content), 'sha256': hashlib.sha256(content).hexdigest()}
    (checkpoint / 'manifest.json').write_text(json.dumps(manifest))


class _RunsOnLoad:
    """Unpickled, makes the folder it names: what a pickle may do is run any callable."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_an_agent_file_that_is_not_weights_is_refused_unrun(tmp_path):
    """agent.pt is read weights-only: a pickled object in it is refused, never unpickled.

    The refusal is a CheckpointError, so a resume goes back to the previous checkpoint (it
    escaped as torch's UnpicklingError, whose message suggests loading with weights_only=False).
    """
    first, second = _two_checkpoints(tmp_path / 'run')
    marker = tmp_path / 'ran'
    planted = tmp_path / 'planted.pt'
    torch.save({'actor': _RunsOnLoad(marker)}, planted)
    _replant(second, 'agent.pt', planted.read_bytes())
    with pytest.raises(CheckpointError, match='unreadable checkpoint'):
        load_checkpoint(second)
    assert not marker.exists()
    assert load_latest(tmp_path / 'run').path == first
    assert not marker.exists()


def test_a_checkpoint_of_a_format_this_version_cannot_read_is_refused(tmp_path):
    """A newer learner's checkpoint (format 3) would be read as if it were this one's."""
    first, second = _two_checkpoints(tmp_path)
    meta = json.loads((second / 'meta.json').read_text())
    _replant(second, 'meta.json', json.dumps({**meta, 'format_version': 3}).encode())
    with pytest.raises(CheckpointError, match=r'format version 3 is not one of \(1, 2\)'):
        load_checkpoint(second)
    assert load_latest(tmp_path).path == first


@pytest.mark.parametrize('change', ['cut', 'grown'])
def test_a_shared_segment_whose_size_changed_is_written_again(tmp_path, change):
    """A segment cut short or grown on disk counts as unsaved: the next checkpoint writes it.

    Counted as saved, every checkpoint to come named the damaged file and none loaded.
    """
    agent, replay = build()
    fill(agent, replay)
    save_checkpoint(tmp_path, agent, replay, {'n': 0})
    assert len(saved_segments(tmp_path)) == len(KEYS)
    [segment, *_] = sorted((tmp_path / 'replay-segments').iterdir())
    data = segment.read_bytes()
    segment.write_bytes(data[:-16] if change == 'cut' else data + bytes(16))
    assert set(saved_segments(tmp_path)) == set(_store(tmp_path)) - {segment.name}
    save_checkpoint(tmp_path, agent, replay, {'n': 1})
    assert load_latest(tmp_path).counters == {'n': 1}
    assert segment.read_bytes() == data


@pytest.mark.parametrize('damage', ['truncate', 'delete', 'no_manifest'])
def test_partial_latest_checkpoint_falls_back_to_the_previous(tmp_path, damage):
    first, second = _two_checkpoints(tmp_path)
    if damage == 'truncate':
        data = (second / 'agent.pt').read_bytes()
        (second / 'agent.pt').write_bytes(data[:len(data) // 3])
    elif damage == 'delete':
        (second / 'meta.json').unlink()
    else:
        (second / 'manifest.json').unlink()
    assert load_latest(tmp_path).path == first


def test_temp_directory_of_an_interrupted_save_is_ignored_and_cleaned(tmp_path):
    first, second = _two_checkpoints(tmp_path)
    partial = tmp_path / '.tmp-ckpt-00000002-123'
    partial.mkdir()
    (partial / 'agent.pt').write_bytes(b'half a checkpoint')
    assert load_latest(tmp_path).path == second
    agent, replay = build()
    third = save_checkpoint(tmp_path, agent, replay, {})
    assert third.name == 'ckpt-00000002' and not partial.exists()


def test_no_valid_checkpoint_raises_checkpoint_error_with_the_cause(tmp_path):
    with pytest.raises(CheckpointError, match='no checkpoint'):
        load_latest(tmp_path)
    first, second = _two_checkpoints(tmp_path)
    for path in (first, second):
        (path / 'agent.pt').write_bytes(b'garbage')
    with pytest.raises(CheckpointError, match='no valid checkpoint') as info:
        load_latest(tmp_path)
    assert isinstance(info.value.__cause__, CheckpointError)


def test_a_directory_has_one_writer_at_a_time(tmp_path):
    import os
    held = lock_directory(tmp_path)
    with pytest.raises(CheckpointError, match=f'in use by another learner \\(pid {os.getpid()}'):
        lock_directory(tmp_path)
    held.close()                                       # released: the next one may write
    lock_directory(tmp_path).close()


def test_a_full_disk_while_torch_writes_is_an_os_error_and_leaves_nothing(tmp_path, monkeypatch):
    """A full disk makes torch.save raise RuntimeError; the stop path catches OSError."""
    agent, replay = build()
    first = save_checkpoint(tmp_path, agent, replay, {})

    def full_disk(*args, **kwargs):
        raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos')
    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OSError, match='agent.pt'):
        save_checkpoint(tmp_path, agent, replay, {})
    assert list_checkpoints(tmp_path) == [first]
    assert not list(tmp_path.glob('.tmp-ckpt-*'))


def test_a_disk_with_room_for_the_kept_checkpoints_only_still_takes_the_next(
        tmp_path, monkeypatch):
    """On a full disk the oldest checkpoint is retired and the write tried again.

    Old ones were retired only after a new one was written, so a disk that held three never
    took a fourth: hours of a run with its newest checkpoint going stale. A kill in the middle
    of a retirement leaves a folder the next write sweeps.
    """
    agent, replay = build()
    for _ in range(3):
        save_checkpoint(tmp_path, agent, replay, {}, keep=3)
    _full_disk_once(monkeypatch)
    (tmp_path / '.deleting-ckpt-ckpt-00000000').mkdir()   # a retirement a kill cut short
    newest = save_checkpoint(tmp_path, agent, replay, {}, keep=3)
    assert newest.name == 'ckpt-00000003'
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        'ckpt-00000003', 'ckpt-00000002', 'ckpt-00000001']
    assert not list(tmp_path.glob('.deleting-*'))


def test_a_full_disk_retires_nothing_when_that_would_not_make_room(tmp_path, monkeypatch):
    """A full disk retires the oldest checkpoint only where that makes room for the new one.

    While the replay fills each checkpoint is larger than the oldest: a full disk retired one
    good checkpoint per try, down to one, and the write failed anyway.
    """
    import errno
    import shutil
    from collections import namedtuple

    from sole_r1_ros.rl import checkpoint
    agent, replay = build()
    for _ in range(3):
        save_checkpoint(tmp_path, agent, replay, {}, keep=3)
    fill(agent, replay)                      # the next checkpoint is larger than the oldest

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(np, 'savez', full)
    usage, real = namedtuple('usage', 'total used free'), shutil.disk_usage
    monkeypatch.setattr(checkpoint.shutil, 'disk_usage', lambda path: usage(10**9, 10**9, 1000))
    with pytest.raises(OSError, match='no space for a checkpoint of .* the 3 kept are left'):
        save_checkpoint(tmp_path, agent, replay, {}, keep=3)
    assert len(list_checkpoints(tmp_path)) == 3
    monkeypatch.setattr(checkpoint.shutil, 'disk_usage', real)
    with pytest.raises(OSError, match='No space left'):   # room once one goes: it is tried
        save_checkpoint(tmp_path, agent, replay, {}, keep=3)
    assert len(list_checkpoints(tmp_path)) == 2


def test_only_the_last_k_checkpoints_are_kept(tmp_path):
    agent, replay = build()
    for _ in range(4):
        save_checkpoint(tmp_path, agent, replay, {}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ['ckpt-00000003', 'ckpt-00000002']


def test_restore_into_a_buffer_of_another_shape_raises_checkpoint_error(tmp_path):
    agent, replay = build()
    save_checkpoint(tmp_path, agent, replay, {})
    other = ReplayBuffer(ReplayConfig(capacity=60), 3, 2, KEYS, 16)
    with pytest.raises(CheckpointError, match='does not fit'):
        restore(load_latest(tmp_path), build()[0], other)


def test_pending_age_survives_the_round_trip(tmp_path):
    agent, replay = build()
    fill(agent, replay)
    save_checkpoint(tmp_path, agent, replay, {})
    agent2, replay2 = build()
    restore(load_latest(tmp_path), agent2, replay2)
    assert replay2.pending_age(now=150.0) == replay.pending_age(now=150.0)
    assert math.isclose(replay2.pending_age(now=150.0), 150.0 - 108.0)


def _many_frames(replay: ReplayBuffer, episode: int, frames: int, seed: int = 0) -> None:
    """Store ``frames`` frames of one episode, labelled every 10 steps."""
    rng = np.random.default_rng(seed)
    for t in range(frames):
        obs = {'state': rng.normal(size=3).astype(np.float32)}
        for key in KEYS:
            obs[key] = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
        last = t == frames - 1
        replay.add(episode, t, obs, None if last else np.zeros(2, np.float32), stamp=float(t))
    for t in range(0, frames, 10):
        replay.label(episode, t, 50.0)


def _big(capacity: int = 4000) -> tuple[DrQAgent, ReplayBuffer]:
    agent = DrQAgent(CONFIG, state_dim=3, action_dim=2)
    return agent, ReplayBuffer(ReplayConfig(capacity=capacity, min_labelled=1), 3, 2, KEYS, 16,
                               n_step=2, discount=0.9)


def _store(root: Path) -> dict[str, int]:
    """The image segments on disk, by name: their inode (unchanged if not written again)."""
    return {p.name: p.stat().st_ino for p in (root / 'replay-segments').iterdir()}


def test_a_checkpoint_writes_only_the_image_segments_written_since_the_last(tmp_path):
    """A checkpoint wrote the whole replay each time: 2.5 GB a minute with a full buffer.

    The images are shared segments: the next checkpoint writes those frames went into, the
    others stay as they are, and segments no checkpoint names any more are deleted.
    """
    from sole_r1_ros.rl.replay import SEGMENT_FRAMES
    agent, replay = _big()
    _many_frames(replay, 0, 2 * SEGMENT_FRAMES + 100)     # segments 0 and 1 full, 2 begun
    save_checkpoint(tmp_path, agent, replay, {'n': 0}, keep=1)
    first = _store(tmp_path)
    assert len(first) == 3 * len(KEYS)
    assert replay.unsaved_frames() == 0
    _many_frames(replay, 1, 50, seed=1)                   # into segment 2 only
    assert replay.unsaved_frames() == 150
    save_checkpoint(tmp_path, agent, replay, {'n': 1}, keep=1)
    second = _store(tmp_path)
    kept = {name: inode for name, inode in first.items() if name in second}
    assert len(kept) == 2 * len(KEYS) and all(second[n] == i for n, i in kept.items())
    assert len(second) == 3 * len(KEYS)                   # segment 2's old files deleted
    agent2, again = _big()
    assert restore(load_latest(tmp_path), agent2, again) == {'n': 1}
    assert_same_replay(replay, again)


def test_a_full_buffer_wraps_into_new_segments_and_a_resume_shares_the_old(tmp_path):
    from sole_r1_ros.rl.replay import SEGMENT_FRAMES
    agent, replay = _big(capacity=2 * SEGMENT_FRAMES)
    _many_frames(replay, 0, 2 * SEGMENT_FRAMES + 30)      # wrapped: segment 0 written again
    save_checkpoint(tmp_path, agent, replay, {}, keep=2)
    agent2, resumed = _big(capacity=2 * SEGMENT_FRAMES)
    restore(load_latest(tmp_path), agent2, resumed)
    assert_same_replay(replay, resumed)
    assert resumed.unsaved_frames() == 0                  # its segments are on disk already
    before = _store(tmp_path)
    save_checkpoint(tmp_path, agent2, resumed, {}, keep=2)
    assert _store(tmp_path) == before                     # nothing written again
    _many_frames(resumed, 1, 20, seed=3)
    _many_frames(replay, 1, 20, seed=3)
    save_checkpoint(tmp_path, agent2, resumed, {}, keep=2)
    assert len(_store(tmp_path)) == 3 * len(KEYS)         # segment 0 anew beside the old
    agent3, third = _big(capacity=2 * SEGMENT_FRAMES)
    restore(load_latest(tmp_path), agent3, third)
    arrays, resumed_arrays = third.state_dict()[0], replay.state_dict()[0]
    for name in arrays:
        np.testing.assert_array_equal(arrays[name], resumed_arrays[name], err_msg=name)


def test_a_checkpoint_of_the_first_format_still_loads(tmp_path, monkeypatch):
    """Format 1 kept every image in replay.npz; a run saved so resumes, and saves anew."""
    from sole_r1_ros.rl import checkpoint
    agent, replay = build()
    fill(agent, replay)
    arrays, meta = replay.state_dict()
    monkeypatch.setattr(checkpoint, 'FORMAT_VERSION', 1)
    checkpoint.write_checkpoint(tmp_path, checkpoint.Checkpoint(
        path=None, agent_state=agent.state_dict(), replay_arrays=arrays, replay_meta=meta,
        counters={'old': True}))
    monkeypatch.undo()
    assert not (tmp_path / 'replay-segments').exists()
    agent2, replay2 = build()
    assert restore(load_latest(tmp_path), agent2, replay2) == {'old': True}
    assert_same_replay(replay, replay2)
    save_checkpoint(tmp_path, agent2, replay2, {})        # the images now go to segments
    assert len(_store(tmp_path)) == len(KEYS)


def test_a_damaged_image_segment_is_named_and_a_write_cut_short_leaves_none(
        tmp_path, monkeypatch):
    agent, replay = build()
    fill(agent, replay)
    save_checkpoint(tmp_path, agent, replay, {})
    [segment, *_] = sorted((tmp_path / 'replay-segments').iterdir())
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match='no valid checkpoint') as info:
        load_latest(tmp_path)
    assert f'{segment.name} fails its SHA-256' in str(info.value.__cause__)
    segment.unlink()
    with pytest.raises(CheckpointError, match='no valid checkpoint') as info:
        load_latest(tmp_path)
    assert segment.name in str(info.value.__cause__)

    _many_frames(replay, 5, 10)                           # new frames: new segments to write

    def cut(*args, **kwargs):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(np, 'savez', cut)
    before = set(_store(tmp_path))
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, agent, replay, {})
    assert set(_store(tmp_path)) == before                # its segments taken back


def test_a_full_disk_frees_the_segments_only_the_retired_checkpoint_named(tmp_path, monkeypatch):
    """Retiring the oldest checkpoint makes room only once its own segments are deleted too."""
    agent, replay = build()
    _many_frames(replay, 0, 10)
    save_checkpoint(tmp_path, agent, replay, {}, keep=3)
    oldest = set(_store(tmp_path))                          # named by the first alone, soon
    _many_frames(replay, 1, 10, seed=1)
    for _ in range(2):
        save_checkpoint(tmp_path, agent, replay, {}, keep=3)
    _many_frames(replay, 2, 10, seed=2)
    there = []
    _full_disk_once(monkeypatch, lambda: there.append(oldest & set(_store(tmp_path))))
    save_checkpoint(tmp_path, agent, replay, {}, keep=3)
    assert there == [oldest, set()]                         # gone before the second try
    assert len(list_checkpoints(tmp_path)) == 3


def test_a_full_disk_after_resuming_from_an_older_checkpoint_keeps_what_it_needs(
        tmp_path, monkeypatch):
    """The newest damaged, the run resumed from the one before, then a full disk.

    Retiring that one deleted the segments the new checkpoint shares with it: the retry
    failed and no checkpoint loaded. Nothing is retired while no newer checkpoint loads.
    """
    from sole_r1_ros.rl.replay import SEGMENT_FRAMES
    agent, replay = _big(capacity=SEGMENT_FRAMES + 400)
    _many_frames(replay, 0, SEGMENT_FRAMES + 300)
    save_checkpoint(tmp_path, agent, replay, {'n': 0}, keep=2)
    _many_frames(replay, 1, 300, seed=1)                  # wraps into segment 0
    newest = save_checkpoint(tmp_path, agent, replay, {'n': 1}, keep=2)
    (newest / 'agent.pt').write_bytes(b'damaged')
    agent2, resumed = _big(capacity=SEGMENT_FRAMES + 400)
    assert restore(load_latest(tmp_path), agent2, resumed) == {'n': 0}
    _many_frames(resumed, 2, 10, seed=2)
    _full_disk_once(monkeypatch)
    with pytest.raises(OSError, match='only one that loads'):
        save_checkpoint(tmp_path, agent2, resumed, {'n': 2}, keep=2)
    assert load_latest(tmp_path).counters == {'n': 0}     # still there
    save_checkpoint(tmp_path, agent2, resumed, {'n': 2}, keep=2)   # room again
    agent3, third = _big(capacity=SEGMENT_FRAMES + 400)
    assert restore(load_latest(tmp_path), agent3, third) == {'n': 2}
    assert_same_replay(resumed, third)


def test_a_failure_after_the_checkpoint_is_published_keeps_its_segments(tmp_path, monkeypatch):
    """Syncing the folder after the rename failed: its new segments were deleted."""
    from sole_r1_ros.rl import checkpoint
    agent, replay = build()
    fill(agent, replay)
    real = checkpoint.fsync_dir

    def failing(path):
        if Path(path) == tmp_path:
            raise OSError(24, 'Too many open files')
        real(path)
    monkeypatch.setattr(checkpoint, 'fsync_dir', failing)
    path = save_checkpoint(tmp_path, agent, replay, {'n': 1})
    agent2, replay2 = build()
    assert restore(load_latest(tmp_path), agent2, replay2) == {'n': 1}
    assert load_latest(tmp_path).path == path
    assert_same_replay(replay, replay2)


def test_frames_are_unsaved_until_a_checkpoint_of_them_is_written(tmp_path, monkeypatch):
    """The stop budget's estimate: a failed write saved nothing; a state-only buffer no image."""
    from sole_r1_ros.rl.replay import SEGMENT_FRAMES
    agent, replay = _big()
    _many_frames(replay, 0, SEGMENT_FRAMES + 10)
    assert replay.unsaved_frames() == SEGMENT_FRAMES + 10

    def full(*args, **kwargs):
        raise OSError(28, 'No space left on device')
    with monkeypatch.context() as patch:
        patch.setattr(np, 'savez', full)
        with pytest.raises(OSError):
            save_checkpoint(tmp_path, agent, replay, {})
    assert replay.unsaved_frames() == SEGMENT_FRAMES + 10
    save_checkpoint(tmp_path, agent, replay, {})
    assert replay.unsaved_frames() == 0
    _many_frames(replay, 1, 5, seed=1)
    assert replay.unsaved_frames() == 15                  # segment 1, 10 + 5 frames
    states = ReplayBuffer(ReplayConfig(capacity=100), 3, 2)
    _many_frames_into_states(states)
    assert states.unsaved_frames() == 0


def _many_frames_into_states(replay: ReplayBuffer) -> None:
    for t in range(20):
        replay.add(0, t, {'state': np.zeros(3, np.float32)},
                   None if t == 19 else np.zeros(2, np.float32), stamp=float(t))


def test_a_damaged_shared_segment_is_written_again_from_the_buffer(tmp_path):
    """One copy of each image: a flipped bit would be named by every checkpoint to come."""
    from sole_r1_ros.rl.online import OnlineLearner
    learner = OnlineLearner(CONFIG, ReplayConfig(capacity=200, min_labelled=10**9), 3, 2,
                            checkpoint_dir=tmp_path)
    learner.start_episode('a')
    rng = np.random.default_rng(0)
    for t in range(50):
        learner.record({'state': np.zeros(3, np.float32),
                        **{k: rng.integers(0, 256, (3, 16, 16), np.uint8) for k in KEYS}},
                       np.zeros(2, np.float32), (t + 1) * 10**8)
    learner.save()
    [segment, *_] = sorted((tmp_path / 'replay-segments').iterdir())
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0x01                                      # the size unchanged
    segment.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_latest(tmp_path)
    learner.save()                                        # checks it, writes it again
    load_latest(tmp_path)


def test_a_folder_that_cannot_load_does_not_keep_every_segment(tmp_path):
    """An unreadable folder without manifest or meta.json stopped the deleting for good."""
    agent, replay = build()
    _many_frames(replay, 0, 10)
    save_checkpoint(tmp_path, agent, replay, {}, keep=1)
    (tmp_path / 'ckpt-00000000.unreadable').mkdir()       # set aside, its files lost
    for episode in range(1, 4):
        _many_frames(replay, episode, 10, seed=episode)
        save_checkpoint(tmp_path, agent, replay, {}, keep=1)
    assert len(_store(tmp_path)) == len(KEYS)             # the newest's only


def test_a_restore_into_a_used_buffer_never_names_two_contents_alike(tmp_path):
    """The same token after a restore: an older state grown again took a newer one's names."""
    agent, replay = _big()
    _many_frames(replay, 0, 100)
    older = save_checkpoint(tmp_path, agent, replay, {'n': 'older'}, keep=3)
    _many_frames(replay, 1, 50, seed=1)
    save_checkpoint(tmp_path, agent, replay, {'n': 'newer'}, keep=3)
    from sole_r1_ros.rl.checkpoint import load_checkpoint
    restore(load_checkpoint(older), agent, replay)
    _many_frames(replay, 1, 50, seed=2)                   # as many frames, other pictures
    save_checkpoint(tmp_path, agent, replay, {'n': 'third'}, keep=3)
    agent2, again = _big()
    assert restore(load_latest(tmp_path), agent2, again) == {'n': 'third'}
    assert_same_replay(replay, again)


def test_views_whose_names_clean_alike_keep_their_own_segments():
    keys = tuple(['1a'] + [f'v{i}' for i in range(2, 11)] + ['a', 'cam/1', 'cam 1'])
    replay = ReplayBuffer(ReplayConfig(capacity=10), 3, 2, keys, 4)
    for t in range(2):
        obs = {'state': np.zeros(3, np.float32),
               **{k: np.full((3, 4, 4), i, np.uint8) for i, k in enumerate(keys)}}
        replay.add(0, t, obs, None if t else np.zeros(2, np.float32), stamp=float(t))
    segments = replay.checkpoint_state().segments
    assert len(segments) == len(keys)
    assert sorted(int(a.max()) for a in segments.values()) == list(range(len(keys)))


def _damage(segment: Path) -> None:
    data = bytearray(segment.read_bytes())
    data[-7] ^= 0x10                                      # the size unchanged
    segment.write_bytes(bytes(data))


def test_a_segment_damaged_at_rest_costs_its_frames_not_the_run(tmp_path, capsys):
    """Every checkpoint shares the old segments: one damaged while no learner ran failed them all.

    The run then could not resume at all. Now the newest loads without that segment's frames:
    they are dropped as if evicted, no window over them is sampled, a late label for one is
    dropped, and the next checkpoint verifies in full again.
    """
    from sole_r1_ros.commands.learn import _check_run_dir, LearnRequest
    from sole_r1_ros.rl.replay import SEGMENT_FRAMES
    root = tmp_path / 'run' / 'checkpoints'
    agent, replay = _big()
    _many_frames(replay, 0, 2 * SEGMENT_FRAMES + 100)     # segments 0 and 1 full, 2 begun
    save_checkpoint(root, agent, replay, {'n': 0}, keep=2)
    _many_frames(replay, 1, 50, seed=1)
    save_checkpoint(root, agent, replay, {'n': 1}, keep=2)
    [damaged] = (root / 'replay-segments').glob('0_external-000001-*.npy')
    _damage(damaged)
    with pytest.raises(CheckpointError, match='no valid checkpoint'):
        load_latest(root)                                 # both checkpoints name it
    assert _check_run_dir(LearnRequest(goal='g', run_dir=tmp_path / 'run', resume=True))
    assert 'without the frames of 1 damaged image segments' in capsys.readouterr().err

    checkpoint = load_latest(root, evict_damaged=True)
    assert checkpoint.path.name == 'ckpt-00000001'
    assert list(checkpoint.damaged_segments) == [damaged.name]
    agent2, resumed = _big()
    assert restore(checkpoint, agent2, resumed) == {'n': 1}
    assert checkpoint.evicted_frames == SEGMENT_FRAMES
    lost = slice(SEGMENT_FRAMES, 2 * SEGMENT_FRAMES)
    before, after = replay.state_dict()[0], resumed.state_dict()[0]
    assert (after['episode'][lost] == -1).all()
    assert not after['image/wrist'][lost].any()           # both views of a lost frame go
    for name in ('episode', 'image/external', 'progress'):
        np.testing.assert_array_equal(after[name][:SEGMENT_FRAMES - 1],
                                      before[name][:SEGMENT_FRAMES - 1], err_msg=name)
        np.testing.assert_array_equal(after[name][2 * SEGMENT_FRAMES:],
                                      before[name][2 * SEGMENT_FRAMES:], err_msg=name)
    mask = resumed._sampleable_mask()
    assert mask[:SEGMENT_FRAMES - 2].all()
    assert not mask[SEGMENT_FRAMES - 2:2 * SEGMENT_FRAMES].any()
    assert resumed.stats()['sampleable'] == replay.stats()['sampleable'] - SEGMENT_FRAMES - 2
    assert resumed.label(0, SEGMENT_FRAMES + 5, 50.0) is LabelOutcome.DROPPED
    assert resumed.unsaved_frames() == SEGMENT_FRAMES     # its slots are written anew

    save_checkpoint(root, agent2, resumed, {'n': 2}, keep=2)
    agent3, third = _big()
    assert restore(load_latest(root), agent3, third) == {'n': 2}   # verifies in full
    assert_same_replay(resumed, third)


def test_a_checkpoint_whose_segments_are_all_gone_is_not_resumed_empty(tmp_path):
    """Copied without replay-segments/: resuming with no replay would hide the mistake."""
    agent, replay = build()
    fill(agent, replay)
    save_checkpoint(tmp_path, agent, replay, {})
    for segment in (tmp_path / 'replay-segments').iterdir():
        segment.unlink()
    with pytest.raises(CheckpointError, match='no valid checkpoint') as info:
        load_latest(tmp_path, evict_damaged=True)
    assert 'every image segment is missing' in str(info.value.__cause__)
    assert 'copy that folder' in str(info.value.__cause__)


def test_a_learner_resumes_past_a_damaged_segment_and_says_how_many_frames_it_lost(tmp_path):
    from sole_r1_ros.rl.online import OnlineLearner
    from sole_r1_ros.rl.replay import SEGMENT_FRAMES

    def learner() -> OnlineLearner:
        return OnlineLearner(CONFIG, ReplayConfig(capacity=2 * SEGMENT_FRAMES,
                                                  min_labelled=10**9), 3, 2,
                             checkpoint_dir=tmp_path)
    first = learner()
    first.start_episode('a')
    image = np.zeros((3, 16, 16), np.uint8)
    for t in range(SEGMENT_FRAMES + 76):
        first.record({'state': np.zeros(3, np.float32), 'external': image, 'wrist': image},
                     np.zeros(2, np.float32), (t + 1) * 10**8)
    first.save()
    _damage(next((tmp_path / 'replay-segments').glob('1_wrist-000001-*.npy')))
    second = learner()
    assert second.resume() and second.evicted_frames == 76
    assert second.env_steps == first.env_steps


def test_the_newest_readable_counters_say_where_a_resume_goes_on(tmp_path):
    """summary.json's checkpoint_env_steps: after a crash, fewer than the last status said."""
    from sole_r1_ros.rl.checkpoint import newest_counters
    assert newest_counters(tmp_path / 'none') is None
    (tmp_path / 'ckpt-00000002').mkdir()
    (tmp_path / 'ckpt-00000002' / 'meta.json').write_text('{"counters": {"env_steps": 475}}')
    (tmp_path / 'ckpt-00000003').mkdir()   # torn: its meta.json never written
    assert newest_counters(tmp_path) == {'env_steps': 475}


def test_a_checkpoint_that_copied_much_gives_its_memory_back_once_written(
        tmp_path, monkeypatch):
    """A large copy's memory is released after the write, failed or not; a small one's is kept."""
    from sole_r1_ros.rl import online
    released = []
    monkeypatch.setattr(online, 'release_freed_memory', lambda: released.append(True))
    learner = online.OnlineLearner(CONFIG, ReplayConfig(capacity=200, min_labelled=10**9), 3, 2,
                                   checkpoint_dir=tmp_path)
    learner.start_episode('a')
    image = np.zeros((3, 16, 16), np.uint8)   # 100 frames x 2 views: 154 kB copied

    def record(frames: int) -> None:
        for _ in range(frames):
            learner.record({'state': np.zeros(3, np.float32), 'external': image,
                            'wrist': image}, np.zeros(2, np.float32),
                           (learner.env_steps + 1) * 10**8)
    record(100)
    monkeypatch.setattr(online, 'RELEASE_AFTER_BYTES', 200_000)
    learner.save()
    assert released == []
    record(10)   # the segment is written again: all 110 frames are copied, 169 kB
    monkeypatch.setattr(online, 'RELEASE_AFTER_BYTES', 150_000)
    learner.save()
    assert released == [True]

    def full_disk(*args, **kwargs):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(online, 'write_checkpoint', full_disk)
    record(1)
    with pytest.raises(OSError):
        learner.save()
    assert released == [True, True]
