"""Score reward queries with SOLE-R1 (or another backend) and publish progress rewards.

Subscribes ``sole_r1/query`` (RewardQuery from camera_node); publishes ``sole_r1/progress``
(ProgressReward, stamped with the scored frame's header), ``sole_r1/reward_image`` (annotated,
reliable QoS for rviz), ``sole_r1/marker`` and ``/diagnostics``. Lifecycle: the backend loads on
configure and results are published while active. Inference runs on worker threads, never in a
callback: one for a backend that runs one call at a time, one per episode in flight for one that
overlaps calls (``concurrent_calls``). Every ``RewardConfig`` field is a parameter of the same
name (``openai.base_url``...).
"""
from collections import deque
from dataclasses import dataclass
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.lifecycle import Node as LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker

from sole_r1_interfaces.msg import ProgressReward, RewardQuery
from sole_r1_ros.allocator import keep_freed_memory
from sole_r1_ros.camera import decode_tile
from sole_r1_ros.configuration import option, validate
from sole_r1_ros.image_msgs import array_to_image
from sole_r1_ros.nodes.firewall import (
    check_episode_id, Firewall, logged_transition, status_message)
from sole_r1_ros.nodes.params import NodeConfigs
from sole_r1_ros.nodes.reward_queue import EpisodeBook, PendingQuery
from sole_r1_ros.nodes.spin import run_node, set_torch_threads
from sole_r1_ros.reward import make_backend, protocol, RewardConfig, RewardEngine
from sole_r1_ros.viz.overlay import draw_overlay


@dataclass(frozen=True)
class RewardNodeConfig:
    """The reward node's own settings; the model and sampling are ``RewardConfig``'s."""

    goal: str = option('close the drawer', 'the task in words; may change at run time (the '
                       'next query of every episode uses it)')
    from_zero: bool = option(False, 'ask from the first frame only (no previous column)',
                             read_only=True)
    max_episodes: int = option(64, 'episodes whose state is kept (oldest dropped)',
                               range=(1, 100000), read_only=True)
    marker_frame: str = option('world', 'frame_id of the text marker', read_only=True)
    annotate: bool = option(True, 'publish the annotated image and marker for rviz')
    torch_threads: int = option(1, 'CPU threads of torch in this process (0: torch default); '
                                'the compact model answers a query on one core',
                                range=(0, 256), read_only=True)
    autostart: bool = option(True, 'configure and activate at start (launch files drive the '
                             'lifecycle themselves and set this false)', read_only=True)

    def __post_init__(self) -> None:
        validate(self)
        protocol.normalize_goal(self.goal)   # raises: empty, control characters, reply tags


SECTIONS = {'node': (RewardNodeConfig, ''), 'reward': (RewardConfig, '')}
_RELIABLE_1 = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


_RECENT_ANSWERS = 20
'''/diagnostics warns when most of this many newest answers were invalid.'''


class RewardNode(LifecycleNode):
    """Lifecycle reward node: configure loads the backend, activate starts publishing."""

    def __init__(self, **kwargs) -> None:
        super().__init__('reward_node', **kwargs)
        self.firewall = Firewall(self)
        self._engine: RewardEngine | None = None
        self._book: EpisodeBook | None = None
        self._workers: list[threading.Thread] = []
        self._per_call = 1
        self._stop = threading.Event()
        self._active = threading.Event()
        self._ready = threading.Condition()   # a query was submitted or an episode released
        self._progress_pub = self._image_pub = self._marker_pub = None
        self._subscription = None
        self.finalized = False   # shut down: spin.run_node ends the process
        # Per answered query: queue wait, model call, publishing, and frame age at inference [s].
        self.timing: deque = deque(maxlen=1000)
        # Answers the model gave but the protocol could not read (the last progress is carried
        # forward): many mean a wrong model, prompt or max_new_tokens cutting the reasoning off.
        self.unparseable = 0
        self.answered = self.failed = 0   # every answer published; those the backend failed
        self.cut_off = 0   # unparseable answers that used every one of max_new_tokens
        self._recent: deque = deque(maxlen=_RECENT_ANSWERS)   # valid or not, newest last
        self._last_error = ''
        self._counts_lock = threading.Lock()   # the answer counters: workers answer in parallel
        self._outbox: list = []   # answers finished while inactive: published at activation
        self.goal_coverage = None   # compact.coverage.GoalCoverage of the goal in use, if known
        self._checked_goal: str | None = None
        self._goal_check_lock = threading.Lock()   # reward workers check the goal in parallel
        self._configs = NodeConfigs(self, SECTIONS)   # last: may raise; destroy still works

    # -- lifecycle ----------------------------------------------------------------------------
    @logged_transition
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        config, node = self._configs['reward'], self._configs['node']
        try:
            start = time.perf_counter()
            if config.backend in ('compact', 'transformers'):   # the ones that use torch
                set_torch_threads(node.torch_threads)
            self._engine = RewardEngine(make_backend(config), config)
        except Exception as exc:  # missing weights, bad settings, unreachable server
            self.get_logger().error(f'cannot load reward backend {config.backend!r} '
                                    f'({config.model!r}): {type(exc).__name__}: {exc}')
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f'loaded {self._engine.model_id} in '
                               f'{time.perf_counter() - start:.1f} s')
        self._check_goal(node.goal)
        self._book = EpisodeBook(
            max_episodes=node.max_episodes, from_zero=node.from_zero,
            on_unusable=lambda reason: self.firewall.reject('query', f'dropped: {reason}'),
            on_restart=self.get_logger().warning)
        self._progress_pub = self.create_lifecycle_publisher(
            ProgressReward, 'sole_r1/progress', 10)
        self._image_pub = self.create_lifecycle_publisher(Image, 'sole_r1/reward_image',
                                                          _RELIABLE_1)
        self._marker_pub = self.create_lifecycle_publisher(Marker, 'sole_r1/marker', 10)
        # Depth max_episodes: one query of every episode may wait at once, none is lost.
        self._subscription = self.create_subscription(
            RewardQuery, 'sole_r1/query', self.firewall.guard('query', self._query_callback),
            node.max_episodes)
        self._status = (self.create_publisher(DiagnosticArray, '/diagnostics', 10),
                        self.create_timer(1.0, self.firewall.guard('status', self._report)))
        self._stop.clear()
        # A backend that overlaps calls batches on its side (vLLM batches the requests in
        # flight), so each call carries one episode, whose answer then never waits for another
        # episode's; a single-caller backend gets every waiting episode in one call.
        calls = min(self._engine.concurrent_calls, node.max_episodes)
        self._per_call = config.max_batch_size if calls == 1 and self._engine.batches else 1
        self._workers = [threading.Thread(target=self._work, name=f'reward_worker_{i}',
                                          daemon=True) for i in range(calls)]
        for worker in self._workers:
            worker.start()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_activate(self, state: State) -> TransitionCallbackReturn:
        result = super().on_activate(state)   # the publishers first: the outbox goes out now
        self._active.set()
        with self._counts_lock:
            held, self._outbox = self._outbox, []
        for pending, answer in held:
            self._publish(pending, answer)
        self._notify(every=True)
        return result

    @logged_transition
    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active.clear()   # pending queries and episode state stay for re-activation
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self.finalized = True   # spin.run_node ends the process
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Release the engine and its workers after a transition raised; configurable again."""
        self.get_logger().error(f'a transition from {state.label} failed (logged above); '
                                'the reward node is released and may be configured again')
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()

    def _release(self) -> None:
        self._active.clear()
        self._stop.set()
        self._notify(every=True)
        # A network backend's calls are failed first, so a hung server does not hold the
        # workers (and a shutdown) for 5 s; a local model finishes its batch, then is freed.
        cancels = self._engine is not None and self._engine.cancels_on_close
        if cancels:
            self._engine.close()
        deadline = time.monotonic() + 5.0
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._engine is not None and not cancels:
            self._engine.close()
        for entity in (self._progress_pub, self._image_pub, self._marker_pub):
            if entity is not None:
                self.destroy_lifecycle_publisher(entity)
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self.destroy_publisher(self._status[0])
            self.destroy_timer(self._status[1])
        self._engine = self._book = self._subscription = None
        with self._counts_lock:   # their episodes' chains are gone, and perhaps the model
            self._outbox.clear()
        self._checked_goal = self.goal_coverage = None   # a reconfigured model is checked anew
        self._workers = []
        self._progress_pub = self._image_pub = self._marker_pub = None

    def _check_goal(self, goal: str) -> None:
        """Warn once per goal when the model was not trained on it (the compact model)."""
        with self._goal_check_lock:
            if goal == self._checked_goal:
                return
            self._checked_goal = goal
            try:
                self.goal_coverage = self._engine.goal_coverage(goal)
            except Exception as exc:  # e.g. MiniLM missing: scoring reports that itself
                self.goal_coverage = None
                self.get_logger().warning(f'cannot check the goal against the model: {exc}')
            warning = self.goal_coverage and self.goal_coverage.warning(self._engine.model_id)
        if warning:
            self.get_logger().warning(warning)

    def _report(self) -> None:
        book, coverage = self._book, self.goal_coverage
        goal = {} if coverage is None else {
            'goal_trained': 'yes' if coverage.trained else 'no',
            'nearest_trained_goal': f'{coverage.nearest_goal} ({coverage.nearest_task}, '
                                    f'cosine {coverage.similarity:.2f})',
            'goal_runs_nearest_backwards': 'yes' if coverage.reverses_nearest else 'no'}
        with self._counts_lock:
            recent, last_error = list(self._recent), self._last_error
            counts = {'answered': self.answered, 'failed_answers': self.failed,
                      'unparseable_answers': self.unparseable,
                      'answers_cut_off': self.cut_off}
        problems = []
        invalid = recent.count(False)
        if len(recent) >= _RECENT_ANSWERS // 2 and invalid > len(recent) // 2:
            problems.append(f'{invalid} of the last {len(recent)} answers invalid (progress '
                            'carried forward, the learner waits): ' + (
                                f'last error: {last_error}' if last_error else
                                'unparseable: check the served model, the prompt and '
                                'max_new_tokens'))
        if coverage is not None and not coverage.trained:
            problems.append('the goal is not one the reward model was trained on: not a '
                            'reliable reward')
        self._status[0].publish(status_message(self, {
            'model': self._engine.model_id, 'pending': book.pending_count(),
            'replaced': book.replaced, 'stale': book.stale,
            'camera_restarts': book.restarts, 'late_finals': book.late_finals, **counts,
            'last_error': last_error or 'none',
            **goal, **{f'rejected/{k}': v for k, v in self.firewall.rejected.items()}},
            level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
            message='; '.join(problems) or 'ok'))

    # -- queries ------------------------------------------------------------------------------
    def _query_callback(self, msg: RewardQuery) -> None:
        """Decode and queue a query; a malformed one raises (the firewall counts it)."""
        check_episode_id(msg.episode_id)
        if msg.robot_erased != self._engine.robot_erased:
            raise ValueError(
                f'{self._engine.model_id} reads '
                + ('frames with the robot erased, and this query has the robot in view: set '
                   "the camera node's erase_robot (and publish robot masks)"
                   if self._engine.robot_erased else
                   'pictures with the robot in view, and this query has it erased: turn the '
                   "camera node's erase_robot off, or load a model trained on erased frames"))
        if self._engine.erased_beside and not msg.first_erased_external.data:
            raise ValueError(
                f'{self._engine.model_id} is a compact pair and also reads the external view '
                "with the robot erased, which this query lacks: set the camera node's "
                'erase_robot and erased_beside (and publish robot masks)')
        self._book.submit(PendingQuery.from_message(msg, decode_tile, received_s=time.monotonic()))
        self._notify()

    def _notify(self, every: bool = False) -> None:
        with self._ready:
            if every:
                self._ready.notify_all()
            else:
                self._ready.notify()

    def _work(self) -> None:
        """Take the newest queries of waiting episodes, score them in one call, publish; repeat."""
        book = self._book
        while not self._stop.is_set():
            with self._ready:
                self._ready.wait_for(lambda: self._stop.is_set() or (
                    self._active.is_set() and book.ready()), timeout=0.5)
            if self._stop.is_set() or not self._active.is_set():
                continue
            goal = self._configs['node'].goal
            self._check_goal(goal)
            batch = book.take(self._per_call, goal)
            if not batch:   # another worker took it
                continue
            # Each episode taken is released once: a second release, after its next query had
            # gone out from another worker, let a third request of the episode go out beside
            # it (several in flight on the HTTP backend, the chain's answers then discarded).
            released: set[str] = set()
            try:
                self._score(batch, released)
            except Exception as exc:  # the worker must outlive any single failure
                if not self._stop.is_set():
                    self.firewall.reject('worker', f'dropped {len(batch)} queries: '
                                         f'{type(exc).__name__}: {exc}')
            finally:   # answers published, or lost to an exception
                book.release([pending.episode_id for pending, _ in batch
                              if pending.episode_id not in released])
                self._notify()   # their next queries may be waiting

    def _score(self, batch, released: set[str]) -> None:
        start, start_ros = time.monotonic(), self.get_clock().now()
        results = self._engine.score([query for _, query in batch])
        model_s = time.monotonic() - start
        for (pending, _), result in zip(batch, results):
            try:   # each answer on its own: one that fails here costs no other its reward
                self._record_and_publish(pending, result, start, start_ros, model_s,
                                         len(batch), released)
            except Exception as exc:
                if not self._stop.is_set():
                    self.firewall.reject('worker', f'episode {result.episode_id} step '
                                         f'{result.step}: {type(exc).__name__}: {exc}')

    def _record_and_publish(self, pending: PendingQuery, result, start: float, start_ros,
                            model_s: float, batch: int, released: set[str]) -> None:
        published = time.monotonic()
        episode = self._book.record(result)
        if not self._active.is_set() and not self._stop.is_set():
            # deactivated while the model answered: the episode's state has this answer (the
            # next prompt quotes it), so it goes out at the activation, never lost
            with self._counts_lock:
                self._outbox.append((pending, result))
            return
        if self._publish(pending, result):
            # The episode's next query may go out while its picture is drawn.
            self._book.release([result.episode_id])
            released.add(result.episode_id)
            self._notify()
            if self._configs['node'].annotate:
                self._publish_annotation(pending, result, episode)
        frame_age = start_ros - Time.from_msg(pending.header.stamp)
        self.timing.append({'queue_s': start - pending.received_s, 'model_s': model_s,
                            'publish_s': time.monotonic() - published,
                            'frame_age_s': frame_age.nanoseconds * 1e-9, 'batch': batch})

    def _publish(self, pending: PendingQuery, result) -> bool:
        """Publish the reward; False (nothing published) while inactive."""
        if not self._active.is_set() or self._stop.is_set():
            return False
        msg = ProgressReward(header=pending.header, episode_id=result.episode_id,
                             step=result.step, progress=float(result.progress),
                             reward=float(result.progress) / 100.0,
                             valid=result.valid, error=result.error or (
                                 '' if result.valid else 'unparseable answer'),
                             reasoning=result.reasoning or result.raw_text,
                             model_id=result.model_id, prompt_hash=result.prompt_hash,
                             latency=float(time.monotonic() - pending.received_s))
        self._progress_pub.publish(msg)
        with self._counts_lock:
            self.answered += 1
            self._recent.append(bool(result.valid))
            if result.error:
                self.failed += 1
                self._last_error = result.error[:200]
        if result.error:
            # The cause leads (the firewall logs each cause once per throttle period): after
            # it, the episode and step, which would make every failure a cause of its own.
            cause, _, detail = result.error.partition(':')
            self.firewall.reject('answer', f'{cause}: {detail.strip() + " " if detail else ""}'
                                 f'(episode {result.episode_id} step {result.step}; progress '
                                 'carried forward)')
        elif not result.valid:
            with self._counts_lock:
                self.unparseable += 1
                self.cut_off += bool(result.cut_off)
            why = (f'cut off at max_new_tokens ({self._engine.config.max_new_tokens}) before '
                   'its answer: raise reward_node.max_new_tokens; ' if result.cut_off else '')
            self.get_logger().warning(
                f'unparseable answer ({why}episode {result.episode_id} step {result.step}; '
                f'progress carried forward; {self.unparseable} so far): '
                f'{(result.raw_text or "")[-200:]!r}', throttle_duration_sec=10.0)
        return True

    def _publish_annotation(self, pending: PendingQuery, result, episode) -> None:
        picture = draw_overlay(
            pending.current_external, pending.current_wrist, self._configs['node'].goal,
            episode.history, result.reasoning or result.raw_text,
            title=f'{result.episode_id} step {result.step} ({pending.trigger}) '
                  f'{result.latency_s:.2f} s', valid=result.valid)
        self._image_pub.publish(array_to_image(picture, 'rgb8', msg=Image(),
                                               header=pending.header))
        marker = Marker(ns='sole_r1', id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        marker.header.frame_id = self._configs['node'].marker_frame
        marker.header.stamp = pending.header.stamp
        marker.pose.position.z = 1.0
        marker.pose.orientation.w = 1.0
        marker.scale.z = 0.08
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = 0.3, 0.9, 0.4, 1.0
        marker.text = f'{result.progress}%  {(result.reasoning or "")[:120]}'
        self._marker_pub.publish(marker)


def main(args: list[str] | None = None) -> None:
    keep_freed_memory()   # torch on the CPU: no page faults per update or query
    run_node(RewardNode, args)


if __name__ == '__main__':
    main()
