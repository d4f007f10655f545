"""Score reward queries with SOLE-R1 (or another backend) and publish progress rewards.

Subscribes ``sole_r1/query`` (RewardQuery from camera_node); publishes ``sole_r1/progress``
(ProgressReward, stamped with the scored frame's header), ``sole_r1/reward_image`` (annotated,
reliable QoS for rviz) and ``sole_r1/marker``. Lifecycle: the backend loads on configure and
results are published while active. Inference runs on a worker thread, never in a callback.
"""
from collections import deque
import threading
import time

from rclpy.lifecycle import Node as LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker

from sole_r1_interfaces.msg import ProgressReward, RewardQuery
from sole_r1_ros.camera import decode_tile
from sole_r1_ros.nodes.conversions import array_to_image
from sole_r1_ros.nodes.params import declare, Param
from sole_r1_ros.nodes.spin import run_node
from sole_r1_ros.nodes.reward_queue import EpisodeBook, PendingQuery
from sole_r1_ros.reward import protocol
from sole_r1_ros.reward import (
    make_backend, OpenAIConfig, RewardConfig, RewardEngine, TransformersConfig)
from sole_r1_ros.rl.shaping import progress_to_reward
from sole_r1_ros.viz.overlay import draw_overlay

PARAMS = [
    Param('goal', 'close the drawer', 'task in words; may change at run time'),
    Param('backend', 'transformers', "'transformers', 'openai', 'oracle' or 'compact'",
          read_only=True),
    Param('model', 'tiny-random', 'checkpoint folder (SOLE-R1-8B), served model name, or '
          "'tiny-random' for dry runs", read_only=True),
    Param('device', 'auto', "transformers: 'auto', 'cpu', 'cuda'", read_only=True),
    Param('base_url', 'http://localhost:8000/v1', 'openai: endpoint root', read_only=True),
    Param('api_key_env', 'OPENAI_API_KEY', 'openai: variable holding the API key',
          read_only=True),
    Param('temperature', 1.0, 'sampling temperature (0: greedy, for evaluation)', (0.0, 2.0),
          read_only=True),
    Param('seed', -1, 'sampling seed (-1: unseeded)', (-1, 2**31 - 1), read_only=True),
    Param('max_new_tokens', 200, 'longest reply [tokens]', (1, 4096), read_only=True),
    Param('timeout_s', 60.0, 'deadline of one backend call [s]; then progress carries forward',
          (0.1, 3600.0), read_only=True),
    Param('max_batch_size', 32, 'most episodes scored in one backend call', (1, 256),
          read_only=True),
    Param('from_zero', False, 'ask from the first frame only (no previous column)',
          read_only=True),
    Param('reward_mode', 'progress', "'progress': r = p/100 (the paper's reward, default); "
          "'delta': r = (p - p_prev)/100"),
    Param('reward_scale', 1.0, 'factor on the shaped reward', (0.0, 1000.0)),
    Param('success_bonus', 0.0, 'added to the reward when progress >= success_progress',
          (0.0, 1000.0)),
    Param('success_progress', 100.0, 'progress counted as success for the bonus [%]',
          (0.0, 100.0)),
    Param('max_episodes', 64, 'episodes whose state is kept (oldest dropped)', (1, 100000),
          read_only=True),
    Param('marker_frame', 'world', 'frame_id of the text marker', read_only=True),
    Param('annotate', True, 'publish the annotated image and marker'),
    Param('autostart', True, 'configure and activate at start (launch files drive the '
          'lifecycle themselves and set this false)', read_only=True),
]

_RELIABLE_1 = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


class RewardNode(LifecycleNode):
    """Lifecycle reward node: configure loads the backend, activate starts publishing."""

    def __init__(self, **kwargs) -> None:
        super().__init__('reward_node', **kwargs)
        self._p = declare(self, PARAMS)
        self._engine: RewardEngine | None = None
        self._book: EpisodeBook | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = threading.Event()
        self._wake = threading.Event()
        self._progress_pub = self._image_pub = self._marker_pub = None
        self._subscription = None
        # Per answered query: queue wait, model call, publishing, and frame age at inference [s].
        self.timing: deque = deque(maxlen=1000)
        self.add_on_set_parameters_callback(self._validate_parameters)

    # -- parameters ---------------------------------------------------------------------------
    def _validate_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == 'goal':
                try:
                    protocol.normalize_goal(parameter.value)
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
            if parameter.name == 'reward_mode' and parameter.value not in ('progress', 'delta'):
                return SetParametersResult(successful=False,
                                           reason="reward_mode must be 'progress' or 'delta'")
        return SetParametersResult(successful=True)

    def _param(self, name: str):
        return self.get_parameter(name).value

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        p = {param.name: self._param(param.name) for param in PARAMS}
        try:
            config = RewardConfig(
                backend=p['backend'], model=p['model'], temperature=p['temperature'],
                max_new_tokens=p['max_new_tokens'], seed=p['seed'],
                timeout_s=p['timeout_s'], max_batch_size=p['max_batch_size'],
                transformers=TransformersConfig(device=p['device']),
                openai=OpenAIConfig(base_url=p['base_url'], api_key_env=p['api_key_env']))
            start = time.perf_counter()
            self._engine = RewardEngine(make_backend(config), config)
        except Exception as exc:  # missing weights, bad settings, unreachable server
            self.get_logger().error(f'cannot load reward backend {p["backend"]!r} '
                                    f'({p["model"]!r}): {type(exc).__name__}: {exc}')
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f'loaded {self._engine.model_id} in '
                               f'{time.perf_counter() - start:.1f} s')
        self._book = EpisodeBook(max_episodes=p['max_episodes'], from_zero=p['from_zero'])
        self._progress_pub = self.create_lifecycle_publisher(
            ProgressReward, 'sole_r1/progress', 10)
        self._image_pub = self.create_lifecycle_publisher(Image, 'sole_r1/reward_image',
                                                          _RELIABLE_1)
        self._marker_pub = self.create_lifecycle_publisher(Marker, 'sole_r1/marker', 10)
        self._subscription = self.create_subscription(RewardQuery, 'sole_r1/query',
                                                      self._query_callback, 10)
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name='reward_worker', daemon=True)
        self._worker.start()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active.set()
        self._wake.set()
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active.clear()   # pending queries and episode state stay for re-activation
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()

    def _release(self) -> None:
        self._active.clear()
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        if self._engine is not None:
            self._engine.close()
        for entity in (self._progress_pub, self._image_pub, self._marker_pub):
            if entity is not None:
                self.destroy_lifecycle_publisher(entity)
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
        self._engine = self._book = self._worker = self._subscription = None
        self._progress_pub = self._image_pub = self._marker_pub = None

    # -- queries ------------------------------------------------------------------------------
    def _query_callback(self, msg: RewardQuery) -> None:
        try:
            pending = PendingQuery.from_message(msg, decode_tile, received_s=time.monotonic())
        except ValueError as exc:
            self.get_logger().error(f'skipping malformed query (episode {msg.episode_id!r} '
                                    f'step {msg.step}): {exc}', throttle_duration_sec=2.0)
            return
        self._book.submit(pending)
        self._wake.set()

    def _work(self) -> None:
        """Score the newest query of every waiting episode, one backend call per round."""
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            while self._active.is_set() and not self._stop.is_set():
                batch = self._book.take(self._p['max_batch_size'], self._param('goal'))
                if not batch:
                    break
                try:
                    self._score(batch)
                except ValueError as exc:  # the protocol rejected a query: drop this round
                    self.get_logger().error(f'dropped {len(batch)} queries: {exc}')
                except Exception as exc:  # the worker must outlive any single failure
                    if not self._stop.is_set():
                        self.get_logger().error(f'reward worker: {type(exc).__name__}: {exc}')

    def _score(self, batch) -> None:
        start, start_ros = time.monotonic(), self.get_clock().now()
        results = self._engine.score([query for _, query in batch])
        model_s = time.monotonic() - start
        for (pending, _), result in zip(batch, results):
            published = time.monotonic()
            self._publish(pending, result, self._book.record(result))
            frame_age = start_ros - Time.from_msg(pending.header.stamp)
            self.timing.append({'queue_s': start - pending.received_s, 'model_s': model_s,
                                'publish_s': time.monotonic() - published,
                                'frame_age_s': frame_age.nanoseconds * 1e-9,
                                'batch': len(batch)})

    def _publish(self, pending: PendingQuery, result, episode) -> None:
        if not self._active.is_set() or self._stop.is_set():
            return
        previous = episode.history[-2][1] if len(episode.history) > 1 else 0.0
        reward = float(progress_to_reward(
            result.progress, previous, self._param('reward_mode'), self._param('reward_scale'),
            self._param('success_bonus'), self._param('success_progress')))
        msg = ProgressReward(header=pending.header, episode_id=result.episode_id,
                             step=result.step, progress=float(result.progress), reward=reward,
                             valid=result.valid, error=result.error or (
                                 '' if result.valid else 'unparseable answer'),
                             reasoning=result.reasoning or result.raw_text,
                             model_id=result.model_id, prompt_hash=result.prompt_hash,
                             latency=float(time.monotonic() - pending.received_s))
        self._progress_pub.publish(msg)
        if result.error:
            self.get_logger().warning(f'episode {result.episode_id} step {result.step}: '
                                      f'{result.error}; progress carried forward',
                                      throttle_duration_sec=2.0)
        if self._param('annotate'):
            self._publish_annotation(pending, result, episode)

    def _publish_annotation(self, pending: PendingQuery, result, episode) -> None:
        picture = draw_overlay(
            pending.current_external, pending.current_wrist, self._param('goal'),
            episode.history, result.reasoning or result.raw_text,
            title=f'{result.episode_id} step {result.step} ({pending.trigger}) '
                  f'{result.latency_s:.2f} s', valid=result.valid)
        self._image_pub.publish(array_to_image(picture, 'rgb8', msg=Image(),
                                               header=pending.header))
        marker = Marker(ns='sole_r1', id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        marker.header.frame_id = self._p['marker_frame']
        marker.header.stamp = pending.header.stamp
        marker.pose.position.z = 1.0
        marker.pose.orientation.w = 1.0
        marker.scale.z = 0.08
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = 0.3, 0.9, 0.4, 1.0
        marker.text = f'{result.progress}%  {(result.reasoning or "")[:120]}'
        self._marker_pub.publish(marker)


def main(args: list[str] | None = None) -> None:
    run_node(RewardNode, args)


if __name__ == '__main__':
    main()
