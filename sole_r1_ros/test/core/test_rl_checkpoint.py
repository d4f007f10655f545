"""Checkpoints: bit-exact round trip, no double labelling after resume, corrupt ones skipped."""
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from sole_r1_ros.rl.checkpoint import (  # noqa: E402
    CheckpointError, list_checkpoints, load_latest, lock_directory, restore, save_checkpoint)
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
    import errno
    agent, replay = build()
    for _ in range(3):
        save_checkpoint(tmp_path, agent, replay, {}, keep=3)
    savez, calls = np.savez, []

    def full_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return savez(*args, **kwargs)
    monkeypatch.setattr(np, 'savez', full_once)
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
