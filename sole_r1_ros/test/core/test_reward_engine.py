"""RewardEngine: protocol around a backend, batching, and carry-forward on failure or timeout."""
import dataclasses
import threading
import time

import numpy as np
import pytest

from sole_r1_ros.reward import (
    BackendError, make_backend, OpenAIConfig, ProgressQuery, register_backend, RewardConfig,
    RewardEngine, TransformersConfig)
from sole_r1_ros.reward.backends.oracle import OracleBackend


class _Recording(OracleBackend):
    """The oracle, remembering every batch it was given."""

    def __init__(self):
        self.batches = []

    def generate(self, requests):
        self.batches.append(list(requests))
        return super().generate(requests)


class _Slow(OracleBackend):
    """The oracle after a delay that the test can cut short."""

    def __init__(self, delay_s):
        self.delay_s = delay_s
        self.release = threading.Event()

    def generate(self, requests):
        self.release.wait(self.delay_s)
        return super().generate(requests)


class _Broken(OracleBackend):
    def generate(self, requests):
        raise RuntimeError('GPU on fire')


class _Short(OracleBackend):
    def generate(self, requests):
        return super().generate(requests)[:-1]


class _Overlapping(OracleBackend):
    """The oracle, counting the calls that run at once.

    Each call waits until ``expect`` run at once (at most 5 s, then 0.1 s more), so threads a
    loaded machine starts late still meet. ``concurrent_calls`` is declared only when given (a
    backend that does not say is called from one thread).
    """

    def __init__(self, concurrent_calls=None, expect=1):
        if concurrent_calls is not None:
            self.concurrent_calls = concurrent_calls
        self.running = self.max_running = 0
        self.expect = expect
        self.lock = threading.Condition()
        self.closed = False

    def generate(self, requests):
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.lock.notify_all()
            self.lock.wait_for(lambda: self.max_running >= self.expect, timeout=5.0)
        time.sleep(0.1)
        with self.lock:
            self.running -= 1
        return super().generate(requests)

    def close(self):
        self.closed = True


def _query(step=1, truth=50.0, wrist=True, previous=0, episode='ep0', goal='Close the drawer',
           **kwargs):
    rng = np.random.default_rng(step)
    ext = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    wr = ([rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)] if wrist
          else [None] * 3)
    return ProgressQuery(episode, step, goal, *ext, *wr, previous_progress=previous,
                         privileged_progress=truth, **kwargs)


def _engine(backend, **config):
    return RewardEngine(backend, RewardConfig(backend='oracle', **config))


def test_oracle_results_follow_ground_truth_in_query_order():
    engine = _engine(OracleBackend())
    queries = [_query(step=s, truth=t, episode=f'ep{s}') for s, t in [(3, 12.4), (1, -7.6),
                                                                      (2, 100.0)]]
    results = engine.score(queries)
    assert [(r.episode_id, r.step, r.progress) for r in results] == [
        ('ep3', 3, 12), ('ep1', 1, -8), ('ep2', 2, 100)]
    assert all(r.valid and r.error is None and r.model_id == 'oracle' for r in results)
    assert results[0].reasoning == 'simulator ground truth'
    assert results[0].raw_text == '<think>simulator ground truth</think><answer>12%</answer>'
    assert len(results[0].prompt_hash) == 16


def test_backend_exception_carries_previous_progress_with_error():
    results = _engine(_Broken()).score([_query(previous=33), _query(previous=-4)])
    assert [(r.progress, r.valid) for r in results] == [(33, False), (-4, False)]
    assert all('GPU on fire' in r.error and r.raw_text == '' for r in results)


def test_timeout_carries_forward_and_engine_stays_usable():
    backend = _Slow(delay_s=5.0)
    engine = _engine(backend, timeout_s=0.1)
    start = time.perf_counter()
    [result] = engine.score([_query(previous=21)])
    assert time.perf_counter() - start < 2.0
    assert (result.progress, result.valid, result.error) == (21, False, 'timeout')
    backend.release.set()  # the overrunning call finishes; the next one is answered normally
    backend.delay_s = 0.0
    [result] = engine.score([_query(truth=64.0)])
    assert (result.progress, result.valid, result.error) == (64, True, None)
    engine.close()


@pytest.mark.parametrize('declared,configured,expected', [(None, 0, 1), (3, 0, 3), (3, 2, 2)])
def test_calls_from_several_threads_overlap_as_far_as_config_and_backend_allow(
        declared, configured, expected):
    backend = _Overlapping(declared, expect=expected)
    engine = _engine(backend, concurrent_calls=configured)
    assert engine.concurrent_calls == expected
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.update({i: engine.score(
        [_query(step=i + 1, truth=10.0 * i, episode=f'ep{i}')])})) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    assert backend.max_running == expected
    assert {i: (r.episode_id, r.step, r.progress) for i, [r] in results.items()} == {
        i: (f'ep{i}', i + 1, 10 * i) for i in range(6)}
    engine.close()


def test_more_concurrent_calls_than_the_backend_allows_is_refused_and_frees_it():
    backend = _Overlapping(concurrent_calls=2)
    with pytest.raises(ValueError, match='concurrent_calls is 3'):
        _engine(backend, concurrent_calls=3)
    assert backend.closed


def test_calls_split_at_max_batch_size():
    backend = _Recording()
    results = _engine(backend, max_batch_size=2).score([_query(step=s) for s in range(1, 6)])
    assert [len(batch) for batch in backend.batches] == [2, 2, 1]
    assert [r.step for r in results] == [1, 2, 3, 4, 5]


def test_prepared_request_is_the_exact_model_input():
    backend = _Recording()
    engine = _engine(backend, temperature=0.0, seed=7, max_new_tokens=64)
    engine.score([_query(previous=25, goal='Close the drawer.')])
    [request] = backend.batches[0]
    assert request.image.size == (1176, 784)
    assert request.messages[1]['content'][0] == {'type': 'image'}
    assert 'The task description is: Close the drawer. The task progress' in \
        request.messages[1]['content'][1]['text']
    assert 'previous timestep is 25%' in request.messages[1]['content'][1]['text']
    assert (request.sampling.temperature, request.sampling.seed,
            request.sampling.max_new_tokens) == (0.0, 7, 64)
    assert request.metadata == {'episode_id': 'ep0', 'step': 1, 'privileged_progress': 50.0}


def test_missing_wrist_frames_select_external_only_variant():
    backend = _Recording()
    _engine(backend).score([_query(wrist=False)])
    [request] = backend.batches[0]
    assert request.image.size == (1176, 392)
    assert 'wrist' not in request.messages[1]['content'][1]['text']


@pytest.mark.parametrize('change,match', [
    (dict(goal='  '), 'goal is empty'), (dict(step=0), 'step must be'),
    (dict(previous=140), 'previous_progress'), (dict(episode=''), 'episode_id'),
])
def test_malformed_query_raises_before_any_backend_call(change, match):
    backend = _Recording()
    with pytest.raises(ValueError, match=match):
        _engine(backend).score([_query(), _query(**change)])
    assert backend.batches == []


def test_malformed_frame_error_names_episode_step_and_view():
    bad = _query()
    bad = ProgressQuery('ep9', 4, 'Close the drawer', bad.first_external,
                        bad.previous_external, np.zeros((4, 4, 3), np.float64))
    with pytest.raises(ValueError, match=r'episode ep9 step 4: current_external .*uint8'):
        _engine(OracleBackend()).score([bad])


def test_oracle_without_ground_truth_gives_error_result_and_costs_no_other_query():
    result, other = _engine(OracleBackend()).score([_query(truth=None, previous=9),
                                                    _query(episode='ep1', truth=40.0)])
    assert (result.progress, result.valid) == (9, False)
    assert 'privileged_progress' in result.error
    assert (other.progress, other.valid, other.error) == (40, True, None)


def test_wrong_number_of_replies_is_an_error_not_a_shifted_answer():
    results = _engine(_Short()).score([_query(), _query()])
    assert len(results) == 2 and all(not r.valid and 'replies' in r.error for r in results)


def test_unparseable_reply_is_invalid_and_keeps_previous_progress():
    class _Babble(OracleBackend):
        def generate(self, requests):
            return [dataclasses.replace(r, text='<think>no idea</think>')
                    for r in super().generate(requests)]

    [result] = _engine(_Babble()).score([_query(previous=48)])
    assert (result.progress, result.valid, result.error) == (48, False, None)
    assert result.reasoning == 'no idea'


def test_make_backend_by_name_and_registration_point():
    assert isinstance(make_backend(RewardConfig(backend='oracle')), OracleBackend)
    with pytest.raises(ValueError, match='backend must be one of'):
        make_backend(RewardConfig(backend='no-such-backend'))
    register_backend('oracle-copy', 'sole_r1_ros.reward.backends.oracle:OracleBackend')
    assert isinstance(make_backend(RewardConfig(backend='oracle-copy')), OracleBackend)


def test_openai_backend_start_failure_is_a_backend_error():
    config = RewardConfig(backend='openai', model='sole-r1',
                          openai=OpenAIConfig(base_url='http://127.0.0.1:9', health_check_s=0.3))
    with pytest.raises(BackendError, match='no reply'):
        make_backend(config)


@pytest.mark.parametrize('make,field', [
    (lambda: RewardConfig(temperature=-0.1), 'temperature'),
    (lambda: RewardConfig(top_p=0.0), 'top_p'),
    (lambda: RewardConfig(max_new_tokens=0), 'max_new_tokens'),
    (lambda: RewardConfig(timeout_s=0), 'timeout_s'),
    (lambda: RewardConfig(seed=-2), 'seed'),
    (lambda: RewardConfig(temperature=float('nan')), 'temperature'),
    (lambda: RewardConfig(top_k='50'), 'top_k'),
    (lambda: RewardConfig(max_batch_size=0), 'max_batch_size'),
    (lambda: TransformersConfig(device='tpu'), 'device'),
    (lambda: TransformersConfig(static_cache='yes'), 'static_cache'),
    (lambda: TransformersConfig(batch_buckets=()), 'batch_buckets'),
    (lambda: OpenAIConfig(base_url='localhost:8000'), 'base_url'),
    (lambda: OpenAIConfig(image_format='gif'), 'image_format'),
    (lambda: OpenAIConfig(max_retries=-1), 'max_retries'),
])
def test_configs_reject_bad_values_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()
