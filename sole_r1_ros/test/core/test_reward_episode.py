"""Episode state: which frames and which previous answer each query carries, and batching."""
import dataclasses

import numpy as np
import pytest

from sole_r1_ros.reward import (
    EpisodeFrames, EpisodeTracker, offline_query_steps, RewardConfig, RewardEngine,
    score_episodes)
from sole_r1_ros.reward.backends.oracle import OracleBackend


class _Recording(OracleBackend):
    def __init__(self, fail_steps=()):
        self.batches = []
        self.fail_steps = set(fail_steps)

    def generate(self, requests):
        self.batches.append(list(requests))
        if any(r.metadata['step'] in self.fail_steps for r in requests):
            raise RuntimeError('backend down')
        return super().generate(requests)


def _frame(value):
    return np.full((24, 32, 3), value, np.uint8)


def _engine(backend):
    return RewardEngine(backend, RewardConfig(backend='oracle'))


def test_each_query_shows_first_previous_queried_and_current_frame():
    tracker = EpisodeTracker('ep0', 'Open the door')
    for step in range(6):
        tracker.add_frame(_frame(step), _frame(100 + step), privileged_progress=10.0 * step)
        if step in (3, 5):
            query = tracker.make_query()
            expected_previous = 0 if step == 3 else 3
            assert query.step == step
            assert query.first_external[0, 0, 0] == 0 and query.first_wrist[0, 0, 0] == 100
            assert query.previous_external[0, 0, 0] == expected_previous
            assert query.previous_wrist[0, 0, 0] == 100 + expected_previous
            assert query.current_external[0, 0, 0] == step
            assert query.previous_progress == (0 if step == 3 else 30)
            tracker.record(_engine(OracleBackend()).score([query])[0])
    assert (tracker.progress, tracker.last_query_step) == (50, 5)
    assert [r.step for r in tracker.results] == [3, 5]


def test_score_uses_the_carried_forward_integer_after_an_unparseable_answer():
    class _Sequence(OracleBackend):
        replies = iter(['<answer>40%</answer>', '<answer>lots</answer>', '<answer>55</answer>'])

        def generate(self, requests):
            self.users = [r.messages[1]['content'][1]['text'] for r in requests]
            return [dataclasses.replace(reply, text=next(self.replies))
                    for reply in super().generate(requests)]

    backend = _Sequence()
    engine, tracker = _engine(backend), EpisodeTracker('ep0', 'Open the door')
    tracker.add_frame(_frame(0), privileged_progress=0.0)
    progress = []
    for step in (1, 2, 3):
        tracker.add_frame(_frame(step), privileged_progress=0.0)
        progress.append(tracker.score(engine).progress)
    assert progress == [40, 40, 55]
    assert 'previous timestep is 40%.' in backend.users[0]


def test_stale_or_foreign_results_are_ignored():
    tracker = EpisodeTracker('ep0', 'Open the door')
    tracker.add_frame(_frame(0))
    tracker.add_frame(_frame(1), privileged_progress=20.0)
    old = tracker.make_query()
    tracker.add_frame(_frame(2), privileged_progress=30.0)
    new = tracker.make_query()  # replaces the pending query
    engine = _engine(OracleBackend())
    old_result, new_result = engine.score([old, new])
    assert not tracker.record(old_result)
    assert not tracker.record(dataclasses.replace(new_result, episode_id='ep1'))
    assert tracker.record(new_result)
    assert (tracker.progress, tracker.last_query_step) == (30, 2)


def test_backend_failure_keeps_old_previous_frame_and_progress():
    backend = _Recording(fail_steps={2})
    engine, tracker = _engine(backend), EpisodeTracker('ep0', 'Open the door')
    tracker.add_frame(_frame(0))
    for step, truth in [(1, 20.0), (2, 40.0), (3, 60.0)]:
        tracker.add_frame(_frame(step), privileged_progress=truth)
        result = tracker.score(engine)
    failed = tracker.results[1]
    assert (failed.progress, failed.valid, 'backend down' in failed.error) == (20, False, True)
    last_request = backend.batches[-1][0]
    assert 'previous timestep is 20%' in last_request.messages[1]['content'][1]['text']
    # Step 3 is compared with step 1 (the last frame the model answered), not failed step 2.
    assert result.progress == 60 and tracker.last_query_step == 3


@pytest.mark.parametrize('action,match', [
    (lambda t: t.make_query(), 'nothing to query'),
    (lambda t: t.add_frame(_frame(0), step=3), 'first frame must be step 0'),
])
def test_tracker_rejects_queries_before_a_second_frame(action, match):
    tracker = EpisodeTracker('ep0', 'Open the door')
    with pytest.raises(ValueError, match=match):
        action(tracker)


def test_tracker_rejects_non_increasing_steps_and_mixed_wrist_frames():
    tracker = EpisodeTracker('ep0', 'Open the door')
    tracker.add_frame(_frame(0), _frame(0))
    tracker.add_frame(_frame(1), _frame(1), step=4)
    with pytest.raises(ValueError, match='does not follow'):
        tracker.add_frame(_frame(2), _frame(2), step=4)
    with pytest.raises(ValueError, match='wrist'):
        tracker.add_frame(_frame(2), step=5)
    with pytest.raises(ValueError, match='goal is empty'):
        EpisodeTracker('ep1', ' ')


def test_from_zero_queries_carry_the_flag():
    tracker = EpisodeTracker('ep0', 'Open the door', from_zero=True)
    tracker.add_frame(_frame(0))
    tracker.add_frame(_frame(1), privileged_progress=5.0)
    assert tracker.make_query().from_zero


def test_score_episodes_batches_across_episodes_at_each_query_index():
    backend = _Recording()
    episodes = [
        EpisodeFrames(f'ep{i}', 'Close the drawer', [_frame(s) for s in range(n)],
                      query_steps=steps, wrist=[_frame(50 + s) for s in range(n)],
                      privileged_progress=[float(10 * s + i) for s in range(n)])
        for i, (n, steps) in enumerate([(5, [2, 4]), (7, [1, 3, 6]), (3, [2])])]
    seen = []
    results = score_episodes(_engine(backend), episodes, on_batch=seen.append)
    assert [len(b) for b in backend.batches] == [3, 2, 1]
    assert [[r.metadata['episode_id'] for r in b] for b in backend.batches] == [
        ['ep0', 'ep1', 'ep2'], ['ep0', 'ep1'], ['ep1']]
    assert [[r.progress for r in ep] for ep in results] == [[20, 40], [11, 31, 61], [22]]
    assert [len(batch) for batch in seen] == [3, 2, 1]
    # The second query of ep1 quotes the first answer and shows frame 1 as 'previous'.
    text = backend.batches[1][1].messages[1]['content'][1]['text']
    assert 'previous timestep is 11%' in text


@pytest.mark.parametrize('episode,match', [
    (EpisodeFrames('e', 'g', [_frame(0)] * 3, [0, 2]), 'query_steps'),
    (EpisodeFrames('e', 'g', [_frame(0)] * 3, [2, 1]), 'query_steps'),
    (EpisodeFrames('e', 'g', [_frame(0)] * 3, [3]), 'query_steps'),
    (EpisodeFrames('e', 'g', [_frame(0)] * 3, [1], wrist=[_frame(0)] * 2), 'wrist'),
    (EpisodeFrames('e', 'g', [], [1]), 'no frames'),
])
def test_score_episodes_rejects_malformed_episodes(episode, match):
    with pytest.raises(ValueError, match=match):
        score_episodes(_engine(OracleBackend()), [episode])


@pytest.mark.parametrize('frames,kwargs,steps', [
    (11, dict(num_queries=5), [2, 4, 6, 8, 10]),
    (8, dict(num_queries=3), [2, 5, 7]),
    (3, dict(num_queries=10), [1, 2]),
    (2, dict(num_queries=1), [1]),
    (10, dict(stride=4), [4, 8, 9]),
    (9, dict(stride=4), [4, 8]),
    (5, dict(stride=10), [4]),
])
def test_offline_query_steps_are_evenly_spaced_and_end_at_last_frame(frames, kwargs, steps):
    assert offline_query_steps(frames, **kwargs) == steps


@pytest.mark.parametrize('frames,kwargs', [
    (1, dict(num_queries=3)), (5, dict()), (5, dict(num_queries=2, stride=2)),
    (5, dict(stride=0)), (5, dict(num_queries=0)),
])
def test_offline_query_steps_reject_bad_arguments(frames, kwargs):
    with pytest.raises(ValueError):
        offline_query_steps(frames, **kwargs)
