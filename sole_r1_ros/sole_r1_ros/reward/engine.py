"""The reward engine: queries in, progress out, around any backend, with a deadline per call.

It is the only place where the protocol (composite, prompt, parsing) meets a backend, so the
reward node, ``sole-r1 score`` and the benchmarks all score the same way. ``score`` never raises
for a backend failure: every query gets a result, carrying its previous progress when the
backend failed or timed out. ``score`` may be called from several threads: at most
``concurrent_calls`` backend calls run at once (1 unless the backend overlaps calls itself).
"""
from concurrent.futures import Future
import dataclasses
import logging
import numbers
import queue
import threading
import time
from typing import Any, Callable, Sequence

from sole_r1_ros.reward import protocol
from sole_r1_ros.reward.backends.base import (
    Backend, PreparedRequest, RawReply, SamplingSettings)
from sole_r1_ros.reward.config import RewardConfig
from sole_r1_ros.reward.query import ProgressQuery, ProgressResult

logger = logging.getLogger(__name__)

TIMEOUT_ERROR = 'timeout'


class _CallWorker:
    """Up to ``threads`` daemon threads that run backend calls, so a caller can stop waiting.

    Calls run in the order they were submitted, at most ``threads`` at once; a thread is
    started when a call finds none free. A call that overruns keeps its thread (a thread
    cannot be killed); later calls wait for a free one and are cancelled if their own deadline
    passes first, so the backend never runs more calls at once than it allows. Daemon, so a
    hung backend cannot block interpreter exit.
    """

    def __init__(self, threads: int = 1) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._max_threads = threads
        self._threads: list[threading.Thread] = []
        self._idle = 0    # threads waiting for a call that no submitted call has claimed
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self._max_threads:
                thread = threading.Thread(target=self._loop, daemon=True,
                                          name=f'reward-backend-{len(self._threads)}')
                thread.start()
                self._threads.append(thread)
            self._jobs.put((future, fn, args))
        return future

    def stop(self, wait_s: float) -> None:
        """Let every thread finish its call; wait at most ``wait_s`` in all."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + wait_s
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the waiting caller, who decides
                    future.set_exception(exc)
            with self._lock:
                self._idle += 1


class RewardEngine:
    """Score progress queries with one backend and one ``RewardConfig``.

    Example::

        engine = RewardEngine(make_backend(config), config)
        [result] = engine.score([query])
    """

    def __init__(self, backend: Backend, config: RewardConfig) -> None:
        """Take ``backend`` over (``close`` frees it).

        Raises:
            ValueError: ``config.concurrent_calls`` is more than the backend allows (it is
                closed then).
        """
        # A backend that does not declare ``concurrent_calls`` is called from one thread.
        allowed = getattr(backend, 'concurrent_calls', 1)
        if config.concurrent_calls > allowed:
            backend.close()
            raise ValueError(f'RewardConfig.concurrent_calls is {config.concurrent_calls}, but '
                             f'the {config.backend!r} backend runs at most {allowed} calls at '
                             'once (0 takes its limit)')
        self._calls = config.concurrent_calls or allowed
        self._backend = backend
        self._config = config
        self._sampling = SamplingSettings(
            temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
            max_new_tokens=config.max_new_tokens,
            seed=None if config.seed < 0 else config.seed)
        self._worker: _CallWorker | None = None
        self._worker_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._backend.model_id

    @property
    def config(self) -> RewardConfig:
        return self._config

    @property
    def concurrent_calls(self) -> int:
        """Most backend calls that run at once (``score`` from that many threads overlaps)."""
        return self._calls

    @property
    def batches(self) -> bool:
        """Whether a call of many queries runs them as one batch (a local model).

        A network backend sends each query as a request of its own, so a caller gives it one
        query per call, each with its own deadline.
        """
        return getattr(self._backend, 'batches', True)

    @property
    def cancels_on_close(self) -> bool:
        """Whether ``close`` fails the calls still running at once (a network backend)."""
        return bool(getattr(self._backend, 'cancels_on_close', False))

    @property
    def robot_erased(self) -> bool:
        """True when the model reads frames with the robot erased (a compact checkpoint).

        Its queries must then come from a camera node that erases the robot
        (``camera/robot_eraser.py``); pictures with the robot in view are refused.
        """
        return bool(getattr(self._backend, 'robot_erased', False))

    @property
    def erased_beside(self) -> bool:
        """True when every query must also carry the external view with the robot erased.

        A compact pair (``RewardConfig.erased_model``) reads the pictures and that view.
        """
        return bool(getattr(self._backend, 'erased_beside', False))

    def goal_coverage(self, goal: str) -> Any:
        """Whether the model was trained on ``goal`` (``compact.coverage.GoalCoverage``).

        None where the backend does not say: SOLE-R1 is meant for any goal.
        """
        check = getattr(self._backend, 'goal_coverage', None)
        return None if check is None else check(goal)

    def prepare(self, queries: Sequence[ProgressQuery]) -> list[PreparedRequest]:
        """Build the exact model input of each query (composite image and chat).

        Raises:
            ValueError: a query is malformed (bad frame, empty goal, step < 1, progress out of
                range). Nothing is sent to the backend then.
        """
        return [self._prepare_one(q) for q in queries]

    def _prepare_one(self, query: ProgressQuery) -> PreparedRequest:
        if not isinstance(query.episode_id, str) or not query.episode_id:
            raise ValueError(f'episode_id must be a non-empty string, got {query.episode_id!r}')
        if (isinstance(query.step, bool) or not isinstance(query.step, numbers.Integral)
                or query.step < 1):
            raise ValueError(f'episode {query.episode_id}: step must be an int >= 1 (step 0 is '
                             f'the 0% reference frame), got {query.step!r}')
        try:
            messages = protocol.build_messages(query.goal, query.previous_progress,
                                               query.from_zero, query.external_only)
            protocol.check_frames(
                query.first_external, query.previous_external, query.current_external,
                query.first_wrist, query.previous_wrist, query.current_wrist, query.from_zero)
        except ValueError as exc:
            raise ValueError(f'episode {query.episode_id} step {query.step}: {exc}') from exc
        metadata = {'episode_id': query.episode_id, 'step': query.step,
                    'privileged_progress': query.privileged_progress}
        query = dataclasses.replace(query, goal=protocol.normalize_goal(query.goal))
        return PreparedRequest(None, messages, self._sampling, metadata, query)

    def score(self, queries: Sequence[ProgressQuery]) -> list[ProgressResult]:
        """Answer every query, in order, batching up to ``max_batch_size`` per backend call.

        Never raises for a backend failure, exception or timeout: the affected results carry
        the query's ``previous_progress`` with ``valid=False`` and ``error`` set.

        Raises:
            ValueError: a query is malformed (see ``prepare``).
        """
        requests = self.prepare(queries)
        results: list[ProgressResult] = []
        size = self._config.max_batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            replies, error, elapsed_s = self._call(chunk)
            for index, request in enumerate(chunk):
                query = queries[start + index]
                reply = replies[index] if replies is not None else None
                results.append(self._result(query, request, reply, error, elapsed_s))
        return results

    def _call(self, requests: list[PreparedRequest]
              ) -> tuple[list[RawReply] | None, str | None, float]:
        with self._worker_lock:  # score may be called from several threads
            if self._worker is None:
                self._worker = _CallWorker(self._calls)
            worker = self._worker
        start = time.perf_counter()
        future = worker.submit(self._backend.generate, requests)
        episodes = sorted({r.metadata['episode_id'] for r in requests})
        try:
            replies = future.result(timeout=self._config.timeout_s)
        except TimeoutError:
            future.cancel()  # a no-op if it already runs; then its late replies are dropped
            logger.warning('reward backend %s timed out after %.1f s on %d queries (episodes %s)',
                           self.model_id, self._config.timeout_s, len(requests), episodes)
            return None, TIMEOUT_ERROR, time.perf_counter() - start
        except Exception as exc:  # any backend failure becomes a carry-forward result
            logger.warning('reward backend %s failed on %d queries (episodes %s): %s: %s',
                           self.model_id, len(requests), episodes, type(exc).__name__, exc)
            return None, f'{type(exc).__name__}: {exc}', time.perf_counter() - start
        if len(replies) != len(requests):
            message = f'backend returned {len(replies)} replies for {len(requests)} requests'
            logger.warning('reward backend %s: %s', self.model_id, message)
            return None, message, time.perf_counter() - start
        return replies, None, time.perf_counter() - start

    def _result(self, query: ProgressQuery, request: PreparedRequest, reply: RawReply | None,
                error: str | None, elapsed_s: float) -> ProgressResult:
        system, user = protocol.message_texts(request.messages)
        common = dict(episode_id=query.episode_id, step=int(query.step), model_id=self.model_id,
                      prompt_hash=protocol.prompt_hash(system, user))
        if reply is None or reply.error is not None:
            return ProgressResult(progress=int(query.previous_progress), valid=False,
                                  reasoning='', raw_text='',
                                  latency_s=elapsed_s if reply is None else reply.latency_s,
                                  error=error if reply is None else reply.error, **common)
        parsed = protocol.parse_answer(reply.text, query.previous_progress)
        cut_off = (not parsed.valid and reply.completion_tokens is not None
                   and reply.completion_tokens >= self._config.max_new_tokens)
        if not parsed.valid:
            logger.debug('episode %s step %d: unparseable answer%s, keeping %d%%',
                         query.episode_id, query.step, ' (cut off)' if cut_off else '',
                         parsed.progress)
        return ProgressResult(progress=parsed.progress, valid=parsed.valid,
                              reasoning=parsed.reasoning, raw_text=reply.text,
                              latency_s=reply.latency_s, cut_off=cut_off, **common)

    def close(self) -> None:
        """Stop the call threads, then free the backend.

        Waits at most ``timeout_s`` for the calls still running, which a local model must
        finish before it is freed. A backend whose ``close`` fails its running calls at once
        (``cancels_on_close``: a network one) is closed first, so a hung server does not hold
        a node's shutdown for a request's whole deadline.
        """
        with self._worker_lock:
            worker, self._worker = self._worker, None
        cancels = self.cancels_on_close
        if cancels:
            self._backend.close()
        if worker is not None:
            worker.stop(wait_s=1.0 if cancels else self._config.timeout_s)
        if not cancels:
            self._backend.close()

    def __enter__(self) -> 'RewardEngine':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
