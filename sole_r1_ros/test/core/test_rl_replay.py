"""Replay buffer with pending progress rewards: late, early, duplicated and missing labels."""
import threading
import time

import numpy as np
import pytest

from sole_r1_ros.rl.config import ReplayConfig
from sole_r1_ros.rl.replay import LabelOutcome, ReplayBuffer
from sole_r1_ros.rl.shaping import progress_to_reward

GAMMA = 0.9


def make_buffer(n_step: int = 3, image_keys: tuple[str, ...] = (), **kwargs) -> ReplayBuffer:
    config = ReplayConfig(**{'capacity': 100, 'min_labelled': 1, **kwargs})
    return ReplayBuffer(config, state_dim=2, action_dim=1, image_keys=image_keys, image_size=16,
                        n_step=n_step, discount=GAMMA)


def frame(episode: int, step: int, image_keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Make a frame whose state is (episode, step): a sampled transition says its origin."""
    obs = {'state': np.array([episode, step], np.float32)}
    for i, key in enumerate(image_keys):
        obs[key] = np.full((3, 16, 16), (10 * step + i) % 256, np.uint8)
    return obs


def add_episode(buffer: ReplayBuffer, episode: int, length: int, terminal: bool = False,
                image_keys: tuple[str, ...] = ()) -> None:
    """Frames 0..length; frame ``length`` is the last one (no action)."""
    for t in range(length + 1):
        last = t == length
        buffer.add(episode, t, frame(episode, t, image_keys), None if last else [0.1 * t],
                   stamp=100.0 * episode + t, terminal=terminal and last)


def label_all(buffer: ReplayBuffer, episode: int, length: int, stride: int = 1) -> None:
    for t in list(range(0, length + 1, stride)) + [length]:
        buffer.label(episode, t, progress=float(t))


def progress_of(buffer: ReplayBuffer, episode: int, steps: range) -> np.ndarray:
    arrays, _ = buffer.state_dict()
    found = {(e, s): p for e, s, p in zip(arrays['episode'], arrays['step'], arrays['progress'])}
    return np.array([found[(episode, s)] for s in steps])


def test_unlabelled_transitions_are_stored_but_never_sampled():
    buffer = make_buffer()
    add_episode(buffer, 0, 10)
    assert len(buffer) == 11
    assert not buffer.ready()
    assert buffer.stats()['pending'] == 11
    with pytest.raises(RuntimeError, match='ready'):
        buffer.sample(4)


def test_late_out_of_order_labels_are_interpolated_once_both_neighbours_arrive():
    buffer = make_buffer()
    add_episode(buffer, 0, 8)
    assert buffer.label(0, 8, 80.0) is LabelOutcome.APPLIED
    assert buffer.label(0, 4, 20.0) is LabelOutcome.APPLIED
    np.testing.assert_allclose(progress_of(buffer, 0, range(4, 9)), [20, 35, 50, 65, 80])
    assert np.isnan(progress_of(buffer, 0, range(1, 4))).all()  # frame 0 not labelled yet
    assert buffer.label(0, 0, 0.0) is LabelOutcome.APPLIED
    np.testing.assert_allclose(progress_of(buffer, 0, range(0, 5)), [0, 5, 10, 15, 20])
    assert buffer.stats()['pending'] == 0


def test_hold_rule_keeps_the_earlier_label_between_queries():
    buffer = make_buffer(fill='hold')
    add_episode(buffer, 0, 4)
    buffer.label(0, 4, 90.0)
    buffer.label(0, 0, 30.0)
    np.testing.assert_allclose(progress_of(buffer, 0, range(5)), [30, 30, 30, 30, 90])


def test_query_label_refines_a_filled_frame_and_refills_its_segments():
    buffer = make_buffer()
    add_episode(buffer, 0, 4)
    buffer.label(0, 0, 0.0)
    buffer.label(0, 4, 40.0)
    assert buffer.label(0, 2, 0.0) is LabelOutcome.APPLIED
    np.testing.assert_allclose(progress_of(buffer, 0, range(5)), [0, 0, 0, 20, 40])


def test_duplicate_label_is_ignored_and_counted():
    buffer = make_buffer()
    add_episode(buffer, 0, 3)
    assert buffer.label(0, 1, 10.0) is LabelOutcome.APPLIED
    assert buffer.label(0, 1, 99.0) is LabelOutcome.DUPLICATE
    assert progress_of(buffer, 0, range(1, 2))[0] == 10.0
    assert buffer.stats()['labels_duplicate'] == 1


def test_label_for_evicted_or_finished_frame_is_dropped_and_counted():
    buffer = make_buffer(capacity=6)
    add_episode(buffer, 0, 3)            # frames 0..3
    add_episode(buffer, 1, 3)            # evicts episode 0 frames 0 and 1
    assert buffer.label(0, 0, 5.0) is LabelOutcome.DROPPED
    assert buffer.label(1, 9, 5.0) is LabelOutcome.DROPPED    # past the end of episode 1
    assert buffer.label(0, 2, 5.0) is LabelOutcome.APPLIED    # still stored
    assert buffer.stats()['labels_dropped'] == 2


def test_label_that_arrives_before_its_frame_waits_and_is_applied_on_insert():
    buffer = make_buffer()
    buffer.add(0, 0, frame(0, 0), [0.0], stamp=0.0)
    assert buffer.label(0, 1, 50.0, stamp=1.0) is LabelOutcome.EARLY
    assert buffer.label(3, 0, 7.0) is LabelOutcome.EARLY          # a newer episode
    assert buffer.label(0, 1, 50.0) is LabelOutcome.DUPLICATE
    assert buffer.stats()['early_waiting'] == 2
    buffer.add(0, 1, frame(0, 1), None, stamp=1.0)
    assert progress_of(buffer, 0, range(1, 2))[0] == 50.0
    assert buffer.stats()['early_waiting'] == 1


def test_early_label_with_a_stamp_of_another_frame_is_rejected_on_insert():
    buffer = make_buffer()
    buffer.add(0, 0, frame(0, 0), [0.0], stamp=0.0)
    assert buffer.label(0, 1, 50.0, stamp=7.0) is LabelOutcome.EARLY
    buffer.add(0, 1, frame(0, 1), None, stamp=1.0)
    assert np.isnan(progress_of(buffer, 0, range(1, 2))[0])
    assert buffer.stats()['labels_mismatch'] == 1 and buffer.stats()['labels_applied'] == 0


def test_label_with_wrong_stamp_is_rejected():
    buffer = make_buffer()
    add_episode(buffer, 0, 2)
    assert buffer.label(0, 1, 10.0, stamp=1.5) is LabelOutcome.MISMATCH
    assert buffer.label(0, 1, 10.0, stamp=1.0) is LabelOutcome.APPLIED


def test_labels_that_never_come_leave_the_tail_unsampled_and_pending_age_grows():
    buffer = make_buffer(n_step=3)
    add_episode(buffer, 0, 10)
    for t in range(7):   # the labels of frames 7..10 never arrive
        buffer.label(0, t, float(t))
    # window t needs p_{t+1..t+3}: starts 4, 5 and 6 need p_7 and never appear
    assert {int(s) for s in buffer.sample(2000).state[:, 1]} == {0, 1, 2, 3}
    buffer.add(1, 0, frame(1, 0), [0.0], stamp=200.0)
    assert buffer.pending_age(now=200.0) == pytest.approx(194.0)   # newest labelled: stamp 6
    assert buffer.pending_age(now=260.0) == pytest.approx(254.0)


def test_a_lost_query_label_is_bridged_only_up_to_max_fill_gap():
    bridged, blocked = make_buffer(n_step=1), make_buffer(n_step=1, max_fill_gap=5)
    for buffer in (bridged, blocked):
        add_episode(buffer, 0, 10)
        buffer.label(0, 0, 0.0)
        buffer.label(0, 10, 100.0)   # the query label of frame 5 was lost
    np.testing.assert_allclose(progress_of(bridged, 0, range(11)), np.arange(0, 101, 10))
    assert np.isnan(progress_of(blocked, 0, range(1, 10))).all()
    assert blocked.stats()['sampleable'] == 1   # only the window into frame 10


def test_invalid_progress_is_rejected():
    buffer = make_buffer()
    add_episode(buffer, 0, 2)
    for bad in (float('nan'), -1.0, 100.5, float('inf')):
        with pytest.raises(ValueError, match='progress'):
            buffer.label(0, 1, bad)


def test_n_step_windows_stay_inside_one_episode_and_shorten_at_its_end():
    buffer = make_buffer(n_step=3)
    add_episode(buffer, 0, 4)
    add_episode(buffer, 1, 6, terminal=True)
    label_all(buffer, 0, 4)
    label_all(buffer, 1, 6)
    batch = buffer.sample(3000)
    episode, step = batch.state[:, 0], batch.state[:, 1]
    np.testing.assert_array_equal(batch.next_state[:, 0], episode)
    m = batch.next_state[:, 1] - step
    last = np.where(episode == 0, 4, 6)
    np.testing.assert_array_equal(m, np.minimum(3, last - step))
    terminal = (episode == 1) & (step + m == 6)
    np.testing.assert_allclose(batch.discount, np.where(terminal, 0.0, GAMMA ** m), rtol=1e-6)
    # r_t = p_{t+1} / 100 with p_t = t, so R = sum_i gamma^i (t + i + 1) / 100
    expected = [sum(GAMMA ** i * (s + i + 1) / 100 for i in range(int(k)))
                for s, k in zip(step, m)]
    np.testing.assert_allclose(batch.reward, expected, rtol=1e-5)
    assert set(np.unique(step[episode == 1])) == set(range(6))


def test_windows_never_cross_an_unlabelled_step():
    buffer = make_buffer(n_step=2, max_fill_gap=1)
    add_episode(buffer, 0, 6)
    for t in (0, 1, 2, 4, 5, 6):
        buffer.label(0, t, 50.0)
    # frame 3 pending: windows starting at 1 (needs p2, p3) and 2 (needs p3, p4) are blocked
    assert {int(s) for s in buffer.sample(1000).state[:, 1]} == {0, 3, 4, 5}


def test_delta_reward_needs_the_start_frame_labelled():
    buffer = make_buffer(n_step=1, reward_mode='delta')
    add_episode(buffer, 0, 2)
    buffer.label(0, 1, 40.0)
    buffer.label(0, 2, 70.0)
    batch = buffer.sample(50)
    np.testing.assert_array_equal(batch.state[:, 1], 1)
    np.testing.assert_allclose(batch.reward, 0.3, rtol=1e-6)


def test_images_are_stored_once_and_next_images_come_from_the_next_frame():
    keys = ('external', 'wrist')
    buffer = make_buffer(n_step=1, image_keys=keys)
    add_episode(buffer, 0, 3, image_keys=keys)
    label_all(buffer, 0, 3)
    arrays, _ = buffer.state_dict()
    assert arrays['image/external'].shape == (4, 3, 16, 16)
    batch = buffer.sample(64)
    assert batch.images.shape == (64, 2, 3, 16, 16) and batch.images.dtype == np.uint8
    steps = batch.state[:, 1].astype(int)
    np.testing.assert_array_equal(batch.next_images[:, 0, 0, 0, 0], 10 * (steps + 1))
    np.testing.assert_array_equal(batch.next_images[:, 1, 0, 0, 0], 10 * (steps + 1) + 1)


def test_ready_waits_for_count_and_labelled_share():
    buffer = make_buffer(n_step=1, min_labelled=3, min_labelled_share=0.5)
    add_episode(buffer, 0, 9)
    for t in range(3):
        buffer.label(0, t, 1.0)
    assert buffer.stats()['sampleable'] == 2
    assert not buffer.ready()
    buffer.label(0, 3, 1.0)
    assert buffer.stats()['sampleable'] == 3
    assert not buffer.ready()   # share 4/10
    buffer.label(0, 4, 1.0)
    assert buffer.ready()


@pytest.mark.parametrize('bad', [
    lambda b: b.add(0, 0, {'state': np.array([np.nan, 0.0])}, [0.0], 0.0),
    lambda b: b.add(0, 0, {'state': np.zeros(3)}, [0.0], 0.0),
    lambda b: b.add(0, 0, frame(0, 0), [0.0, 1.0], 0.0),
    lambda b: b.add(0, 0, frame(0, 0), [0.0], 0.0, terminal=True),
    lambda b: (b.add(0, 0, frame(0, 0), [0.0], 0.0), b.add(0, 2, frame(0, 2), [0.0], 0.0)),
    lambda b: (b.add(2, 0, frame(2, 0), [0.0], 0.0), b.add(1, 0, frame(1, 0), [0.0], 0.0)),
    lambda b: (b.add(0, 0, frame(0, 0), None, 0.0), b.add(0, 1, frame(0, 1), [0.0], 0.0)),
])
def test_add_rejects_bad_frames(bad):
    with pytest.raises(ValueError):
        bad(make_buffer())


def test_progress_to_reward_modes_and_success_bonus():
    p, prev = np.array([50.0, 100.0]), np.array([40.0, 90.0])
    np.testing.assert_allclose(progress_to_reward(p, prev), [0.5, 1.0])
    np.testing.assert_allclose(progress_to_reward(p, prev, 'delta'), [0.1, 0.1])
    np.testing.assert_allclose(progress_to_reward(p, prev, 'progress', 2.0, 5.0, 95.0),
                               [1.0, 7.0])
    with pytest.raises(ValueError, match='mode'):
        progress_to_reward(p, prev, 'other')


def test_concurrent_insert_label_and_sample_keep_the_buffer_consistent():
    buffer = make_buffer(n_step=2, capacity=500)
    errors = []

    def actor():
        for episode in range(20):
            add_episode(buffer, episode, 20)
            time.sleep(0.005)   # a robot's pace, so that sampling happens while it writes

    def labeller():
        for episode in range(20):
            for t in range(21):
                outcome = buffer.label(episode, t, float(t))
                if outcome not in (LabelOutcome.APPLIED, LabelOutcome.EARLY):
                    errors.append(outcome)

    threads = [threading.Thread(target=actor), threading.Thread(target=labeller)]
    sampled = 0
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        if buffer.stats()['sampleable']:
            batch = buffer.sample(16)
            assert np.all(batch.next_state[:, 0] == batch.state[:, 0])
            sampled += 1
    for thread in threads:
        thread.join()
    assert not errors
    assert sampled, 'nothing was sampled while the threads wrote'
    stats = buffer.stats()
    assert stats['labels_applied'] == 20 * 21 and stats['pending'] == 0


def test_shaping_doctest_holds():
    import doctest

    from sole_r1_ros.rl import shaping
    assert doctest.testmod(shaping).failed == 0


# ---------------------------------------------------------------- human interventions (#14)

def add_flagged_episode(buffer: ReplayBuffer, episode: int, length: int,
                        intervened_steps: set[int]) -> None:
    for t in range(length + 1):
        last = t == length
        buffer.add(episode, t, frame(episode, t), None if last else [0.1 * t],
                   stamp=100.0 * episode + t, intervened=t in intervened_steps)
    label_all(buffer, episode, length)


def test_intervened_frames_are_flagged_in_batches_and_counted():
    buffer = make_buffer(n_step=1)
    add_flagged_episode(buffer, 0, 10, intervened_steps={2, 3, 4})
    stats = buffer.stats()
    assert stats['intervened'] == 3 and stats['intervened_sampleable'] == 3
    batch = buffer.sample(200)
    steps = batch.state[:, 1].astype(int)
    np.testing.assert_array_equal(batch.intervened, np.isin(steps, [2, 3, 4]))


def test_intervention_ratio_draws_its_share_from_intervened_windows():
    buffer = make_buffer(n_step=1, intervention_ratio=0.5, capacity=200)
    add_flagged_episode(buffer, 0, 100, intervened_steps=set(range(40, 100)))
    batch = buffer.sample(100)
    # 50 from the 60 intervened windows, 50 uniform over all 100 (about 30 of them intervened)
    assert batch.intervened[:50].all()
    assert 60 < batch.intervened.sum() < 100


def test_too_few_intervened_windows_are_filled_from_the_rest():
    buffer = make_buffer(n_step=1, intervention_ratio=1.0)
    add_flagged_episode(buffer, 0, 50, intervened_steps={7, 8})
    batch = buffer.sample(64)
    assert batch.intervened[:2].all() and batch.state.shape == (64, 2)
    assert batch.intervened.sum() < 20
    plain = make_buffer(n_step=1, intervention_ratio=1.0)
    add_flagged_episode(plain, 0, 50, intervened_steps=set())
    assert not plain.sample(64).intervened.any()


def test_ratio_zero_samples_exactly_as_a_buffer_without_flags():
    flagged, unflagged = make_buffer(), make_buffer()
    add_flagged_episode(flagged, 0, 30, intervened_steps=set(range(0, 30, 2)))
    add_flagged_episode(unflagged, 0, 30, intervened_steps=set())
    np.testing.assert_array_equal(flagged.sample(32).state, unflagged.sample(32).state)


def test_intervened_flags_survive_a_round_trip_and_old_checkpoints_load_unflagged():
    buffer = make_buffer(n_step=1)
    add_flagged_episode(buffer, 0, 10, intervened_steps={1, 5})
    arrays, meta = buffer.state_dict()
    restored = make_buffer(n_step=1)
    restored.load_state_dict(arrays, meta)
    assert restored.stats()['intervened'] == 2
    old = {name: value for name, value in arrays.items() if name != 'intervened'}
    from_old = make_buffer(n_step=1)
    from_old.load_state_dict(old, meta)
    assert from_old.stats()['intervened'] == 0 and from_old.stats()['sampleable'] == 10
    del old['terminal']
    with pytest.raises(KeyError, match='terminal'):
        make_buffer(n_step=1).load_state_dict(old, meta)


def test_a_buffer_that_cannot_fit_the_machines_memory_is_refused_at_once():
    """np.zeros reserves lazily: such a capacity was accepted, and the run killed hours later."""
    import os

    from sole_r1_ros.rl.replay import replay_bytes
    small = ReplayBuffer(ReplayConfig(capacity=100), 5, 4, ('external', 'wrist'), 32)
    assert sum(a.nbytes for a in small._arrays.values()) == replay_bytes(100, 5, 4, 2, 32)
    total = os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    too_many = total // replay_bytes(1, 5, 4, 2, 84) + 1
    with pytest.raises(ValueError, match=f'replay.capacity {too_many} needs .* GB when full'):
        ReplayBuffer(ReplayConfig(capacity=too_many), 5, 4, ('external', 'wrist'), 84)


@pytest.mark.parametrize('seed', range(6))
def test_sampleable_windows_kept_by_slot_match_a_check_of_every_slot(seed):
    """The windows marked as frames change give what checking every slot afresh gives.

    Random episodes (truncated and not), labels in any order, early, lost or overwritten, a
    gap limit, a small ring that wraps and a checkpoint round trip with a lost segment.
    """
    rng = np.random.default_rng(seed)
    n_step = int(rng.integers(1, 4))
    keys = ('cam',)
    buffer = make_buffer(n_step=n_step, image_keys=keys, capacity=int(rng.integers(20, 60)),
                         max_fill_gap=4,
                         fill=str(rng.choice(['linear', 'hold'])),
                         reward_mode=str(rng.choice(['delta', 'progress'])))

    def check() -> None:
        every = buffer._windows_complete(np.arange(len(buffer)))
        np.testing.assert_array_equal(buffer._sampleable_mask(), every)
        assert buffer.stats()['sampleable'] == int(every.sum())

    pending: list[tuple[int, int]] = []
    for episode in range(40):
        length = int(rng.integers(1, 15))
        for t in range(length + 1):
            last = t == length or rng.random() < 0.03
            buffer.add(episode, t, frame(episode, t, keys), None if last else [0.0],
                       stamp=float(t), terminal=last and rng.random() < 0.5)
            pending.append((episode, t))
            if rng.random() < 0.3:   # a label for a frame to come
                buffer.label(episode, t + int(rng.integers(1, 3)), float(rng.uniform(0, 100)))
            while pending and rng.random() < 0.6:
                e, s = pending.pop(int(rng.integers(len(pending))))
                if rng.random() < 0.8:   # else the label is lost
                    buffer.label(e, s, float(rng.uniform(0, 100)), overwrite=rng.random() < 0.1)
            check()
            if last:
                break
        if episode == 20:
            state = buffer.checkpoint_state()
            lost = set(state.segments) if seed % 2 else set()
            assert buffer.load_state_dict(state.arrays, state.meta, state.segments,
                                          evict=lost) == (len(buffer) if lost else 0)
            check()
    assert buffer.stats()['sampleable'] > 0
